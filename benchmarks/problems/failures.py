"""A problem where some settings crash and the crash is paid for."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.spec import Budget, Knob, KnobValue, Outcome, Problem

# Largest batch x width product that fits in (simulated) accelerator memory.
MEMORY_LIMIT = 2**18
# Start-up time every run pays, crashed or not.
STARTUP_SECONDS = 5.0


class OutOfMemoryTraining(Problem):
    """Training where large batch x width runs out of memory and high learning rates diverge.

    * ``batch_size * width > 2**18``: out of memory on the first step; the run
      costs its start-up plus 2% of what it would have cost.
    * learning rate more than 8x above its optimum: the loss diverges part-way
      through; the further above, the earlier, and the run costs that fraction.

    The best learning rate grows with the batch size and shrinks with width,
    so the divergence region borders the good region at every scale. The
    memory limit does not bind on the Pareto front (the best runs use small
    batches, well under it), but a sixth of the log-uniform box lies beyond
    it and a further fifth diverges, so a search that samples the box widely
    pays for crashes.
    """

    _DATASET = 50_000

    def __init__(self) -> None:
        super().__init__(
            name="oom_failures",
            description="Training with crashes: out of memory when batch x width > 2^18, "
            "divergence at high lr; failures cost time (5 knobs)",
            knobs=(
                Knob("batch_size", "int", 8, 2048, log=True, default=64),
                Knob("width", "int", 32, 2048, log=True, default=256),
                Knob("epochs", "int", 1, 100, log=True, default=10),
                Knob("lr", "float", 1e-4, 1.0, log=True, default=1e-2),
                Knob("weight_decay", "float", 1e-6, 1e-1, log=True, default=1e-4),
            ),
            quick_budget=Budget(cost=3000.0, max_trials=30),
            full_budget=Budget(cost=12000.0, max_trials=80),
            cost_unit="simulated s",
        )

    @staticmethod
    def lr_opt(batch: float, width: float) -> float:
        """The best learning rate for this batch size and width."""
        return 0.01 * math.sqrt(batch / 64.0) * (width / 256.0) ** -0.5

    def full_cost(self, p: dict[str, KnobValue]) -> float:
        """Simulated seconds of a run that completes."""
        batch = float(p["batch_size"])
        steps = float(p["epochs"]) * self._DATASET / batch
        return STARTUP_SECONDS + steps * (0.002 + 1e-7 * batch * float(p["width"]))

    def error(self, p: dict[str, KnobValue]) -> float:
        """Noise-free error of a run that completes."""
        batch, width = float(p["batch_size"]), float(p["width"])
        steps = float(p["epochs"]) * self._DATASET / batch
        d_lr = math.log10(float(p["lr"]) / self.lr_opt(batch, width))
        wd_pen = 0.03 * math.log10(float(p["weight_decay"]) / 5e-4) ** 2
        capacity = 0.5 * (width / 32.0) ** -0.6
        optimisation = 2.5 * steps**-0.35 * (1.0 + 0.3 * d_lr**2 + wd_pen)
        generalisation_gap = 0.02 * math.sqrt(batch / 256.0)
        return 0.03 + capacity + optimisation + generalisation_gap

    def failure(self, p: dict[str, KnobValue]) -> float | None:
        """Fraction of the full cost spent before crashing, or None if the run completes."""
        if int(p["batch_size"]) * int(p["width"]) > MEMORY_LIMIT:
            return 0.02
        excess = math.log10(float(p["lr"]) / (8.0 * self.lr_opt(float(p["batch_size"]), float(p["width"]))))
        if excess > 0:
            return min(0.9, max(0.1, 0.9 - 0.4 * excess))
        return None

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Error with 0.3 points of noise, or a failure with the cost spent until the crash."""
        full = self.full_cost(params)
        spent = self.failure(params)
        if spent is not None:
            cost = STARTUP_SECONDS + spent * (full - STARTUP_SECONDS)
            return Outcome(math.nan, cost, is_failure=True)
        true = self.error(params)
        return Outcome(true + 0.003 * rng.standard_normal(), full, true_output=true)
