"""Multi-fidelity problems: six knobs and a fidelity whose cost grows as its square.

The objective at the top fidelity is the six-dimensional Hartmann function
(a standard global-optimisation test function, minimum -3.32237). A lower
fidelity adds a bias that shrinks linearly to zero at fidelity 100, so the
best values lie only near the top; cost is ``(fidelity / 10)**2`` (0.01 ..
100) and the default starts at fidelity 10 (cost 1).

In ``mf_hartmann`` the low fidelities rank settings exactly as the top does
(the bias does not depend on the knobs), so the best loss at each cost, the
true frontier, is known. In ``mf_hartmann_decorrelated`` a low fidelity
mostly measures a different function (the Hartmann function of the mirrored
knobs), blended into the true one in proportion to the fidelity: at fidelity
10 the two agree poorly, and cheap trials mislead.
"""

from __future__ import annotations

import numpy as np

from benchmarks.spec import Budget, Knob, KnobValue, Outcome, Problem

# Hartmann-6 constants (Dixon and Szegoe's test set).
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN6_MIN = -3.32237
FIDELITY_LOW, FIDELITY_HIGH = 1, 100
# The bias of the lowest fidelity; it falls linearly to 0 at the top.
BIAS_AT_ZERO = 2.0


def hartmann6(x: np.ndarray) -> float:
    """The Hartmann function on ``[0, 1]**6``."""
    inner = np.sum(_A * (x[None, :] - _P) ** 2, axis=1)
    return float(-np.sum(_ALPHA * np.exp(-inner)))


def fidelity_bias(fidelity: float) -> float:
    """How much worse than the top fidelity a trial at ``fidelity`` reads, for the same knobs."""
    return BIAS_AT_ZERO * (1.0 - fidelity / FIDELITY_HIGH)


class MultiFidelityHartmann(Problem):
    """Hartmann-6 plus a fidelity knob: cost ``(fidelity/10)**2``, best values only near the top."""

    truth_cost_range = (0.01, 100.0)
    # A cost level with no trial counts as a setting of Hartmann value 0 at the
    # lowest fidelity (the true frontier there, -1.34, is reached by no tuner).
    truth_ceiling = BIAS_AT_ZERO

    def __init__(self, name: str = "mf_hartmann", decorrelated: bool = False) -> None:
        kind = "low fidelities poorly correlated with the top" if decorrelated else \
            "low fidelities rank like the top"
        super().__init__(
            name=name,
            description=f"Hartmann-6 + fidelity 1..100, cost (f/10)^2, start at f=10; {kind} (7 knobs)",
            knobs=(
                *(Knob(f"x{i}", "float", 0.0, 1.0, default=0.5) for i in range(6)),
                Knob("fidelity", "int", FIDELITY_LOW, FIDELITY_HIGH, log=True, default=10),
            ),
            quick_budget=Budget(cost=150.0, max_trials=30),
            full_budget=Budget(cost=500.0, max_trials=75),
            cost_unit="units",
        )
        self.decorrelated = decorrelated

    def value(self, p: dict[str, KnobValue]) -> float:
        """Noise-free output of one setting."""
        x = np.array([float(p[f"x{i}"]) for i in range(6)])
        fidelity = float(p["fidelity"])
        top = hartmann6(x)
        if self.decorrelated:
            w = fidelity / FIDELITY_HIGH
            top = w * top + (1.0 - w) * hartmann6(1.0 - x)
        return top + fidelity_bias(fidelity)

    def cost(self, p: dict[str, KnobValue]) -> float:
        """``(fidelity / 10)**2``."""
        return (float(p["fidelity"]) / 10.0) ** 2

    def true_front(self, costs: np.ndarray) -> np.ndarray | None:
        """The best output at cost at most ``c``: known only when the fidelities rank alike."""
        if self.decorrelated:
            return None
        c = np.asarray(costs, dtype=float)
        fid = np.floor(10.0 * np.sqrt(np.maximum(c, 0.0)) + 1e-9)
        fid = np.minimum(fid, FIDELITY_HIGH)
        front = HARTMANN6_MIN + BIAS_AT_ZERO * (1.0 - fid / FIDELITY_HIGH)
        return np.where(fid >= FIDELITY_LOW, front, np.inf)

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Output plus observation noise of sd 0.02."""
        true = self.value(params)
        return Outcome(true + 0.02 * rng.standard_normal(), self.cost(params), true_output=true)


class MultiFidelityHartmannDecorrelated(MultiFidelityHartmann):
    """:class:`MultiFidelityHartmann` whose low fidelities mostly measure another function."""

    def __init__(self) -> None:
        super().__init__(name="mf_hartmann_decorrelated", decorrelated=True)
