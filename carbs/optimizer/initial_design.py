"""The random phase: the first runs, before the models take over.

Runs are drawn around the search center. The paper's design grows outwards
from the center only, so a center placed at a mid-sized run never learns what
the cheap end of the front looks like. Once two runs have succeeded, a share
(``cheap_probe_fraction``) of the remaining random runs is drawn around a
point one growth step cheaper than the center, found by a linear fit of log
cost on the inputs seen so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from carbs.optimizer.candidates import sample_around
from carbs.optimizer.config import CARBSParams
from carbs.optimizer.cost_targeting import log_growth
from carbs.optimizer.space import SearchSpace
from carbs.optimizer.types import ObservationInBasic

# Ridge penalty of the linear log-cost fit (basic units are O(1)).
_RIDGE = 1e-3
# Cheaper origins move at most this many search radii from the center.
_MAX_SHIFT_RADII = 4.0


def cheaper_center(
    center: np.ndarray,
    successes: Sequence[ObservationInBasic],
    log_step: float,
    radius: float,
    space: SearchSpace,
) -> np.ndarray | None:
    """The center moved ``log_step`` cheaper along a linear fit of log cost (``None`` if unknown).

    The fit is a ridge regression of log cost on the basic inputs; with fewer
    points than dimensions it is the smallest-norm direction consistent with
    the runs seen, which is all that the data can say.
    """
    if len(successes) < 2:
        return None
    X = np.stack([o.real_number_input for o in successes])
    y = np.log([o.cost for o in successes])
    if float(np.ptp(y)) < 1e-9:
        return None
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    w = np.linalg.solve(Xc.T @ Xc + _RIDGE * np.eye(X.shape[1]), Xc.T @ yc)
    norm2 = float(w @ w)
    if norm2 < 1e-12:
        return None
    step = -log_step * w / norm2
    length = float(np.linalg.norm(step))
    if length > _MAX_SHIFT_RADII * radius:
        step *= _MAX_SHIFT_RADII * radius / length
    return space.clip((center + step)[None, :])[0]


def initial_point(
    space: SearchSpace,
    center: np.ndarray,
    radius: float,
    successes: Sequence[ObservationInBasic],
    config: CARBSParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """One random-phase point and its kind (``"random"``, ``"random_cheap"`` or ``"random_wide"``)."""
    origin, kind = center, "random"
    if config.cheap_probe_fraction > 0 and rng.random() < config.cheap_probe_fraction:
        step = log_growth(config.max_cost_growth)
        costs = np.log([o.cost for o in successes]) if successes else np.zeros(0)
        if len(costs) >= 2 and float(np.ptp(costs)) < step / 2:
            # Cost has not varied yet (the cost knobs round to the same values):
            # a wider draw shows the cost model which inputs cost matters for.
            radius, kind = 2.0 * radius, "random_wide"
        else:
            cheaper = cheaper_center(center, successes, step, radius, space)
            if cheaper is not None and not math.isclose(float(np.abs(cheaper - center).max()), 0.0):
                origin, kind = cheaper, "random_cheap"
    point, _ = sample_around(space, origin[None, :], 1, radius, rng)
    return point[0], kind
