"""The surrogates in big sweeps: reused hyperparameters and local conditioning subsets."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import carbs.optimizer.surrogate as surrogate
from carbs import CARBS, CARBSParams, LinearSpace, ObservationInParam, Param
from carbs.optimizer.gp import GPClassifier, GPRegressor, matern32
from carbs.optimizer.surrogate import (
    SurrogateHyperparameters,
    SurrogateModel,
    local_subset,
    pareto_front_indices,
)


def _data(n: int, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, d))
    outputs = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.05 * rng.normal(size=n)
    costs = np.exp(X[:, 2] + 0.1 * rng.normal(size=n))
    return X, outputs, costs


def test_matern32_matches_its_formula() -> None:
    rng = np.random.default_rng(1)
    A, B, ls = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)), np.array([0.5, 1.0, 2.0])
    r = np.sqrt((((A[:, None, :] - B[None, :, :]) / ls) ** 2).sum(-1))
    assert np.allclose(matern32(A, B, ls), (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r))


def test_given_theta_skips_the_search_and_gives_the_same_posterior() -> None:
    X, y, _ = _data(120)
    rng = np.random.default_rng(0)
    fitted = GPRegressor().fit(X, y, rng)
    assert fitted.theta is not None
    reused = GPRegressor(max_iter=0).fit(X, y, rng, theta=fitted.theta)
    Xs = np.random.default_rng(2).uniform(-2, 2, size=(30, 3))
    for a, b in zip(fitted.predict(Xs), reused.predict(Xs)):
        assert np.allclose(a, b)
    assert np.allclose(fitted.predict_mean(Xs), fitted.predict(Xs)[0])
    with pytest.raises(Exception, match="does not fit 3 inputs"):
        GPRegressor().fit(X, y, rng, theta=fitted.theta[:-1])


def test_classifier_reuses_its_hyperparameters() -> None:
    X, _, _ = _data(80)
    failed = (X[:, 0] > 0.5).astype(float)
    first = GPClassifier().fit(X, failed, np.random.default_rng(0))
    again = GPClassifier().fit(X, failed, np.random.default_rng(1), hyperparameters=first.hyperparameters)
    assert np.allclose(first.predict_proba(X), again.predict_proba(X))


def test_pareto_front_indices_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    costs, values = rng.integers(0, 20, size=200).astype(float), rng.normal(size=200)
    brute = [
        i for i in range(200)
        if not any(costs[j] <= costs[i] and values[j] >= values[i] and j != i
                   and (costs[j], -values[j], j) < (costs[i], -values[i], i) for j in range(200))
    ]
    assert list(pareto_front_indices(costs, values)) == brute


def test_local_subset_keeps_the_points_nearest_the_front() -> None:
    rng = np.random.default_rng(4)
    X = rng.uniform(-5, 5, size=(2000, 2))
    front = np.array([0, 1])
    chosen = local_subset(X, front, np.ones(2), 200, rng)
    assert len(chosen) == len(set(chosen)) == 200
    dist = np.min(np.linalg.norm(X[:, None, :] - X[front][None], axis=-1), axis=1)
    nearest = set(np.argsort(dist)[:100])
    assert nearest <= set(chosen)
    assert len(local_subset(X[:150], front, np.ones(2), 200, rng)) == 150


def test_hyperparameters_are_reused_only_within_the_growth_window() -> None:
    hp = SurrogateHyperparameters(1000, 3, (0.0,) * 6, (0.0,) * 6, (1.0, 4.0))
    assert hp.reusable_for(1000, 3) and hp.reusable_for(1099, 3) and hp.reusable_for(901, 3)
    assert not hp.reusable_for(1100, 3) and not hp.reusable_for(1000, 4)
    small = SurrogateHyperparameters(surrogate.REFIT_MIN_OBSERVATIONS - 1, 3, (0.0,) * 6, (0.0,) * 6)
    assert not small.reusable_for(small.observation_count, 3)
    assert SurrogateHyperparameters.from_dict(hp.to_dict()) == hp
    with pytest.raises(ValueError, match="dim=4"):
        SurrogateHyperparameters.from_dict({**hp.to_dict(), "dim": 4})
    with pytest.raises(ValueError, match="malformed"):
        SurrogateHyperparameters.from_dict({"dim": 3})


def test_big_data_is_conditioned_on_a_local_subset_that_predicts_like_the_full_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, outputs, costs = _data(500)
    X_fail = np.random.default_rng(5).uniform(-2, 2, size=(40, 3))
    full = SurrogateModel(1, np.random.default_rng(0))
    small = SurrogateModel(1, np.random.default_rng(0))
    with threadpool_limits(limits=1, user_api="blas"):  # as suggest() runs them
        full.fit_observations(X, outputs, costs, X_fail)
        full.fit_failures(X, X_fail)
        monkeypatch.setattr(surrogate, "MAX_CONDITION_POINTS", 200)
        small.previous = full.hyperparameters
        small.fit_observations(X, outputs, costs, X_fail)
        small.fit_failures(X, X_fail)
    assert small.output_model is not None and small.failure_model is not None
    assert len(small.output_model.train_inputs) == 200
    assert len(small.failure_model._X) == 100
    # Reused hyperparameters: the search happened at the first fit.
    assert small.hyperparameters.output_theta == full.hyperparameters.output_theta
    assert small.hyperparameters.observation_count == 540
    # Near the front, where candidates are drawn, both models agree.
    front = pareto_front_indices(np.log(costs), outputs)
    near = X[front] + np.random.default_rng(6).normal(0, 0.1, size=(len(front), 3))
    a, b = full.predict(near), small.predict(near)
    assert np.corrcoef(a.surrogate_output, b.surrogate_output)[0, 1] > 0.95
    assert np.corrcoef(a.log_cost, b.log_cost)[0, 1] > 0.95


def test_a_long_sweep_searches_hyperparameters_only_as_the_data_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(surrogate, "REFIT_MIN_OBSERVATIONS", 20)
    searches: list[int] = []
    real_fit = GPRegressor.fit

    def counting_fit(self: GPRegressor, X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                     lengthscale_prior: float | None = None, theta: np.ndarray | None = None) -> GPRegressor:
        if theta is None and X.shape[1] > 1:
            searches.append(len(X))
        return real_fit(self, X, y, rng, lengthscale_prior, theta)

    monkeypatch.setattr(GPRegressor, "fit", counting_fit)
    params = [Param(f"x{i}", LinearSpace(min=-2, max=2, scale=1.0), 0.0) for i in range(2)]
    opt = CARBS(CARBSParams(num_random_samples=4, resample_frequency=0,
                            num_candidates_for_suggestion_per_dim=10), params)
    for _ in range(40):
        out = opt.suggest()
        x = out.suggestion
        opt.observe(ObservationInParam(x, (x["x0"] - 0.5) ** 2 + x["x1"] ** 2, 1.0))
    # Output and cost searched together; below 20 at every fit, then only every 10%.
    sizes = sorted(set(searches))
    assert sizes[: 16] == list(range(4, 20))
    assert [s for s in sizes if s >= 20] == [20, 22, 25, 28, 31, 35, 39]
