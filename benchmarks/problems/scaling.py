"""Cost-aware synthetic problems: quality is bought with compute.

Both problems follow the shape of published scaling results: loss falls as a
power law in model size and training length, and the best value of the
"nuisance" knobs (learning rate, weight decay, dropout, warm-up) moves as the
run gets bigger. A tuner that ignores cost spends its budget on the most
expensive corner; one that models cost can learn the nuisance optimum on
cheap runs and carry it up the scale.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.spec import Budget, Knob, KnobValue, Outcome, Problem

# Assumed accelerator throughput that turns FLOPs into simulated seconds.
_FLOPS_PER_SECOND = 1e14


class LanguageModelScaling(Problem):
    """A transformer language model trained on a token budget.

    Loss is the Chinchilla fit ``E + A / N**a + B / D**b`` (N non-embedding
    parameters, D tokens), whose reducible part is inflated by mistuned
    nuisance knobs. The best learning rate shrinks with width (as under
    standard parametrisation) and slightly with tokens; the best weight decay
    shrinks with tokens; the best warm-up grows with width. Cost is
    ``6 N D`` FLOPs at 1e14 FLOP/s.
    """

    def __init__(self) -> None:
        super().__init__(
            name="lm_scaling",
            description="LM scaling: width, depth, tokens trade loss against compute; "
            "lr/wd/warm-up optima drift with scale (7 knobs)",
            knobs=(
                Knob("width", "int", 64, 2048, log=True, default=256),
                Knob("depth", "int", 2, 24, default=8),
                Knob("tokens", "float", 1e7, 1e10, log=True, default=3e8),
                Knob("lr", "float", 1e-5, 1e-1, log=True, default=1e-3),
                Knob("weight_decay", "float", 1e-5, 1.0, log=True, default=1e-2),
                Knob("warmup_frac", "float", 0.0, 0.3, default=0.05),
                Knob("adam_beta2", "float", 0.9, 0.999, default=0.99),
            ),
            quick_budget=Budget(cost=1e4, max_trials=30),
            full_budget=Budget(cost=5e4, max_trials=80),
            cost_unit="simulated s",
        )

    @staticmethod
    def n_params(width: float, depth: float) -> float:
        """Non-embedding parameter count of a transformer of this shape."""
        return 12.0 * depth * width**2

    def loss(self, p: dict[str, KnobValue]) -> float:
        """Noise-free loss of one setting."""
        width, depth, tokens = float(p["width"]), float(p["depth"]), float(p["tokens"])
        n = self.n_params(width, depth)
        reducible = 406.4 / n**0.34 + 410.7 / tokens**0.28
        lr_opt = 3e-3 * (256.0 / width) * (tokens / 3e8) ** -0.1
        d_lr = math.log10(float(p["lr"]) / lr_opt)
        # Too high a learning rate hurts more than too low.
        pen = (0.4 if d_lr > 0 else 0.2) * d_lr**2
        wd_opt = 0.1 * (3e8 / tokens) ** 0.3
        pen += 0.02 * math.log10(float(p["weight_decay"]) / wd_opt) ** 2
        warmup_opt = 0.02 * math.sqrt(width / 64.0)
        pen += 1.0 * (float(p["warmup_frac"]) - warmup_opt) ** 2
        pen += 0.05 * math.log10((width / depth) / 48.0) ** 2
        pen += 30.0 * (float(p["adam_beta2"]) - 0.98) ** 2
        return 1.69 + reducible * (1.0 + pen)

    def cost(self, p: dict[str, KnobValue]) -> float:
        """Simulated seconds: ``6 N D`` FLOPs at 1e14 FLOP/s."""
        n = self.n_params(float(p["width"]), float(p["depth"]))
        return 6.0 * n * float(p["tokens"]) / _FLOPS_PER_SECOND

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Loss with seed-to-seed noise of 0.01 nats."""
        true = self.loss(params)
        return Outcome(true + 0.01 * rng.standard_normal(), self.cost(params), true_output=true)


class ImageClassifierEpochs(Problem):
    """An image classifier: epochs and width buy accuracy, with overfitting.

    Error is a capacity term (falls with width), an optimisation term (falls
    with optimizer steps, inflated by a mistuned learning rate) and an
    overfitting term (grows with width and epochs, tamed by dropout), so the
    best dropout grows with scale. The best learning rate grows with the
    square root of the batch size and differs by optimizer. A learning rate
    30x above the optimum diverges to chance error (the run still finishes).
    Cost is simulated seconds of 50k-sample epochs.
    """

    _DATASET = 50_000

    def __init__(self) -> None:
        super().__init__(
            name="image_epochs",
            description="Image classifier: epochs/width/batch trade error against time; "
            "dropout and lr optima drift with scale; one categorical knob (7 knobs)",
            knobs=(
                Knob("epochs", "int", 1, 200, log=True, default=10),
                Knob("width", "int", 16, 1024, log=True, default=128),
                Knob("batch_size", "int", 16, 1024, log=True, default=128),
                Knob("lr", "float", 1e-4, 1.0, log=True, default=3e-3),
                Knob("dropout", "float", 0.0, 0.8, default=0.1),
                Knob("label_smoothing", "float", 0.0, 0.3, default=0.0),
                Knob("optimizer", "choice", choices=("adam", "sgd"), default="adam"),
            ),
            quick_budget=Budget(cost=3000.0, max_trials=30),
            full_budget=Budget(cost=12000.0, max_trials=80),
            cost_unit="simulated s",
        )

    def error(self, p: dict[str, KnobValue]) -> float:
        """Noise-free top-1 error of one setting."""
        epochs, width = float(p["epochs"]), float(p["width"])
        batch, dropout = float(p["batch_size"]), float(p["dropout"])
        steps = epochs * self._DATASET / batch
        if p["optimizer"] == "sgd":
            lr_opt, lr_curv, opt_bonus = 0.1 * math.sqrt(batch / 128.0), 0.8, 0.97
        else:
            lr_opt = 1e-3 * math.sqrt(batch / 128.0) * (width / 128.0) ** -0.5
            lr_curv, opt_bonus = 0.4, 1.0
        d_lr = math.log10(float(p["lr"]) / lr_opt)
        if d_lr > math.log10(30.0):
            return 0.9
        capacity = 0.35 * (width / 16.0) ** -0.5 / math.sqrt(1.0 - dropout)
        optimisation = 3.0 * steps**-0.35 * (1.0 + lr_curv * d_lr**2) * (1.0 + 1.5 * dropout**2)
        overfit = 0.03 * ((width / 128.0) * math.sqrt(epochs / 10.0)) ** 0.7 * math.exp(-4.0 * dropout)
        smoothing = 1.0 + 0.5 * (float(p["label_smoothing"]) - 0.1) ** 2 - 0.005
        err = (0.02 + capacity + optimisation + overfit) * smoothing * opt_bonus
        return min(err, 0.9)

    def cost(self, p: dict[str, KnobValue]) -> float:
        """Simulated seconds: per-step overhead plus compute growing with batch x width."""
        batch = float(p["batch_size"])
        steps = float(p["epochs"]) * self._DATASET / batch
        return steps * (0.004 + batch * float(p["width"]) * 2e-7)

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Error with seed-to-seed noise of 0.3 points."""
        true = self.error(params)
        return Outcome(true + 0.003 * rng.standard_normal(), self.cost(params), true_output=true)
