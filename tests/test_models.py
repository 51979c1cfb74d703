"""Gaussian processes, the output warp and the acquisition function."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy.stats import norm

from carbs.optimizer.acquisition import (
    acquisition_scores,
    log_expected_improvement,
    search_log_density,
)
from carbs.optimizer.gp import GPClassifier, GPRegressor, _Priors
from carbs.optimizer.surrogate import QuantileWarp


def test_marginal_likelihood_gradient_is_exact() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=30)
    gp = GPRegressor()
    gp._center = X.mean(axis=0)
    priors = _Priors(log_lengthscale=0.0)
    theta = rng.normal(size=7) * 0.5

    def f(t: np.ndarray) -> float:
        return gp._neg_log_posterior(t, X, y, priors)[0]

    def g(t: np.ndarray) -> np.ndarray:
        return gp._neg_log_posterior(t, X, y, priors)[1]

    assert optimize.check_grad(f, g, theta) < 1e-4 * max(1.0, float(np.linalg.norm(g(theta))))


def test_gp_learns_relevant_dimensions_and_predicts() -> None:
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(80, 3))
    y = np.sin(2 * X[:, 0]) + 0.01 * rng.normal(size=80)
    gp = GPRegressor().fit(X, y, rng)
    ls = gp.lengthscales
    assert ls[0] < ls[1] and ls[0] < ls[2]
    Xt = rng.uniform(-2, 2, size=(200, 3))
    mean, var = gp.predict(Xt)
    assert np.sqrt(np.mean((mean - np.sin(2 * Xt[:, 0])) ** 2)) < 0.15
    assert np.all(var > 0)
    # Far from the data the model is unsure.
    _, far_var = gp.predict(np.full((1, 3), 30.0))
    assert far_var[0] > 10 * np.median(var)


def test_gp_handles_constant_targets_and_one_point() -> None:
    rng = np.random.default_rng(2)
    gp = GPRegressor().fit(rng.normal(size=(10, 2)), np.full(10, 3.0), rng)
    mean, _ = gp.predict(rng.normal(size=(5, 2)))
    assert np.allclose(mean, 3.0, atol=1e-6)
    gp1 = GPRegressor().fit(np.zeros((1, 2)), np.array([1.5]), rng)
    assert gp1.predict(np.zeros((1, 2)))[0][0] == pytest.approx(1.5, abs=1e-3)


def test_joint_sample_respects_posterior() -> None:
    rng = np.random.default_rng(3)
    X = np.linspace(-1, 1, 20)[:, None]
    gp = GPRegressor().fit(X, X[:, 0] ** 2, rng)
    draws = np.stack([gp.sample_joint(X[:3], rng) for _ in range(200)])
    assert np.allclose(draws.mean(axis=0), X[:3, 0] ** 2, atol=0.05)


def test_classifier_separates_failures() -> None:
    rng = np.random.default_rng(4)
    X = rng.uniform(-2, 2, size=(120, 2))
    failed = (X[:, 0] + X[:, 1] > 1.0).astype(float)
    clf = GPClassifier().fit(X, failed, rng)
    p = clf.predict_proba(np.array([[1.5, 1.5], [-1.5, -1.5], [0.5, 0.5]]))
    assert p[0] > 0.8 and p[1] < 0.2 and 0.15 < p[2] < 0.85


def test_log_expected_improvement_matches_closed_form_and_stays_finite() -> None:
    mean = np.array([0.0, 1.0, -2.0, -30.0, -200.0])
    var = np.array([1.0, 0.25, 4.0, 1.0, 1.0])
    got = log_expected_improvement(mean, var, 0.5, 0.2)
    s = np.sqrt(var)
    z = (mean - 0.5 - 0.2) / s
    direct = s * (z * norm.cdf(z) + norm.pdf(z))
    assert np.allclose(np.exp(got[:3]), direct[:3], rtol=1e-9)
    assert np.all(np.isfinite(got))
    assert got[3] > got[4]  # still ranks candidates far below the front
    # Asymptotic branch is continuous with the direct one.
    a = log_expected_improvement(np.array([-24.9999, -25.0001]), np.ones(2), 0.0, 0.0)
    assert abs(a[0] - a[1]) < 25 * 0.0002 * 1.01
    # Far ahead of the target (a confident model): finite, about log(mean - best),
    # and still ranked by how far ahead, not all tied at infinity.
    ahead = log_expected_improvement(np.array([40.0, 80.0, 1e4]), np.full(3, 1e-4), 0.0, 0.0)
    assert np.all(np.isfinite(ahead)) and ahead[0] < ahead[1] < ahead[2]
    assert np.allclose(ahead, np.log([40.0, 80.0, 1e4]), rtol=1e-9)
    # The branches meet at z = 0.
    b = log_expected_improvement(np.array([-1e-9, 0.0, 1e-9]), np.ones(3), 0.0, 0.0)
    assert np.allclose(b, math.log(1.0 / math.sqrt(2.0 * math.pi)), atol=1e-8)


def test_search_density_uses_nearest_origin() -> None:
    origins = np.array([[0.0, 0.0], [10.0, 0.0]])
    d = search_log_density(np.array([[0.3, 0.0], [9.0, 0.0], [5.0, 0.0]]), origins, 0.3)
    assert d[0] == pytest.approx(-0.5) and d[1] == pytest.approx(-0.5 * 100 / 9)
    assert d[2] < d[1]


def test_acquisition_excludes_expensive_and_failing_candidates() -> None:
    score = acquisition_scores(np.zeros(3), np.zeros(3), np.array([1.0, 0.0, 1.0]), np.array([True, True, False]))
    assert score[0] == 0.0 and score[1] == -math.inf and score[2] == -math.inf


def test_quantile_warp_is_monotone_invertible_and_not_clipped() -> None:
    values = np.random.default_rng(5).lognormal(size=100)
    warp = QuantileWarp(values)
    z = warp.transform(np.sort(values))
    assert np.all(np.diff(z) >= 0)
    assert z.min() == pytest.approx(norm.ppf(0.5 / 100)) and z.max() == pytest.approx(norm.ppf(1 - 0.5 / 100))
    assert np.allclose(warp.inverse(z), np.sort(values))
    assert len(warp._knots) == 10  # about sqrt(n) quantiles
    assert np.all(QuantileWarp(np.ones(5)).transform(np.ones(3)) == 0)


def test_extended_posterior_equals_conditioning_on_all_points() -> None:
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(60, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.normal(size=60)
    gp = GPRegressor().fit(X, y, rng)
    X_new = np.vstack([rng.uniform(-1, 1, size=(4, 3)), X[:1]])  # one new point on an observed one
    y_new = rng.normal(size=5)
    grown = gp.extended(X_new, y_new)
    full = GPRegressor().fit(X, y, rng, theta=gp.theta).condition(np.vstack([X, X_new]), np.concatenate([y, y_new]))
    Xs = rng.uniform(-1, 1, size=(40, 3))
    for a, b in zip(grown.predict(Xs), full.predict(Xs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    # The original is left as it was, and growing in two steps is growing once.
    np.testing.assert_allclose(gp.predict(Xs)[0], GPRegressor().fit(X, y, rng, theta=gp.theta).predict(Xs)[0])
    twice = gp.extended(X_new[:2], y_new[:2]).extended(X_new[2:], y_new[2:])
    np.testing.assert_allclose(twice.predict(Xs)[1], full.predict(Xs)[1], rtol=1e-6, atol=1e-8)


def test_batch_keeps_pending_guesses_only_when_asked() -> None:
    from carbs.optimizer.config import OutstandingSuggestionEstimatorEnum
    from carbs.optimizer.surrogate import SurrogateModel

    rng = np.random.default_rng(6)
    X = rng.uniform(-1, 1, size=(50, 2))
    outputs = (X[:, 0] - 0.2) ** 2 + 0.01 * rng.normal(size=50)
    model = SurrogateModel(-1, rng)
    model.fit_observations(X, outputs, np.exp(X[:, 1]))
    pending = rng.uniform(-1, 1, size=(6, 2))
    Xs = rng.uniform(-1, 1, size=(30, 2))
    # Mean guesses: keeping the earlier guesses is the same posterior as guessing all anew.
    mean = OutstandingSuggestionEstimatorEnum.MEAN
    model.fit_pending(pending[:3], mean)
    model.fit_pending(pending, mean, keep_guesses=True)
    kept = model.output_model.predict(Xs)
    model.fit_pending(pending, mean)
    np.testing.assert_allclose(kept, model.output_model.predict(Xs), rtol=1e-6, atol=1e-9)
    # Thompson guesses: without keep_guesses the result depends on the generator
    # alone, not on what was pending at the call before.
    thompson = OutstandingSuggestionEstimatorEnum.THOMPSON
    model.rng = np.random.default_rng(1)
    model.fit_pending(pending, thompson)
    fresh = model.output_model.predict(Xs)[0]
    model.fit_pending(pending[:4], thompson)
    model.rng = np.random.default_rng(1)
    model.fit_pending(pending, thompson)
    np.testing.assert_allclose(fresh, model.output_model.predict(Xs)[0])
    model.fit_pending(pending[:4], thompson)
    model.fit_pending(pending, thompson, keep_guesses=True)
    assert len(model.output_model.train_inputs) == 50 + 6
    # With no pending points, the posterior given the observations alone is back.
    model.fit_pending(np.empty((0, 2)), thompson)
    assert len(model.output_model.train_inputs) == 50
