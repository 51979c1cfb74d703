"""Pareto groups: grouping repeated inputs, the plain and the conservative rule."""

from __future__ import annotations

import numpy as np
import pytest

from carbs import LinearSpace, ObservationInParam, Param
from carbs.optimizer.pareto import (
    group_cost,
    group_observations,
    group_output,
    pareto_area,
    pareto_groups,
    pareto_set_from_observations,
)
from carbs.optimizer.types import ObservationInBasic


def obs(x: float, output: float, cost: float) -> ObservationInBasic:
    return ObservationInBasic(np.array([x]), output, cost)


def test_grouping_by_input() -> None:
    groups = group_observations([obs(0, 1, 1), obs(1, 2, 2), obs(0, 3, 1), obs(1 + 1e-12, 4, 2)])
    assert sorted(len(g) for g in groups) == [2, 2]
    assert {group_output(g) for g in groups} == {2.0, 3.0}


# The example from the conservative rule's description (maximising):
#   A: outputs 0 and 1 at cost 1 (mean 0.5)   B: 0.6 at cost 2
#   C: 0.55 and 0.75 at cost 3 (mean 0.65)    D: 0.8 at cost 4
EXAMPLE = [obs(0, 0, 1), obs(0, 1, 1), obs(1, 0.6, 2), obs(2, 0.55, 3), obs(2, 0.75, 3), obs(3, 0.8, 4)]


def test_plain_rule_keeps_every_improvement() -> None:
    groups = pareto_groups(group_observations(EXAMPLE), 0.0, 1, is_conservative=False)
    assert [group_cost(g) for g in groups] == [1, 2, 3, 4]


def test_conservative_rule_drops_a_single_sample_below_the_previous_best_sample() -> None:
    groups = pareto_groups(group_observations(EXAMPLE), 0.0, 1, is_conservative=True)
    assert [group_cost(g) for g in groups] == [1, 3, 4]


def test_minimising_flips_the_direction() -> None:
    data = [obs(0, 5, 1), obs(1, 4, 2), obs(2, 6, 3), obs(3, 1, 4)]
    groups = pareto_groups(group_observations(data), 0.0, -1, is_conservative=False)
    assert [group_output(g) for g in groups] == [5, 4, 1]


def test_cheap_region_is_lumped_into_one_slot() -> None:
    # The cheapest 50% compete for the first slot: the best of them wins it.
    data = [obs(0, 0.1, 1), obs(1, 0.9, 1.5), obs(2, 0.5, 2), obs(3, 1.0, 10)]
    groups = pareto_groups(group_observations(data), 0.5, 1, is_conservative=False)
    assert [group_output(g) for g in groups] == [0.9, 1.0]


def test_conservative_prefers_resampled_cheap_groups() -> None:
    data = [obs(0, 0.5, 1), obs(0, 0.4, 1), obs(1, 0.9, 1)]
    groups = pareto_groups(group_observations(data), 1.0, 1, is_conservative=True)
    assert len(groups) == 1 and len(groups[0]) == 2


def test_pareto_area() -> None:
    groups = pareto_groups(group_observations([obs(0, 1, 1), obs(1, 2, 3), obs(2, 3, 4)]), 0.0, 1, False)
    assert pareto_area(groups) == pytest.approx((3 - 1) * 1 + (4 - 3) * 2)


def test_pareto_set_in_param_space_ignores_failures() -> None:
    params = [Param("x", LinearSpace(min=0, max=10, is_integer=True), 1)]
    observations = [
        ObservationInParam({"x": 1}, 0.5, 1.0),
        ObservationInParam({"x": 2}, 0.7, 2.0),
        ObservationInParam({"x": 3}, 99.0, 3.0, is_failure=True),
        ObservationInParam({"x": 4}, float("nan"), 3.0),
        ObservationInParam({"x": 2.0}, 0.9, 2.0),
    ]
    points = pareto_set_from_observations(observations, params, 1, min_pareto_cost_fraction=0.0)
    assert [p.input["x"] for p in points] == [1, 2]
    assert points[1].sample_count == 2 and points[1].output == pytest.approx(0.8)


@pytest.mark.parametrize("order", [[0, 1, 2], [0, 2, 1]])
def test_equal_cost_keeps_only_the_better_group(order: list[int]) -> None:
    data = [obs(0, 1.0, 1), obs(1, 0.8, 12), obs(2, 0.5, 12)]
    groups = pareto_groups(group_observations([data[i] for i in order]), 0.0, -1, is_conservative=False)
    assert [(group_cost(g), group_output(g)) for g in groups] == [(1, 1.0), (12, 0.5)]
