"""The four surrogate models CARBS scores candidates with.

* output: a GP on the quantile-warped output (about sqrt(n) quantiles, mapped
  to a standard normal, sign-flipped so that larger is always better);
* cost: a GP on log cost;
* Pareto front: a 1-D GP of the warped output of the Pareto set against log cost;
* failure: a GP classifier of the probability that a run fails.

Warped-output units are called "surrogate" units below.

Two measures keep a suggestion fast in big sweeps (the figures behind them
are in docs/concepts.md, "Speed"):

* hyperparameters are searched anew only when the data grew by
  ``REFIT_GROWTH`` since the last search (always below
  ``REFIT_MIN_OBSERVATIONS``); in between the posterior is recomputed with the
  earlier ones, which is all a new observation changes much;
* past ``MAX_CONDITION_POINTS`` observations the models condition on a local
  subset: the points nearest the Pareto front (where candidates are drawn),
  in the fitted length scales, plus a random sample for the global trend.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from carbs.optimizer import candidates
from carbs.optimizer.config import OutstandingSuggestionEstimatorEnum
from carbs.optimizer.gp import GPClassifier, GPRegressor, matern32

logger = logging.getLogger(__name__)

# Observations the output and cost GPs condition on at most (the classifier:
# half as many, as its Laplace fit costs tens of factorisations).
MAX_CONDITION_POINTS = 1000
# Share of the conditioning subset taken nearest the Pareto front.
LOCAL_SHARE = 0.5
# Hyperparameters are searched again once the observations grew by this share.
REFIT_GROWTH = 0.1
REFIT_MIN_OBSERVATIONS = 200


@dataclass(frozen=True)
class SurrogateHyperparameters:
    """Hyperparameters of the output, cost and failure models, and when they were searched.

    JSON-compatible through :meth:`to_dict`, so that processes sharing a
    study can share one search.
    """

    observation_count: int
    dim: int
    output_theta: tuple[float, ...]
    cost_theta: tuple[float, ...]
    failure: tuple[float, float] | None = None

    def reusable_for(self, observation_count: int, dim: int) -> bool:
        """Whether a fit on ``observation_count`` observations may skip the search."""
        n0 = self.observation_count
        return (
            dim == self.dim
            and n0 >= REFIT_MIN_OBSERVATIONS
            and abs(observation_count - n0) < REFIT_GROWTH * n0
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {
            "observation_count": self.observation_count,
            "dim": self.dim,
            "output_theta": list(self.output_theta),
            "cost_theta": list(self.cost_theta),
            "failure": None if self.failure is None else list(self.failure),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SurrogateHyperparameters:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on a malformed dict."""
        try:
            failure = data.get("failure")
            hp = cls(
                observation_count=int(data["observation_count"]),
                dim=int(data["dim"]),
                output_theta=tuple(float(v) for v in data["output_theta"]),
                cost_theta=tuple(float(v) for v in data["cost_theta"]),
                failure=None if failure is None else (float(failure[0]), float(failure[1])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"malformed surrogate hyperparameters: {e}") from None
        if not (len(hp.output_theta) == len(hp.cost_theta) == hp.dim + 3):
            raise ValueError(f"surrogate hyperparameters do not match dim={hp.dim}")
        return hp


def pareto_front_indices(costs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Indices of the points no cheaper-or-equal point beats (``values``: larger is better)."""
    order = np.lexsort((-values, costs))
    best = np.maximum.accumulate(values[order])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = values[order][1:] > best[:-1]
    return np.sort(order[keep])


def local_subset(
    X: np.ndarray, front: np.ndarray, lengthscales: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of ``size`` rows of ``X``: those nearest the rows ``front`` (in length
    scales, by kernel correlation) for a ``LOCAL_SHARE`` of them, a random sample of the rest."""
    n = len(X)
    if n <= size:
        return np.arange(n)
    # Kernel correlation with the nearest front point: 1 at the front, ~0 far away.
    nearness = np.zeros(n)
    for start in range(0, len(front), 256):
        k = matern32(X, X[front[start : start + 256]], lengthscales)
        np.maximum(nearness, k.max(axis=1), out=nearness)
    n_local = int(size * LOCAL_SHARE)
    local = np.argsort(-nearness, kind="stable")[:n_local]
    rest = np.setdiff1d(np.arange(n), local)
    fill = rng.choice(rest, size=size - n_local, replace=False)
    return np.sort(np.concatenate([local, fill]))


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

    def __init__(
        self,
        better_direction_sign: int,
        rng: np.random.Generator,
        previous: SurrogateHyperparameters | None = None,
    ):
        self.sign = better_direction_sign
        self.rng = rng
        self.previous = previous
        self._searched_at = 0
        self._subset: np.ndarray | None = None
        self.warp: QuantileWarp | None = None
        self.output_model: GPRegressor | None = None
        # The output model given real observations only, once pending points were added.
        self._observed_output_model: GPRegressor | None = None
        self._pending_X = np.empty((0, 0))  # the pending points output_model holds guesses for
        self._origin_costs: tuple[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] | None = None
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
        self,
        X: np.ndarray,
        outputs: np.ndarray,
        costs: np.ndarray,
        X_failure: np.ndarray | None = None,
        cost_known: np.ndarray | None = None,
    ) -> None:
        """Fit the output warp, the output GP and the cost GP on successes ``X`` ``(n, d)``.

        ``cost_known`` (``(n,)`` booleans, all true by default) marks the rows
        whose cost is what a run at that point costs; the others are runs
        stopped early, whose output (a pessimistic stand-in for the final one)
        the output GP uses but whose truncated cost the cost GP must not learn.

        Failed inputs ``X_failure`` are then added to the output GP at the
        worst output seen (a pessimistic imputation, without refitting the
        hyperparameters). The failure classifier alone cannot stop a search
        whose output model extrapolates great results into a region where runs
        fail: its probability rarely drops below a few percent, while expected
        improvement there can be orders of magnitude larger than elsewhere.
        """
        self.warp = QuantileWarp(np.asarray(outputs) * self.sign)
        X = np.asarray(X, dtype=float)
        X_fail = np.empty((0, X.shape[1])) if X_failure is None else np.asarray(X_failure, dtype=float)
        y = self.output_to_surrogate(outputs)
        log_cost = np.log(np.asarray(costs, dtype=float))
        known = np.ones(len(X), dtype=bool) if cost_known is None else np.asarray(cost_known, dtype=bool)
        if known.shape != (len(X),) or not known.any():
            raise ValueError(f"cost_known must mark at least one of the {len(X)} rows, got {cost_known!r}")
        self._y_min = float(np.min(y))
        self._observed_output_model = None
        self._pending_X = np.empty((0, 0))
        self._origin_costs = None
        n, dim = len(X), X.shape[1]
        prev = self.previous
        if prev is not None and prev.reusable_for(n + len(X_fail), dim):
            out_theta: np.ndarray | None = np.array(prev.output_theta)
            cost_theta: np.ndarray | None = np.array(prev.cost_theta)
            self._searched_at = prev.observation_count
        else:
            out_theta = cost_theta = None
            self._searched_at = n + len(X_fail)
        # The pool the models condition on: successes, then failures at the
        # worst output seen (a pessimistic imputation, without refitting the
        # hyperparameters on it).
        pool_X = np.vstack([X, X_fail])
        pool_y = np.concatenate([y, np.full(len(X_fail), self._y_min)])
        if len(pool_X) <= MAX_CONDITION_POINTS:
            self._subset = None
            self.output_model = GPRegressor().fit(X, y, self.rng, theta=out_theta)
            self.cost_model = GPRegressor().fit(X[known], log_cost[known], self.rng, theta=cost_theta)
            self._X, self._y = X, y
            if len(X_fail):
                self._X, self._y = pool_X, pool_y
                self.output_model.condition(self._X, self._y)
            return
        if out_theta is None or cost_theta is None:
            # Search on a random subset (the search itself uses 256 of its points).
            sample = np.sort(self.rng.choice(n, size=min(n, MAX_CONDITION_POINTS), replace=False))
            out_theta = GPRegressor().fit(X[sample], y[sample], self.rng).theta
            sample = sample[known[sample]]
            cost_theta = GPRegressor().fit(X[sample], log_cost[sample], self.rng).theta
        assert out_theta is not None and cost_theta is not None
        finished = np.flatnonzero(known)
        front = finished[pareto_front_indices(log_cost[finished], y[finished])]
        lengthscales = np.exp(out_theta[:dim])
        self._subset = local_subset(pool_X, front, lengthscales, MAX_CONDITION_POINTS, self.rng)
        ok = self._subset[self._subset < n]  # successes in the subset
        self._X, self._y = pool_X[self._subset], pool_y[self._subset]
        ok_cost = ok[known[ok]]
        if len(ok_cost) == 0:  # the subset holds only stopped runs: any finished ones will do
            ok_cost = finished[:MAX_CONDITION_POINTS]
        self.cost_model = GPRegressor().fit(X[ok_cost], log_cost[ok_cost], self.rng, theta=cost_theta)
        self.output_model = GPRegressor().fit(X[ok], y[ok], self.rng, theta=out_theta)
        if len(ok) < len(self._subset):
            self.output_model.condition(self._X, self._y)

    @property
    def hyperparameters(self) -> SurrogateHyperparameters:
        """The hyperparameters of the fitted models, to pass as ``previous`` to a later fit."""
        assert self.output_model is not None and self.cost_model is not None
        assert self.output_model.theta is not None and self.cost_model.theta is not None
        return SurrogateHyperparameters(
            observation_count=self._searched_at,
            dim=len(self.output_model.theta) - 3,
            output_theta=tuple(float(v) for v in self.output_model.theta),
            cost_theta=tuple(float(v) for v in self.cost_model.theta),
            failure=None if self.failure_model is None else self.failure_model.hyperparameters,
        )

    def fit_pending(
        self,
        X_pending: np.ndarray,
        estimator: OutstandingSuggestionEstimatorEnum,
        keep_guesses: bool = False,
    ) -> None:
        """Condition the output GP on guessed outputs at pending suggestions ``(k, d)``.

        The hyperparameters stay those fitted on real observations; only the
        posterior changes, so nearby candidates lose their uncertainty bonus.

        With ``keep_guesses``, when the pending points are the previous call's
        followed by new ones (within a batch of suggestions, each pending for
        the next), the earlier guesses are kept and only the new points are
        guessed, given them: the posterior grows by a block instead of being
        made again, so a batch of ``b`` costs ``O(b n^2)`` rather than
        ``O(b n^3)``. Without it every guess is drawn anew, so that a
        suggestion depends on the observations and pending points alone.
        """
        assert self.output_model is not None
        if self._observed_output_model is None:
            self._observed_output_model = self.output_model
        X_pending = np.asarray(X_pending, dtype=float)
        before = self._pending_X
        if keep_guesses and 0 < len(before) < len(X_pending) and np.array_equal(X_pending[: len(before)], before):
            base, new = self.output_model, X_pending[len(before):]
        else:
            # The posterior given real observations only.
            base, new = self._observed_output_model, X_pending
        self._pending_X = X_pending.copy()
        if len(new) == 0:
            self.output_model = base
            return
        if estimator == OutstandingSuggestionEstimatorEnum.THOMPSON:
            guess = base.sample_joint(new, self.rng)
        elif estimator == OutstandingSuggestionEstimatorEnum.MEAN:
            guess, _ = base.predict(new)
        else:  # CONSTANT: the worst value seen, the most pessimistic lie
            guess = np.full(len(new), self._y_min)
        self.output_model = base.extended(new, guess)

    def fit_failures(self, X_success: np.ndarray, X_failure: np.ndarray) -> None:
        """Fit the failure classifier (only when both outcomes have been seen)."""
        if len(X_failure) == 0 or len(X_success) == 0:
            self.failure_model = None
            return
        X = np.vstack([X_success, X_failure])
        labels = np.concatenate([np.zeros(len(X_success)), np.ones(len(X_failure))])
        size = MAX_CONDITION_POINTS // 2
        if len(X) > size:
            # Within the output model's subset when there is one: near the front.
            pool = self._subset if self._subset is not None and self._subset[-1] < len(X) else np.arange(len(X))
            if len(pool) > size:
                pool = np.sort(self.rng.choice(pool, size=size, replace=False))
            X, labels = X[pool], labels[pool]
        prev = self.previous
        reuse = (
            prev is not None
            and prev.failure is not None
            and prev.reusable_for(len(X_success) + len(X_failure), X.shape[1])
        )
        hyper = prev.failure if reuse and prev is not None else None
        self.failure_model = GPClassifier().fit(X, labels, self.rng, hyperparameters=hyper)

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
        return self.pareto_model.predict_mean(np.clip(log_cost, lo, hi)[:, None])

    def log_cost_and_gradient(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted log cost ``(k,)`` at rows of ``X`` ``(k, d)`` and its gradient ``(k, d)``.

        Kept for the last ``X`` asked: the suggestions of a batch shift the
        same Pareto points, and the cost model does not change between them.
        """
        assert self.cost_model is not None
        X = np.asarray(X, dtype=float)
        key = (X.shape, X.tobytes())
        if self._origin_costs is None or self._origin_costs[0] != key:
            cost_model = self.cost_model
            values = (cost_model.predict_mean(X), candidates.log_cost_gradient(cost_model.predict_mean, X))
            self._origin_costs = (key, values)
        return self._origin_costs[1]

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
