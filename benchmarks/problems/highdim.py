"""A 24-knob fine-tuning problem where only a few knobs matter."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.spec import Budget, Knob, KnobValue, Outcome, Problem

# Knobs whose effect is far below the noise: where each one's (irrelevant)
# optimum sits in its range is fixed once, independent of any tuner seed.
_N_MINOR = 16
_MINOR_OPTIMA = np.random.default_rng(20230614).uniform(0.2, 0.8, size=_N_MINOR)


def _minor_knobs() -> list[Knob]:
    knobs = []
    for i in range(_N_MINOR):
        if i % 2 == 0:
            knobs.append(Knob(f"aux_{i:02d}", "float", 0.0, 1.0, default=0.5))
        else:
            knobs.append(Knob(f"aux_{i:02d}", "float", 1e-3, 1e3, log=True, default=1.0))
    return knobs


class FineTuneHighDim(Problem):
    """Fine-tuning with 24 knobs: 4 matter, 4 matter a little, 16 barely at all.

    Loss falls as a power law in training steps, inflated by a mistuned
    learning rate (whose optimum falls with steps), weight decay (whose
    optimum rises with steps) and warm-up. Four further knobs (Adam beta2,
    gradient clipping, dropout, adapter rank) have small effects, and sixteen
    ``aux_*`` knobs change the loss by well under the noise. Cost grows with
    steps and the adapter rank.
    """

    def __init__(self) -> None:
        super().__init__(
            name="finetune_24d",
            description="Fine-tuning, 24 knobs: steps buys loss; lr/wd optima drift with "
            "steps; 4 weak and 16 near-irrelevant knobs",
            knobs=(
                Knob("steps", "int", 100, 20000, log=True, default=1000),
                Knob("lr", "float", 1e-6, 1e-2, log=True, default=1e-4),
                Knob("weight_decay", "float", 1e-6, 1.0, log=True, default=1e-2),
                Knob("warmup_frac", "float", 0.0, 0.5, default=0.1),
                Knob("adam_beta2", "float", 0.9, 0.9999, default=0.999),
                Knob("grad_clip", "float", 0.1, 10.0, log=True, default=1.0),
                Knob("dropout", "float", 0.0, 0.5, default=0.1),
                Knob("rank", "int", 4, 256, log=True, default=16),
                *_minor_knobs(),
            ),
            quick_budget=Budget(cost=5000.0, max_trials=30),
            full_budget=Budget(cost=20000.0, max_trials=80),
            cost_unit="simulated s",
        )

    def loss(self, p: dict[str, KnobValue]) -> float:
        """Noise-free evaluation loss of one setting."""
        steps = float(p["steps"])
        lr_opt = 3e-4 * (steps / 1000.0) ** -0.3
        d_lr = math.log10(float(p["lr"]) / lr_opt)
        pen = 0.4 * d_lr**2
        wd_opt = 1e-2 * (steps / 1000.0) ** 0.5
        pen += 0.05 * math.log10(float(p["weight_decay"]) / wd_opt) ** 2
        pen += 0.8 * (float(p["warmup_frac"]) - 0.06) ** 2 * (1000.0 / steps) ** 0.2
        pen += 3.0 * (float(p["adam_beta2"]) - 0.995) ** 2
        pen += 0.02 * math.log10(float(p["grad_clip"])) ** 2
        pen += 0.1 * (float(p["dropout"]) - 0.05) ** 2
        pen += 0.005 * math.log2(float(p["rank"]) / 32.0) ** 2
        minor = 0.0
        for i, knob in enumerate(self.knobs[8:]):
            minor += 0.002 * (knob.to_unit(p[knob.name]) - _MINOR_OPTIMA[i]) ** 2
        return 1.2 + 2.0 * (steps / 100.0) ** -0.45 * (1.0 + pen) + minor

    def cost(self, p: dict[str, KnobValue]) -> float:
        """Simulated seconds: 50 ms a step, more for a larger adapter."""
        return float(p["steps"]) * 0.05 * (1.0 + float(p["rank"]) / 128.0)

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Loss with seed-to-seed noise of 0.01."""
        true = self.loss(params)
        return Outcome(true + 0.01 * rng.standard_normal(), self.cost(params), true_output=true)
