"""A scaling problem with bounds as wide as a user might write them.

Model size runs over seven decades and training tokens over eight, so one
trial's cost spans fifteen decades (6e-7 .. 6e8 in units of 1e18 FLOPs), and
the loss keeps improving up to the most expensive corner of the box. The
loss is the Chinchilla fit (Hoffmann et al. 2022, approach 3) with its
reducible part inflated by mistuned learning rate, warm-up and weight decay,
whose optima drift with scale but stay inside the bounds. So the best loss a
trial of cost ``c`` can reach, the true compute-optimal frontier, is known in
closed form (:meth:`WideScaling.true_front`), and a run's front can be scored
against the truth instead of against the other tuners.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.spec import Budget, Knob, KnobValue, Outcome, Problem

# Chinchilla approach-3 fit: L(N, D) = E + A / N**ALPHA + B / D**BETA.
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
N_LOW, N_HIGH = 1e5, 1e12
D_LOW, D_HIGH = 1e6, 1e14
# Cost unit: 1e18 FLOPs, so cost = 6 N D / 1e18.
FLOPS_PER_UNIT = 1e18


def compute_optimal(cost: float) -> tuple[float, float]:
    """The (N, D) inside the box that minimise ``A/N**ALPHA + B/D**BETA`` at ``6 N D = cost`` units.

    Along ``N D = K`` the reducible loss is convex in ``log N``, so the
    unconstrained optimum ``N = G K**(BETA/(ALPHA+BETA))`` clipped to the
    part of the curve inside the box is the constrained optimum. Costs above
    the box's corner return the corner.
    """
    k = cost * FLOPS_PER_UNIT / 6.0
    g = (ALPHA * A / (BETA * B)) ** (1.0 / (ALPHA + BETA))
    n = g * k ** (BETA / (ALPHA + BETA))
    n_lo, n_hi = max(N_LOW, k / D_HIGH), min(N_HIGH, k / D_LOW)
    if n_lo > n_hi:
        if k > N_HIGH * D_HIGH:
            return N_HIGH, D_HIGH
        raise ValueError(f"cost {cost!r} is below the cheapest trial in the box")
    n = min(max(n, n_lo), n_hi)
    return n, k / n


class WideScaling(Problem):
    """Chinchilla-shaped loss over wide bounds; cost 6ND in 1e18 FLOPs.

    Knobs: parameters N (1e5..1e12), tokens D (1e6..1e14), learning rate,
    warm-up fraction and weight decay. The best learning rate falls as
    ``N**-0.25``, the best warm-up grows with ``log N`` and the best weight
    decay falls as ``D**-0.2``; at their optima the loss is exactly the
    Chinchilla fit. The default is a small, cheap run (cost 0.18).
    """

    def __init__(self, name: str = "wide_scaling", noise: float = 0.005) -> None:
        noisy = f", noise sd {noise:g}" if noise > 0.005 else ""
        super().__init__(
            name=name,
            description="Chinchilla-shaped LM: N 1e5..1e12, D 1e6..1e14, lr/warm-up/wd optima drift; "
            f"cost 6ND/1e18 spans 15 decades{noisy} (5 knobs)",
            knobs=(
                Knob("n_params", "float", N_LOW, N_HIGH, log=True, default=3e7),
                Knob("tokens", "float", D_LOW, D_HIGH, log=True, default=1e9),
                Knob("lr", "float", 1e-5, 1e-1, log=True, default=1e-3),
                Knob("warmup_frac", "float", 0.0, 0.3, default=0.05),
                Knob("weight_decay", "float", 1e-4, 1.0, log=True, default=1e-2),
            ),
            quick_budget=Budget(cost=1e3, max_trials=30),
            full_budget=Budget(cost=1e4, max_trials=300),
            cost_unit="1e18 FLOPs",
        )
        self.noise = noise

    # The true frontier is averaged over these costs (the range the issue tracker's
    # measurements used: a small run to a thousand times it).
    truth_cost_range = (0.1, 1000.0)

    def loss(self, p: dict[str, KnobValue]) -> float:
        """Noise-free loss of one setting."""
        n, d = float(p["n_params"]), float(p["tokens"])
        lr_opt = 3e-3 * (n / 1e8) ** -0.25
        d_lr = math.log10(float(p["lr"]) / lr_opt)
        pen = (0.5 if d_lr > 0 else 0.2) * d_lr**2  # too high a learning rate hurts more
        warmup_opt = 0.02 + 0.05 * math.log10(n / N_LOW) / math.log10(N_HIGH / N_LOW)
        pen += 20.0 * (float(p["warmup_frac"]) - warmup_opt) ** 2
        wd_opt = 0.1 * (d / 1e9) ** -0.2
        pen += 0.05 * math.log10(float(p["weight_decay"]) / wd_opt) ** 2
        return E + (A / n**ALPHA + B / d**BETA) * (1.0 + pen)

    def cost(self, p: dict[str, KnobValue]) -> float:
        """``6 N D`` in units of 1e18 FLOPs."""
        return 6.0 * float(p["n_params"]) * float(p["tokens"]) / FLOPS_PER_UNIT

    def true_front(self, costs: np.ndarray) -> np.ndarray:
        """The lowest loss any setting of cost at most ``c`` reaches, for each ``c`` (+inf below the box)."""
        out = np.full(np.shape(costs), np.inf)
        cheapest = 6.0 * N_LOW * D_LOW / FLOPS_PER_UNIT
        for i, c in np.ndenumerate(np.asarray(costs, dtype=float)):
            if c >= cheapest:
                n, d = compute_optimal(float(c))
                out[i] = E + A / n**ALPHA + B / d**BETA
        return out

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Loss plus Gaussian observation noise."""
        true = self.loss(params)
        return Outcome(true + self.noise * rng.standard_normal(), self.cost(params), true_output=true)


class WideScalingNoisy(WideScaling):
    """:class:`WideScaling` with seed-to-seed noise of 0.05 nats, as large as many gaps on the front."""

    def __init__(self) -> None:
        super().__init__(name="wide_scaling_noisy", noise=0.05)
