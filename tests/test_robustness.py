"""Numerical robustness of the optimizer on degenerate and extreme data.

Every scenario feeds the optimizer data that stresses its models (no spread
in the outputs, one point, only failures, repeated points, values spanning
24 orders of magnitude, many dimensions, thousands of observations) and
checks that ``suggest()`` still returns a valid, in-bounds, finite point
without raising. Where the models are expected to cope, the suggestion must
also come from the models and not from the last-resort fallback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from carbs import (
    CARBS,
    SUGGESTION_ID_DICT_KEY,
    CARBSParams,
    ChoiceSpace,
    LinearSpace,
    LogitSpace,
    LogSpace,
    ObservationInParam,
    OutstandingSuggestionEstimatorEnum,
    Param,
    SuggestOutput,
)

TWO_PARAMS = [
    Param("a", LinearSpace(min=0.0, max=1.0, scale=0.3), search_center=0.5),
    Param("b", LogSpace(min=1e-3, max=10.0), search_center=1.0),
]

MIXED_PARAMS = [
    Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), search_center=1e-3),
    Param("width", LogSpace(min=8, max=1024, is_integer=True), search_center=64),
    Param("epochs", LinearSpace(min=1, max=100, scale=10, is_integer=True), search_center=5),
    Param("dropout", LogitSpace(min=0.01, max=0.9), search_center=0.1),
    Param("opt", ChoiceSpace(["adam", "sgd", "lion"]), search_center="adam"),
]


def assert_valid(params: Sequence[Param], out: SuggestOutput, remembered: bool = True) -> None:
    """The suggestion names every parameter once, with a finite in-bounds value of the right type."""
    values = dict(out.suggestion)
    uid = values.pop(SUGGESTION_ID_DICT_KEY, None)
    assert (uid is not None) == remembered
    assert set(values) == {p.name for p in params}
    for p in params:
        v = values[p.name]
        if isinstance(p.space, ChoiceSpace):
            assert v in p.space.choices, (p.name, v)
            continue
        assert not isinstance(v, bool), (p.name, v)
        assert isinstance(v, int) if p.space.is_integer else isinstance(v, float), (p.name, v)
        assert math.isfinite(v), (p.name, v)
        assert p.space.min <= v <= p.space.max, (p.name, v, p.space)


def make(params: Sequence[Param], **settings: Any) -> CARBS:
    """A minimising optimizer with a fixed seed."""
    settings.setdefault("better_direction_sign", -1)
    return CARBS(CARBSParams(seed=0, **settings), params)


def random_points(params: Sequence[Param], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` valid parameter dicts spread over the space (not remembered as pending)."""
    sampler = CARBS(CARBSParams(seed=seed, initial_search_radius=2.0), params)
    return [
        sampler.suggest(is_suggestion_remembered=False).suggestion for _ in range(n)
    ]


def suggest_many(opt: CARBS, n: int = 4) -> list[SuggestOutput]:
    """``n`` suggestions, each checked, all left pending."""
    outs = [opt.suggest() for _ in range(n)]
    for out in outs:
        assert_valid(opt.params, out)
        assert out.suggestion[SUGGESTION_ID_DICT_KEY] in opt.outstanding_suggestions
    return outs


def kinds(outs: Sequence[SuggestOutput]) -> set[str]:
    """How each suggestion was made (random, resample, model or fallback)."""
    return {str(o.log["suggestion_kind"]) for o in outs}


def test_identical_outputs_still_use_the_models() -> None:
    opt = make(TWO_PARAMS)
    opt.initialize_from_observations(
        [ObservationInParam(x, output=0.5, cost=1.0) for x in random_points(TWO_PARAMS, 20)]
    )
    outs = suggest_many(opt, 5)
    assert "fallback" not in kinds(outs)
    assert "model" in kinds(outs)


def test_identical_outputs_and_costs_at_one_point() -> None:
    point = random_points(TWO_PARAMS, 1)[0]
    opt = make(TWO_PARAMS)
    opt.initialize_from_observations([ObservationInParam(dict(point), 0.3, 2.0) for _ in range(20)])
    outs = suggest_many(opt, 5)
    assert "fallback" not in kinds(outs)
    assert len(opt.get_pareto_set()) == 1
    assert opt.get_pareto_set()[0].sample_count == 20


def test_single_observation_goes_straight_to_the_models() -> None:
    opt = make(MIXED_PARAMS, num_random_samples=1)
    opt.observe(ObservationInParam(random_points(MIXED_PARAMS, 1)[0], output=1.0, cost=3.0))
    outs = suggest_many(opt, 4)
    assert kinds(outs) <= {"model", "resample"}


def test_all_failures_keep_sampling_around_the_center(caplog: pytest.LogCaptureFixture) -> None:
    opt = make(MIXED_PARAMS)
    with caplog.at_level(logging.WARNING, logger="carbs.optimizer.loop"):
        opt.initialize_from_observations(
            [ObservationInParam(x, output=0.0, cost=1.0, is_failure=True) for x in random_points(MIXED_PARAMS, 30)]
        )
    assert "no successful observation" in caplog.text
    outs = suggest_many(opt, 4)
    assert kinds(outs) == {"random"}
    assert opt.get_pareto_set() == []


def test_failures_dominating_a_few_successes() -> None:
    points = random_points(MIXED_PARAMS, 60)
    obs = [ObservationInParam(x, output=float(i), cost=1.0, is_failure=i % 10 != 0) for i, x in enumerate(points)]
    opt = make(MIXED_PARAMS, num_random_samples=2)
    opt.initialize_from_observations(obs)
    outs = suggest_many(opt, 4)
    assert "fallback" not in kinds(outs)
    assert all(0.0 <= o.log["suggestion_meta/success_probability"] <= 1.0 for o in outs if o.log["suggestion_kind"] == "model")


def test_non_finite_outputs_become_failures_and_do_not_poison_the_models() -> None:
    opt = make(TWO_PARAMS)
    points = random_points(TWO_PARAMS, 24)
    bad = [math.nan, math.inf, -math.inf]
    for i, x in enumerate(points):
        output = bad[i % 3] if i % 4 == 0 else float(i)
        opt.observe(ObservationInParam(x, output=output, cost=1.0 + i))
    assert len(opt.failure_observations) == 6
    assert all(math.isfinite(o.output) for o in opt.success_observations)
    outs = suggest_many(opt, 4)
    assert "fallback" not in kinds(outs)


@pytest.mark.parametrize("noisy", [False, True], ids=["same-output", "noisy-output"])
def test_duplicate_points_with_pending_duplicates(noisy: bool) -> None:
    rng = np.random.default_rng(1)
    points = random_points(TWO_PARAMS, 3)
    opt = make(TWO_PARAMS, resample_frequency=2)
    for i in range(30):
        output = float(rng.normal()) if noisy else 0.7
        opt.observe(ObservationInParam(dict(points[i % 3]), output=output, cost=1.0 + i % 3))
    outs = suggest_many(opt, 8)
    assert "fallback" not in kinds(outs)
    assert "resample" in kinds(outs)


@pytest.mark.parametrize("magnitude", [1e-12, 1e12], ids=["tiny", "huge"])
def test_extreme_output_and_cost_scales(magnitude: float) -> None:
    rng = np.random.default_rng(2)
    points = random_points(TWO_PARAMS, 20)
    obs = [
        ObservationInParam(x, output=magnitude * float(rng.normal()), cost=magnitude * (1 + float(rng.uniform())))
        for x in points
    ]
    opt = make(TWO_PARAMS)
    opt.initialize_from_observations(obs)
    outs = suggest_many(opt, 4)
    assert "fallback" not in kinds(outs)
    for o in outs:
        if o.log["suggestion_kind"] == "model":
            assert math.isfinite(o.log["suggestion_meta/cost_estimate"])
            assert o.log["suggestion_meta/cost_estimate"] > 0


def test_outputs_and_costs_spanning_24_orders_of_magnitude() -> None:
    rng = np.random.default_rng(3)
    obs = [
        ObservationInParam(x, output=float(10 ** rng.uniform(-12, 12)), cost=float(10 ** rng.uniform(-12, 12)))
        for x in random_points(TWO_PARAMS, 25)
    ]
    for sign in (1, -1):
        opt = make(TWO_PARAMS, better_direction_sign=sign)
        opt.initialize_from_observations(obs)
        outs = suggest_many(opt, 3)
        assert "fallback" not in kinds(outs)


def test_parameter_bounds_spanning_1e_minus_12_to_1e12() -> None:
    params = [
        Param("wide", LinearSpace(min=-1e12, max=1e12, scale=1e11), search_center=0.0),
        Param("decades", LogSpace(min=1e-12, max=1e12, scale=5.0), search_center=1.0),
        Param("narrow", LinearSpace(min=-1e-12, max=1e-12, scale=1e-13), search_center=0.0),
        Param("count", LogSpace(min=1, max=10**12, is_integer=True, scale=3.0), search_center=1000),
        Param("frac", LogitSpace(min=1e-12, max=1 - 1e-12), search_center=0.5),
    ]
    rng = np.random.default_rng(4)
    opt = make(params)
    for _ in range(20):
        out = opt.suggest()
        assert_valid(params, out)
        opt.observe(ObservationInParam(out.suggestion, output=float(rng.normal()), cost=1.0 + float(rng.uniform())))
    outs = suggest_many(opt, 4)
    assert "fallback" not in kinds(outs)


def test_search_center_on_the_bounds() -> None:
    params = [
        Param("lo", LinearSpace(min=0.0, max=1.0, scale=0.3), search_center=0.0),
        Param("hi", LogSpace(min=1e-4, max=1e-2), search_center=1e-2),
        Param("n", LinearSpace(min=1, max=2, is_integer=True, scale=0.5), search_center=2),
    ]
    rng = np.random.default_rng(5)
    opt = make(params)
    for _ in range(12):
        out = opt.suggest()
        assert_valid(params, out)
        opt.observe(ObservationInParam(out.suggestion, output=float(rng.normal()), cost=1.0))
    suggest_many(opt, 4)


def test_more_than_50_dimensions() -> None:
    params = (
        [Param(f"x{i}", LinearSpace(min=-5, max=5, scale=2), search_center=0.0) for i in range(40)]
        + [Param(f"n{i}", LogSpace(min=1, max=1000, is_integer=True), search_center=10) for i in range(10)]
        + [Param(f"c{i}", ChoiceSpace(["a", "b", "c"]), search_center="a") for i in range(5)]
    )
    rng = np.random.default_rng(6)
    obs = [ObservationInParam(x, float(rng.normal()), 1.0 + float(rng.uniform())) for x in random_points(params, 30)]
    opt = make(params, num_candidates_for_suggestion_per_dim=10)
    assert opt.real_dim == 40 + 10 + 15
    opt.initialize_from_observations(obs)
    outs = suggest_many(opt, 3)
    assert "fallback" not in kinds(outs)


def test_two_thousand_observations() -> None:
    rng = np.random.default_rng(7)
    points: list[dict[str, Any]] = [
        {"a": float(rng.uniform()), "b": float(10 ** rng.uniform(-3, 1))} for _ in range(2000)
    ]
    obs = [
        ObservationInParam(x, (x["a"] - 0.3) ** 2 + 0.01 * float(rng.normal()), cost=1.0 + x["b"],
                           is_failure=bool(rng.uniform() < 0.05))
        for x in points
    ]
    opt = make(TWO_PARAMS, num_candidates_for_suggestion_per_dim=20)
    opt.initialize_from_observations(obs)
    assert opt.observation_count == 2000
    outs = suggest_many(opt, 2)
    assert "fallback" not in kinds(outs)
    assert opt.get_pareto_set()


def test_choice_only_space_smaller_than_the_batch() -> None:
    params = [
        Param("opt", ChoiceSpace(["adam", "sgd"]), search_center="adam"),
        Param("act", ChoiceSpace([True, False, 1, "relu"]), search_center=True),
    ]
    opt = make(params, num_random_samples=2)
    rng = np.random.default_rng(8)
    for out in opt.suggest_batch(4):
        assert_valid(params, out)
        opt.observe(ObservationInParam(out.suggestion, output=float(rng.normal()), cost=1.0))
    # 8 distinct points exist; 12 pending suggestions must repeat some, and still be valid.
    outs = opt.suggest_batch(12)
    for out in outs:
        assert_valid(params, out)
    assert len(opt.outstanding_suggestions) == 12
    # A choice value that is a bool stays a bool and 1 stays an int, never confused.
    assert {type(o.suggestion["act"]) for o in outs} <= {bool, int, str}


@pytest.mark.parametrize("estimator", list(OutstandingSuggestionEstimatorEnum))
def test_many_pending_suggestions_with_every_estimator(estimator: OutstandingSuggestionEstimatorEnum) -> None:
    rng = np.random.default_rng(9)
    opt = make(MIXED_PARAMS, outstanding_suggestion_estimator=estimator, num_candidates_for_suggestion_per_dim=20)
    opt.initialize_from_observations(
        [ObservationInParam(x, float(rng.normal()), 1.0 + float(rng.uniform())) for x in random_points(MIXED_PARAMS, 15)]
    )
    outs = opt.suggest_batch(16)
    for out in outs:
        assert_valid(MIXED_PARAMS, out)
    assert "fallback" not in kinds(outs)
    assert len({out.suggestion[SUGGESTION_ID_DICT_KEY] for out in outs}) == 16


def test_unremembered_suggestions_leave_no_pending_state() -> None:
    opt = make(MIXED_PARAMS)
    for _ in range(5):
        assert_valid(MIXED_PARAMS, opt.suggest(is_suggestion_remembered=False), remembered=False)
    assert opt.outstanding_suggestions == {}


def test_state_round_trip_keeps_extreme_values(tmp_path: Any) -> None:
    rng = np.random.default_rng(10)
    opt = make(TWO_PARAMS)
    for i, x in enumerate(random_points(TWO_PARAMS, 12)):
        output = [1e-300, 1e300, math.nan, -1e-12][i % 4]
        opt.observe(ObservationInParam(x, output=output, cost=float(10 ** rng.uniform(-12, 12))))
    opt.suggest()
    path = tmp_path / "state.json"
    opt.save_to_file(path)
    again = CARBS.load_from_file(path)
    assert [o.output for o in again.success_observations] == [o.output for o in opt.success_observations]
    assert [o.cost for o in again.failure_observations] == [o.cost for o in opt.failure_observations]
    a, b = dict(opt.suggest().suggestion), dict(again.suggest().suggestion)
    a.pop(SUGGESTION_ID_DICT_KEY)
    b.pop(SUGGESTION_ID_DICT_KEY)
    assert a == b


def test_bulk_load_can_keep_the_center() -> None:
    opt = make(MIXED_PARAMS)
    center = opt.search_center_in_basic.copy()
    points = random_points(MIXED_PARAMS, 12)
    opt.initialize_from_observations(
        [ObservationInParam(x, output=float(i), cost=1.0 + i) for i, x in enumerate(points)], recenter=False
    )
    assert np.array_equal(opt.search_center_in_basic, center)
    assert len(opt.success_observations) == 12
    opt.initialize_from_observations([ObservationInParam(points[0], output=-5.0, cost=1.0)])
    assert not np.array_equal(opt.search_center_in_basic, center)
