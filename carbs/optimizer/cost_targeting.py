"""Which cost a model suggestion aims at, and the ceilings no suggestion may cross.

CARBS scores a candidate by its expected improvement over the Pareto front at
the candidate's predicted cost. Left to itself, that score favours the
costliest candidates: the output model extrapolates "more compute, better
result" beyond the costliest observation, where the front has nothing to
compare against. Each suggestion therefore first picks a *cost level*:

* most levels lie across the current front, spread evenly in log cost by a
  low-discrepancy sequence (the golden-ratio sequence), from one growth step
  below the cheapest Pareto point to the costliest one, so the cheap end and
  the middle of the front keep being tuned;
* a share of them (at most ``cost_expansion_probability``) aims one growth
  step beyond the costliest Pareto point. That share shrinks when the front
  has stopped improving at its top (more cost no longer pays), and each
  expansion is bounded by ``max_cost_growth``.

Candidates whose predicted log cost lies in the chosen level's band compete;
a ceiling (growth, ``max_suggestion_cost``, the cost budget left) applies to
an upper quantile of the predicted cost, so a cap holds even where the cost
model is unsure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
# Band half-width in log cost: never narrower than this (a factor of ~1.35).
_MIN_HALF_WIDTH = 0.3
# Levels spread over the front: bands overlap a little so every cost is covered.
_LEVELS_PER_BAND = 4


@dataclass(frozen=True)
class CostTarget:
    """The band of log cost a model suggestion aims at.

    Attributes:
        log_cost: the level aimed at (natural log of cost units).
        half_width: candidates within this distance in log cost are in the band.
        is_expansion: the level lies beyond the costliest Pareto point.
        upper: the band's top in log cost; levels across the front stop at the
            costliest Pareto point, so only expansion levels grow the front.
    """

    log_cost: float
    half_width: float
    is_expansion: bool
    upper: float = math.inf

    def in_band(self, log_cost: np.ndarray) -> np.ndarray:
        """Boolean mask ``(m,)`` of predicted log costs inside the band."""
        lc = np.asarray(log_cost)
        return (np.abs(lc - self.log_cost) <= self.half_width) & (lc <= self.upper)


def expansion_share(
    pareto_value_at: Callable[[np.ndarray], np.ndarray],
    front_log_costs: np.ndarray,
    log_growth: float,
    max_share: float,
) -> float:
    """Share of model suggestions that should aim beyond the front's costliest point.

    The front's gain over its last growth step (surrogate units of the
    Pareto model at the costliest point against one step cheaper) is
    compared with its average gain per step over its whole range. A front
    still improving at its top as fast as on average gets ``max_share``; a
    front that has flattened at its top gets a quarter of it, so the search
    keeps probing whether more cost pays without betting on it.
    """
    lo, hi = float(np.min(front_log_costs)), float(np.max(front_log_costs))
    if hi - lo < log_growth:
        return max_share  # the front spans less than a step: growing is the only way to learn
    values = pareto_value_at(np.array([hi - log_growth, hi, lo]))
    top_gain = float(values[1] - values[0])
    mean_gain = float(values[1] - values[2]) * log_growth / (hi - lo)
    if mean_gain <= 1e-12:
        ratio = 1.0 if top_gain > 1e-12 else 0.0
    else:
        ratio = top_gain / mean_gain
    return max_share * (0.25 + 0.75 * float(np.clip(ratio, 0.0, 1.0)))


def choose_target(
    front_log_costs: np.ndarray,
    index: int,
    log_growth: float,
    share: float,
    rng: np.random.Generator,
) -> CostTarget:
    """The cost band for the ``index``-th model suggestion.

    Args:
        front_log_costs: log costs of the Pareto groups ``(k,)``.
        index: how many model suggestions came before (drives the sequence).
        log_growth: log of the growth step (the largest expansion).
        share: probability of an expansion level (see :func:`expansion_share`).
        rng: the suggestion's generator.
    """
    lo, hi = float(np.min(front_log_costs)), float(np.max(front_log_costs))
    if rng.random() < share:
        return CostTarget(hi + 0.5 * log_growth, 0.5 * log_growth, True)
    low = lo - log_growth
    # Golden-ratio sequence: successive levels fill the range evenly at any length.
    u = (0.5 + index * _GOLDEN) % 1.0
    level = low + u * (hi - low)
    half_width = max(_MIN_HALF_WIDTH, (hi - low) / (2 * _LEVELS_PER_BAND))
    return CostTarget(level, half_width, False, upper=hi)


def upper_log_cost(log_cost: np.ndarray, log_cost_var: np.ndarray, quantile: float) -> np.ndarray:
    """The ``quantile`` of the predicted log cost (a normal predictive distribution)."""
    if quantile <= 0.5:
        return np.asarray(log_cost, dtype=float)
    z = float(ndtri(quantile))
    return np.asarray(log_cost) + z * np.sqrt(np.maximum(log_cost_var, 0.0))


def cost_ceiling(
    front_max_cost: float | None,
    max_cost_growth: float | None,
    max_suggestion_cost: float | None,
    remaining_budget: float | None,
    max_budget_fraction: float,
) -> float | None:
    """The largest upper-quantile cost a suggestion may have (``None``: no ceiling).

    The smallest of: ``max_cost_growth`` times the costliest Pareto point,
    ``max_suggestion_cost``, and ``max_budget_fraction`` of the budget left.
    """
    limits = []
    if front_max_cost is not None and max_cost_growth is not None:
        limits.append(front_max_cost * max_cost_growth)
    if max_suggestion_cost is not None:
        limits.append(max_suggestion_cost)
    if remaining_budget is not None:
        limits.append(max(remaining_budget, 0.0) * max_budget_fraction)
    if not limits:
        return None
    return max(min(limits), 1e-300)


def band_mask(target: CostTarget, log_cost: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Candidates allowed and in the target's band; if none are, the allowed ones nearest it.

    An expansion level with no candidate in its band (a cost model that has
    not yet seen cost vary predicts about the same cost everywhere) lets every
    allowed candidate compete; the caller then measures improvement against
    the front's top (see :func:`expansion_fallback`).
    """
    mask = allowed & target.in_band(log_cost)
    if mask.any() or not allowed.any():
        return mask
    if target.is_expansion:
        return allowed.copy()
    lc = np.asarray(log_cost)
    # Above the band's top counts as far away: a level across the front never expands it.
    distance = np.where(lc > target.upper, np.inf, np.abs(lc - target.log_cost))
    distance = np.where(allowed, distance, np.inf)
    if not np.isfinite(distance).any():
        return allowed & (lc <= lc[allowed].min())
    nearest = float(distance.min())
    return allowed & (distance <= nearest + _MIN_HALF_WIDTH)


def log_growth(max_cost_growth: float | None) -> float:
    """Log of the expansion step; without a growth limit, a factor of 2 sets the bands."""
    return math.log(max_cost_growth if max_cost_growth is not None else 2.0)


def is_expansion_fallback(target: CostTarget, log_cost: np.ndarray, allowed: np.ndarray) -> bool:
    """An expansion level whose band holds no allowed candidate.

    Then no candidate is known to cost more, and the suggestion must beat the
    front's best value (its top) wherever it lands: expected improvement then
    favours what the output model knows least about, such as a cost knob that
    has not varied yet.
    """
    return target.is_expansion and not (allowed & target.in_band(log_cost)).any()
