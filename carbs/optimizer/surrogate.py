"""The four surrogate models CARBS scores candidates with.

* output: a GP on the quantile-warped output (about sqrt(n) quantiles, mapped
  to a standard normal, sign-flipped so that larger is always better);
* cost: a GP on log cost;
* Pareto front: a 1-D GP of the warped output of the Pareto set against log cost;
* failure: a GP classifier of the probability that a run fails.

Warped-output units are called "surrogate" units below.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from carbs.optimizer.config import OutstandingSuggestionEstimatorEnum
from carbs.optimizer.gp import GPClassifier, GPRegressor

logger = logging.getLogger(__name__)


class QuantileWarp:
    """Monotone map of outputs to normal scores through ``~sqrt(n)`` quantiles.

    Between quantiles the map is linear, so with fewer quantiles than points
    distances between nearby outputs are kept rather than flattened into
    ranks. The extreme quantiles map to ``0.5/n`` and ``1 - 0.5/n`` normal
    levels instead of being clipped at +-5 sigma, which would make the best
    and worst points outliers.
    """

    def __init__(self, values: np.ndarray):
        v = np.asarray(values, dtype=float)
        n = len(v)
        q = max(2, int(math.sqrt(n)))
        levels = np.linspace(0.0, 1.0, q)
        knots = np.quantile(v, levels)
        knots, idx = np.unique(knots, return_index=True)
        self._knots = knots
        self._levels = levels[idx] if len(knots) > 1 else np.array([0.5])
        self._n = max(n, 2)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Outputs -> normal scores."""
        if len(self._knots) == 1:
            return np.zeros_like(np.asarray(values, dtype=float))
        u = np.interp(values, self._knots, self._levels)
        u = (u * (self._n - 1) + 0.5) / self._n
        return np.asarray(ndtri(u))

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        """Normal scores -> outputs (clamped to the observed range)."""
        if len(self._knots) == 1:
            return np.full_like(np.asarray(scores, dtype=float), self._knots[0])
        u = (ndtr(scores) * self._n - 0.5) / (self._n - 1)
        return np.interp(np.clip(u, 0.0, 1.0), self._levels, self._knots)


@dataclass
class SurrogatePrediction:
    """Model outputs for a batch of ``m`` candidates (all arrays ``(m,)``)."""

    surrogate_output: np.ndarray  # warped output mean, larger is better
    surrogate_var: np.ndarray  # its latent variance
    log_cost: np.ndarray  # predicted log cost
    log_cost_var: np.ndarray  # its predictive variance
    cost_estimate: np.ndarray  # exp(log_cost)
    pareto_surrogate: np.ndarray  # Pareto-front value at the predicted cost
    success_probability: np.ndarray
    target_estimate: np.ndarray  # surrogate_output mapped back to output units


class SurrogateModel:
    """Fits the output, cost, Pareto and failure models and predicts for candidates.

    Args:
        better_direction_sign: 1 when larger outputs are better, -1 otherwise.
        rng: the optimizer's generator (for subsets and Thompson samples).
    """

    def __init__(self, better_direction_sign: int, rng: np.random.Generator):
        self.sign = better_direction_sign
        self.rng = rng
        self.warp: QuantileWarp | None = None
        self.output_model: GPRegressor | None = None
        self.cost_model: GPRegressor | None = None
        self.pareto_model: GPRegressor | None = None
        self.failure_model: GPClassifier | None = None
        self._pareto_logcost_range = (0.0, 0.0)

    # -- unit conversions ----------------------------------------------------
    def output_to_surrogate(self, outputs: np.ndarray) -> np.ndarray:
        """Raw outputs -> surrogate units (larger is better)."""
        assert self.warp is not None
        return self.warp.transform(np.asarray(outputs, dtype=float) * self.sign)

    def surrogate_to_output(self, values: np.ndarray) -> np.ndarray:
        """Surrogate units -> raw outputs."""
        assert self.warp is not None
        return self.warp.inverse(np.asarray(values, dtype=float)) * self.sign

    # -- fitting -----------------------------------------------------------
    def fit_observations(
        self, X: np.ndarray, outputs: np.ndarray, costs: np.ndarray, X_failure: np.ndarray | None = None
    ) -> None:
        """Fit the output warp, the output GP and the cost GP on successes ``X`` ``(n, d)``.

        Failed inputs ``X_failure`` are then added to the output GP at the
        worst output seen (a pessimistic imputation, without refitting the
        hyperparameters). The failure classifier alone cannot stop a search
        whose output model extrapolates great results into a region where runs
        fail: its probability rarely drops below a few percent, while expected
        improvement there can be orders of magnitude larger than elsewhere.
        """
        self.warp = QuantileWarp(np.asarray(outputs) * self.sign)
        self._X = np.asarray(X, dtype=float)
        self._y = self.output_to_surrogate(outputs)
        self._has_pending = False
        self.output_model = GPRegressor().fit(self._X, self._y, self.rng)
        self.cost_model = GPRegressor().fit(self._X, np.log(costs), self.rng)
        if X_failure is not None and len(X_failure):
            self._X = np.vstack([self._X, X_failure])
            self._y = np.concatenate([self._y, np.full(len(X_failure), float(np.min(self._y)))])
            self.output_model.condition(self._X, self._y)

    def fit_pending(
        self, X_pending: np.ndarray, estimator: OutstandingSuggestionEstimatorEnum
    ) -> None:
        """Condition the output GP on guessed outputs at pending suggestions.

        The hyperparameters stay those fitted on real observations; only the
        posterior changes, so nearby candidates lose their uncertainty bonus.
        """
        assert self.output_model is not None
        if self._has_pending:  # back to the posterior given real observations only
            self.output_model.condition(self._X, self._y)
            self._has_pending = False
        if len(X_pending) == 0:
            return
        self._has_pending = True
        if estimator == OutstandingSuggestionEstimatorEnum.THOMPSON:
            guess = self.output_model.sample_joint(X_pending, self.rng)
        elif estimator == OutstandingSuggestionEstimatorEnum.MEAN:
            guess, _ = self.output_model.predict(X_pending)
        else:  # CONSTANT: the worst value seen, the most pessimistic lie
            guess = np.full(len(X_pending), float(np.min(self._y)))
        self.output_model.condition(
            np.vstack([self._X, X_pending]), np.concatenate([self._y, guess])
        )

    def fit_failures(self, X_success: np.ndarray, X_failure: np.ndarray) -> None:
        """Fit the failure classifier (only when both outcomes have been seen)."""
        if len(X_failure) == 0 or len(X_success) == 0:
            self.failure_model = None
            return
        X = np.vstack([X_success, X_failure])
        labels = np.concatenate([np.zeros(len(X_success)), np.ones(len(X_failure))])
        self.failure_model = GPClassifier().fit(X, labels, self.rng)

    def fit_pareto(self, costs: np.ndarray, outputs: np.ndarray) -> None:
        """Fit the 1-D Pareto-front GP on the Pareto set's (cost, output) pairs."""
        log_cost = np.log(np.asarray(costs, dtype=float))
        self._pareto_logcost_range = (float(log_cost.min()), float(log_cost.max()))
        self.pareto_model = GPRegressor().fit(
            log_cost[:, None], self.output_to_surrogate(outputs), self.rng, lengthscale_prior=1.0
        )

    # -- prediction --------------------------------------------------------
    def pareto_surrogate_at(self, log_cost: np.ndarray) -> np.ndarray:
        """Pareto-front value at the given log costs, clamped to the front's cost range."""
        assert self.pareto_model is not None
        lo, hi = self._pareto_logcost_range
        mean, _ = self.pareto_model.predict(np.clip(log_cost, lo, hi)[:, None])
        return mean

    def predict(self, X: np.ndarray) -> SurrogatePrediction:
        """Predict every model at candidates ``X`` ``(m, d)``."""
        assert self.output_model is not None and self.cost_model is not None
        mean, var = self.output_model.predict(X)
        log_cost, log_cost_var = self.cost_model.predict(X)
        if self.failure_model is not None:
            success = 1.0 - self.failure_model.predict_proba(X)
        else:
            success = np.ones(len(X))
        pareto = self.pareto_surrogate_at(log_cost) if self.pareto_model is not None else np.full(len(X), np.max(self._y))
        return SurrogatePrediction(
            surrogate_output=mean,
            surrogate_var=var,
            log_cost=log_cost,
            log_cost_var=log_cost_var,
            cost_estimate=np.exp(log_cost),
            pareto_surrogate=pareto,
            success_probability=success,
            target_estimate=self.surrogate_to_output(mean),
        )
