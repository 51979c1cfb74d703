"""When and what to run again: resampling Pareto points to average out noise.

A noisy run can land on the Pareto front by luck and then anchor the search.
Running Pareto points again shows which ones hold. The paper resamples at a
fixed pace (every ``resample_frequency`` observations). With
``ResamplingEnum.NOISE`` the pace follows the measured noise: at the paper's
pace while the noise (the pooled standard deviation of repeated points) is
comparable to the gaps between neighbouring Pareto groups, and at a quarter of
it once repeats have shown that it is not, so deterministic problems spend
their budget on new points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from carbs.optimizer.config import CARBSParams, ResamplingEnum
from carbs.optimizer.pareto import ObservationGroup, group_cost, group_output
from carbs.optimizer.pending import pending_count_at

# Noise below this fraction of the median Pareto gap counts as small.
NOISE_TO_GAP_RATIO = 0.5
# How much rarer resampling becomes when the noise is small.
QUIET_SLOWDOWN = 4


def pooled_noise(groups: Sequence[ObservationGroup]) -> float | None:
    """Pooled standard deviation of outputs over repeated inputs (``None`` before any repeat)."""
    ss = 0.0
    dof = 0
    for g in groups:
        if len(g) > 1:
            y = np.array([o.output for o in g])
            ss += float(((y - y.mean()) ** 2).sum())
            dof += len(g) - 1
    return math.sqrt(ss / dof) if dof else None


def median_pareto_gap(pareto: Sequence[ObservationGroup]) -> float | None:
    """Median output difference between neighbouring Pareto groups (``None`` with fewer than 2)."""
    if len(pareto) < 2:
        return None
    outputs = np.array([group_output(g) for g in pareto])
    return float(np.median(np.abs(np.diff(outputs))))


def resample_frequency(
    config: CARBSParams, groups: Sequence[ObservationGroup], pareto: Sequence[ObservationGroup]
) -> int:
    """Observations per resample under the configured policy (0: never)."""
    freq = config.resample_frequency
    if freq == 0 or config.resampling == ResamplingEnum.FIXED:
        return freq
    noise = pooled_noise(groups)
    gap = median_pareto_gap(pareto)
    if noise is None or gap is None or noise >= NOISE_TO_GAP_RATIO * gap:
        return freq
    return freq * QUIET_SLOWDOWN


def is_resample_due(success_count: int, resample_count: int, frequency: int) -> bool:
    """A resample is due once successes exceed ``(resamples done + 1) * frequency``."""
    return frequency > 0 and success_count > (resample_count + 1) * frequency


def resample_point(
    pareto: Sequence[ObservationGroup], pending: Sequence[np.ndarray], better_direction_sign: int = 1
) -> np.ndarray:
    """The Pareto point with the fewest samples, counting pending runs of it.

    Among equally sampled points, the one that leads its cheaper neighbour on
    the front by the most goes first: a lucky noisy run shows up as a large
    lead, and it is the one that most distorts the front if it does not hold.
    """
    ordered = sorted(pareto, key=group_cost)
    best_key: tuple[int, float] | None = None
    best_point = ordered[0][0].real_number_input
    previous: float | None = None
    for g in ordered:
        x = g[0].real_number_input
        mean = group_output(g) * better_direction_sign
        lead = 0.0 if previous is None else mean - previous
        previous = mean
        key = (len(g) + pending_count_at(pending, x), -lead)
        if best_key is None or key < best_key:
            best_point, best_key = x, key
    return np.array(best_point, copy=True)
