"""Grouping repeated observations and choosing the performance-cost Pareto set.

A *Pareto group* is the set of observations of one input; its output and cost
are the means over its samples. Groups are ranked from cheap to expensive and
a group joins the Pareto set when it beats every cheaper member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from carbs.optimizer.types import ObservationInBasic, ObservationInParam, ParetoPoint

if TYPE_CHECKING:
    from carbs.optimizer.space import Param

ObservationGroup = tuple[ObservationInBasic, ...]


def group_observations(observations: Sequence[ObservationInBasic]) -> list[ObservationGroup]:
    """Group observations whose inputs are equal (to 1e-8 in basic space), in first-seen order."""
    if not observations:
        return []
    # One rounding of the stacked inputs: per-row numpy calls dominate at thousands of rows.
    rows = np.round(np.stack([np.asarray(o.real_number_input, dtype=float) for o in observations]), 8)
    groups: dict[bytes, list[ObservationInBasic]] = {}
    for obs, row in zip(observations, rows):
        groups.setdefault(row.tobytes(), []).append(obs)
    return [tuple(g) for g in groups.values()]


def group_cost(group: Sequence[ObservationInBasic]) -> float:
    """Mean cost of a group."""
    return sum(o.cost for o in group) / len(group)


def group_output(group: Sequence[ObservationInBasic]) -> float:
    """Mean output of a group."""
    return sum(o.output for o in group) / len(group)


def pareto_groups(
    groups: Sequence[ObservationGroup],
    min_pareto_cost_fraction: float,
    better_direction_sign: int,
    is_conservative: bool = True,
    cheap_tolerance: float | None = None,
) -> list[ObservationGroup]:
    """Pareto groups, cheapest first.

    Groups are ranked by mean cost and each joins the set when its mean
    output beats the last member's. The cheapest ``min_pareto_cost_fraction``
    of observed costs is treated specially (cheap runs are noisy and
    numerous):

    * ``cheap_tolerance=None`` (the paper's rule): every group at or below
      that cost quantile competes for one first slot;
    * ``cheap_tolerance=t`` (an output noise level): a cheap group joins only
      when it beats the last member by more than ``t``, so cheap points are
      lumped only where they are equal within noise, and with no noise the
      cheap end of the front is kept whole.

    With ``is_conservative``, a group seen only once must beat the *best
    single sample* of the last member rather than its mean, and (under the
    paper's rule) resampled groups are preferred for the first slot: one lucky
    noisy sample cannot displace a point whose quality has been confirmed.
    """
    if not groups:
        return []
    sign = better_direction_sign
    all_costs = np.array([o.cost for g in groups for o in g])
    # Never below the cheapest group's mean, which a resampled group's mean can exceed.
    threshold = max(float(np.quantile(all_costs, min_pareto_cost_fraction)), min(map(group_cost, groups)))
    # Ties in cost: the better group first, so an equally expensive worse one is dominated.
    ranked = sorted(groups, key=lambda g: (group_cost(g), -group_output(g) * sign))
    if cheap_tolerance is None:
        cheap = [g for g in groups if group_cost(g) <= threshold]
        if is_conservative:
            cheap = [g for g in cheap if len(g) > 1] or cheap
        first = max(cheap, key=lambda g: group_output(g) * sign)
        rest = [g for g in ranked if group_cost(g) > threshold]
    else:
        first, rest = ranked[0], ranked[1:]
    chosen = [first]
    best_mean = group_output(first) * sign
    best_max = max(o.output * sign for o in first)
    for g in rest:
        mean = group_output(g) * sign
        bar = best_max if (is_conservative and len(g) == 1) else best_mean
        if cheap_tolerance is not None and group_cost(g) <= threshold:
            bar += cheap_tolerance
        if mean > bar:
            chosen.append(g)
            best_mean = mean
            best_max = max(o.output * sign for o in g)
    return chosen


def pareto_area(groups: Sequence[ObservationGroup]) -> float:
    """Area under the Pareto staircase (output integrated over cost), for logging."""
    area = 0.0
    for prev, cur in zip(groups, groups[1:]):
        area += (group_cost(cur) - group_cost(prev)) * group_output(prev)
    return area


def pareto_set_from_observations(
    observations: Sequence[ObservationInParam],
    params: Sequence[Param],
    better_direction_sign: int,
    min_pareto_cost_fraction: float = 0.2,
    is_conservative: bool = True,
) -> list[ParetoPoint]:
    """The Pareto set of finished observations, in parameter space, cheapest first.

    Failures, runs stopped early (``is_partial``) and non-finite outputs are
    ignored. Inputs are mapped through the search space so that values which
    round to the same point share a group.
    """
    from carbs.optimizer.space import SearchSpace

    space = SearchSpace(params)
    basic: list[ObservationInBasic] = []
    for obs in observations:
        if obs.is_failure or obs.is_partial or not np.isfinite(obs.output):
            continue
        values = {k: v for k, v in obs.input.items() if k in space.names}
        basic.append(ObservationInBasic(space.to_basic(values), float(obs.output), float(obs.cost)))
    chosen = pareto_groups(
        group_observations(basic), min_pareto_cost_fraction, better_direction_sign, is_conservative
    )
    return [
        ParetoPoint(
            input=space.from_basic(g[0].real_number_input)[0],
            output=group_output(g),
            cost=group_cost(g),
            sample_count=len(g),
        )
        for g in chosen
    ]
