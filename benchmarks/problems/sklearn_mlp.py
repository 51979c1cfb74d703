"""A real training task on the CPU: a scikit-learn MLP on the bundled digits data.

The cost is the measured wall-clock time of fitting and scoring, so it carries
the machine's real timing noise.
"""

from __future__ import annotations

import math
import time
import warnings
from functools import lru_cache

import numpy as np

from benchmarks.spec import Budget, Knob, KnobValue, Outcome, Problem


@lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed stratified 70/30 split of scikit-learn's bundled 8x8 digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x / 16.0, y, test_size=0.3, random_state=0, stratify=y
    )
    return x_train, x_val, y_train, y_val


class DigitsMLP(Problem):
    """Train ``sklearn.neural_network.MLPClassifier`` on digits; minimise validation log-loss.

    Width, depth and epochs buy accuracy with time; learning rate, L2 penalty
    and batch size are tuned alongside. Each trial draws its own weight-init
    seed, so the output is noisy the way real training is. A run whose loss
    is not finite counts as a failure.
    """

    def __init__(self) -> None:
        super().__init__(
            name="digits_mlp",
            description="Real task: scikit-learn MLP on bundled digits, validation log-loss, "
            "wall-clock cost (6 knobs)",
            knobs=(
                Knob("width", "int", 8, 512, log=True, default=64),
                Knob("layers", "int", 1, 3, default=1),
                Knob("epochs", "int", 2, 200, log=True, default=20),
                Knob("lr", "float", 1e-4, 1e-1, log=True, default=1e-3),
                Knob("alpha", "float", 1e-6, 1.0, log=True, default=1e-4),
                Knob("batch_size", "int", 16, 512, log=True, default=64),
            ),
            quick_budget=Budget(cost=8.0, max_trials=30),
            full_budget=Budget(cost=20.0, max_trials=80),
            cost_unit="s (wall clock)",
            wall_clock_cost=True,
        )

    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Fit, score and time one network; BLAS is held to one thread for stable timing."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.metrics import log_loss
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits

        x_train, x_val, y_train, y_val = _digits_split()
        model = MLPClassifier(
            hidden_layer_sizes=(int(params["width"]),) * int(params["layers"]),
            max_iter=int(params["epochs"]),
            learning_rate_init=float(params["lr"]),
            alpha=float(params["alpha"]),
            batch_size=int(params["batch_size"]),
            random_state=int(rng.integers(2**31 - 1)),
        )
        start = time.perf_counter()
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            model.fit(x_train, y_train)
            proba = model.predict_proba(x_val)
        elapsed = max(time.perf_counter() - start, 1e-6)
        loss = float(log_loss(y_val, proba, labels=np.arange(10)))
        if not math.isfinite(loss):
            return Outcome(math.nan, elapsed, is_failure=True)
        return Outcome(loss, elapsed)
