"""Parameter spaces: transforms, rounding, bounds and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbs import ChoiceSpace, LinearSpace, LogitSpace, LogSpace, Param, SearchSpace, SpaceError
from carbs.optimizer.space import space_from_dict

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(value=finite, scale=st.floats(min_value=0.01, max_value=100))
def test_linear_round_trip(value: float, scale: float) -> None:
    space = LinearSpace(scale=scale)
    assert space.param_from_basic(space.basic_from_param(value)) == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert space.basic_from_param(value) == pytest.approx(value / scale)


@given(
    value=st.floats(min_value=1e-12, max_value=1e12),
    scale=st.floats(min_value=0.05, max_value=10),
    base=st.sampled_from([2, 10, math.e]),
)
def test_log_round_trip(value: float, scale: float, base: float) -> None:
    space = LogSpace(scale=scale, base=base)
    basic = space.basic_from_param(value)
    assert basic == pytest.approx(math.log(value, base) / scale, rel=1e-9, abs=1e-12)
    assert space.param_from_basic(basic) == pytest.approx(value, rel=1e-9)


@given(value=st.floats(min_value=1e-9, max_value=1 - 1e-9), scale=st.floats(min_value=0.1, max_value=10))
def test_logit_round_trip(value: float, scale: float) -> None:
    space = LogitSpace(scale=scale)
    basic = space.basic_from_param(value)
    assert basic == pytest.approx(math.log10(value / (1 - value)) / scale, rel=1e-6, abs=1e-9)
    assert space.param_from_basic(basic) == pytest.approx(value, rel=1e-6, abs=1e-12)


@given(
    basic=st.floats(min_value=-50, max_value=50),
    rounding=st.sampled_from([1, 2, 8, 32]),
    scale=st.floats(min_value=1, max_value=100),
)
def test_integer_linear_rounding_is_idempotent_and_a_multiple(basic: float, rounding: int, scale: float) -> None:
    space = LinearSpace(scale=scale, is_integer=True, rounding_factor=rounding)
    value = space.param_from_basic(basic)
    assert isinstance(value, int)
    assert value % rounding == 0
    rounded = space.round_in_basic(np.array([basic]))
    again = space.round_in_basic(rounded)
    assert again[0] == pytest.approx(rounded[0])
    assert space.param_from_basic(float(rounded[0])) == value


@given(basic=st.floats(min_value=-3, max_value=6), rounding=st.sampled_from([1, 4, 16]))
@settings(max_examples=200)
def test_integer_log_rounding_never_reaches_zero(basic: float, rounding: int) -> None:
    space = LogSpace(is_integer=True, rounding_factor=rounding)
    value = space.param_from_basic(basic)
    assert value >= rounding and value % rounding == 0
    rounded = space.round_in_basic(np.array([basic]))
    assert space.param_from_basic(float(rounded[0])) == value


@given(lo=st.floats(-100, 100), width=st.floats(0.5, 100), x=st.floats(-300, 300))
def test_in_bounds_matches_the_interval(lo: float, width: float, x: float) -> None:
    space = LinearSpace(min=lo, max=lo + width)
    tol = 1e-6 * max(1.0, abs(lo), abs(lo + width))
    inside = bool(space.in_bounds(np.array([x]))[0])
    if lo + tol <= x <= lo + width - tol:
        assert inside
    elif x < lo - tol or x > lo + width + tol:
        assert not inside


def test_integer_bounds_have_reference_slack() -> None:
    space = LinearSpace(min=1, max=10, is_integer=True)
    assert space.min_bound == pytest.approx(0.9) and space.max_bound == pytest.approx(10.1)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LogSpace(min=0), "LogSpace.min must be > 0, got 0"),
        (lambda: LogSpace(min=-1.0, max=2), "LogSpace.min must be > 0, got -1.0"),
        (lambda: LogitSpace(min=-0.1), r"LogitSpace.min must lie in \[0, 1\], got -0.1"),
        (lambda: LogitSpace(max=1.5), r"LogitSpace.max must lie in \[0, 1\], got 1.5"),
        (lambda: LinearSpace(min=3, max=1), r"LinearSpace.min \(3\) must be below LinearSpace.max \(1\)"),
        (lambda: LinearSpace(scale=0), "LinearSpace.scale must be a finite number > 0, got 0"),
        (lambda: LinearSpace(min="a"), "LinearSpace.min must be a number, got 'a'"),
        (lambda: LinearSpace(is_integer=True, rounding_factor=0.5), "rounding_factor must be a whole number"),
        (lambda: ChoiceSpace(["a"]), "at least 2 values"),
        (lambda: ChoiceSpace(["a", "a"]), "duplicates"),
        (lambda: LogSpace(base=1), "LogSpace.base must be a finite number > 1, got 1"),
    ],
)
def test_bad_spaces_are_named(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpaceError, match=match):
        make()


def test_search_center_outside_bounds_is_an_error() -> None:
    with pytest.raises(SpaceError, match=r"search_center of parameter 'lr': value 2.0 is outside"):
        Param("lr", LogSpace(min=1e-5, max=1.0), search_center=2.0)
    with pytest.raises(SpaceError, match="'rmsprop' is not one of the choices"):
        Param("opt", ChoiceSpace(["adam", "sgd"]), search_center="rmsprop")


def test_choice_space_one_hot_and_rounding() -> None:
    space = ChoiceSpace(["adam", "sgd", "lion"])
    assert list(space.to_basic_one("opt", "sgd")) == [0.0, 0.5, 0.0]
    rows = np.array([[0.1, 0.4, 0.3], [0.9, -1.0, 0.0]])
    assert space.from_basic_rows(rows) == ["sgd", "adam"]
    assert space.round_in_basic(rows).tolist() == [[0, 0.5, 0], [0.5, 0, 0]]


def test_choice_space_distinguishes_bool_and_int() -> None:
    space = ChoiceSpace([True, 1, "1"])
    assert space.index_of("x", True) == 0
    assert space.index_of("x", 1) == 1
    assert space.index_of("x", "1") == 2


def _params() -> list[Param]:
    return [
        Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), 1e-3),
        Param("width", LogSpace(min=8, max=1024, is_integer=True, base=2), 64),
        Param("opt", ChoiceSpace(["adam", "sgd", "lion"]), "lion"),
        Param("dropout", LogitSpace(min=0.01, max=0.9), 0.1),
        Param("epochs", LinearSpace(min=1, max=50, scale=5, is_integer=True), 10),
    ]


def test_search_space_layout_and_round_trip() -> None:
    space = SearchSpace(_params())
    assert space.dim == 1 + 1 + 3 + 1 + 1
    values = {"lr": 3e-4, "width": 100, "opt": "sgd", "dropout": 0.25, "epochs": 7}
    row = space.to_basic(values)
    back = space.from_basic(row)[0]
    assert back["width"] == 100 and isinstance(back["width"], int)
    assert back["opt"] == "sgd" and back["epochs"] == 7
    assert back["lr"] == pytest.approx(3e-4) and back["dropout"] == pytest.approx(0.25)


def test_search_space_names_unknown_and_missing() -> None:
    space = SearchSpace(_params())
    with pytest.raises(SpaceError, match=r"unknown parameter\(s\) \['lrr'\] and missing parameter\(s\) \['lr'\]"):
        space.to_basic({"lrr": 1e-3, "width": 64, "opt": "adam", "dropout": 0.1, "epochs": 3})


def test_search_space_out_of_bounds_value() -> None:
    space = SearchSpace(_params())
    with pytest.raises(SpaceError, match=r"parameter 'epochs': value 80.0 is outside the bounds \[1, 50\]"):
        space.to_basic({"lr": 1e-3, "width": 64, "opt": "adam", "dropout": 0.1, "epochs": 80})


@given(st.lists(st.floats(-20, 20), min_size=7, max_size=7))
def test_clip_always_lands_in_bounds(row: list[float]) -> None:
    space = SearchSpace(_params())
    clipped = space.clip(np.array([row]))
    assert space.in_bounds(clipped)[0]
    assert np.allclose(space.round(clipped), clipped)


def test_integer_clip_steps_back_inside_odd_bounds() -> None:
    space = SearchSpace([Param("n", LinearSpace(min=3, max=13, is_integer=True, rounding_factor=4), 4)])
    clipped = space.clip(np.array([[100.0], [-100.0]]))
    assert [d["n"] for d in space.from_basic(clipped)] == [12, 4]


def test_space_dict_round_trip() -> None:
    for p in _params():
        again = Param.from_dict(p.to_dict())
        assert again == p
    assert space_from_dict(LogSpace(max=10).to_dict()) == LogSpace(max=10)
    with pytest.raises(SpaceError, match="unknown space type 'CubeSpace'"):
        space_from_dict({"type": "CubeSpace"})
    with pytest.raises(SpaceError, match="LinearSpace: unknown field 'mni'"):
        space_from_dict({"type": "LinearSpace", "mni": 0})
