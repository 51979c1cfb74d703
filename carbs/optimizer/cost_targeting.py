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
* a share of them (``cost_expansion_probability`` while the front's gain per
  growth step at its top, in output units, equals its average gain, down to
  ``min_cost_expansion_probability`` when the top has flattened, and up to
  twice the difference more when the top pays twice the average)
  aims beyond the costliest Pareto point, at the upper half of one growth
  step above the *growth base*: the cost that
  ``min_runs_near_top_before_expansion`` runs have reached. When the front's
  top is already that far, the share tunes the top growth step instead, so
  the runs near the top catch up before the front grows again.

No candidate may cost more than ``max_cost_growth`` times the growth base.
Bounding growth by the runs made rather than by the Pareto set matters when
the front collapses: a cheap run with well-tuned settings can beat every
costlier run so far (on a multi-fidelity problem, the lowest fidelity), and
a bound tied to the costliest Pareto point would then hold every suggestion
at the cheapest cost for good.

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
        lower: the band's bottom in log cost, exclusive; an expansion's band
            starts above the costliest Pareto point.
    """

    log_cost: float
    half_width: float
    is_expansion: bool
    upper: float = math.inf
    lower: float = -math.inf

    def in_band(self, log_cost: np.ndarray) -> np.ndarray:
        """Boolean mask ``(m,)`` of predicted log costs inside the band."""
        lc = np.asarray(log_cost)
        return (np.abs(lc - self.log_cost) <= self.half_width) & (lc <= self.upper) & (lc > self.lower)


def expansion_share(
    pareto_value_at: Callable[[np.ndarray], np.ndarray],
    front_log_costs: np.ndarray,
    log_growth: float,
    max_share: float,
    min_share: float | None = None,
) -> float:
    """Share of model suggestions that should aim beyond the front's costliest point.

    The front's gain over its last growth step (``pareto_value_at``: the
    front's value in output units, larger is better, at the costliest point
    against one step cheaper) is compared with its average gain per step over
    its whole range. Output units, not the warped surrogate units: the warp
    maps the Pareto set's values to evenly spaced ranks, which makes every
    front look straight in log cost. A front
    still improving at its top as fast as on average gets ``max_share``; a
    front that has flattened at its top gets ``min_share`` (by default half
    of ``max_share``), so the search keeps probing whether more cost
    pays without betting on it; in between the share is interpolated. A top
    that pays more than on average (a front convex in log cost, as when the
    best values lie only at the top of the cost range) gets more, linearly up
    to ``2 * max_share - min_share`` at twice the average gain.
    """
    if min_share is None:
        min_share = 0.5 * max_share
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
    return min(1.0, min_share + (max_share - min_share) * float(np.clip(ratio, 0.0, 2.0)))


def growth_base(success_costs: np.ndarray, runs: int) -> float:
    """The cost that at least ``runs`` successful runs have reached (the ``runs``-th costliest).

    Growth is bounded relative to this cost rather than to the costliest run
    or the costliest Pareto point: a new maximum needs ``runs`` runs near the
    last one first, and a front that collapsed to a cheap point (a cheap run
    with well-tuned settings beat every costlier one) still lets the search
    grow from where it has already been.
    """
    costs = np.sort(np.asarray(success_costs, dtype=float))[::-1]
    if len(costs) == 0:
        raise ValueError("growth_base: no successful run yet")
    return float(costs[min(max(runs, 1), len(costs)) - 1])


def windowed_growth_base(success_costs: np.ndarray, window: int | None) -> float | None:
    """The costliest run made before the last ``window`` runs (``None``: no limit yet).

    The first ``window`` runs are free; after them, the costliest run may grow
    by at most one growth step per ``window`` runs, so growth over a run of
    fixed length is bounded however often expansions pay: ``n`` runs cost at
    most ``max_cost_growth ** ceil(n / window - 1)`` times the costliest of
    the first ``window``.
    """
    costs = np.asarray(success_costs, dtype=float)
    n = len(costs)
    if window is None or n <= window:
        return None
    return float(np.max(costs[: max(n - window, window)]))


def expansion_band(front_log_costs: np.ndarray, log_base: float, log_growth: float) -> tuple[float, float] | None:
    """The log-cost band ``(low, high)`` an expansion aims at, or ``None`` when there is none.

    It lies strictly above the costliest Pareto point and above the growth
    base (see :func:`growth_base`), and ends one growth step above the base.
    An expansion therefore always aims at costs no Pareto point has, even when
    the front collapsed to a cheap point, and ``None`` (no room: the front's
    top already reached a growth step above the base) means the runs near the
    top must catch up before the front grows again.
    """
    # The upper half of the step: an expansion that lands just above the top
    # (where expected improvement tends to prefer it, near known good points)
    # would grow the front by a fraction of a step per bet.
    low = max(float(np.max(front_log_costs)), log_base + 0.5 * log_growth)
    high = log_base + log_growth
    # A band narrower than a tenth of a step is no room to grow (rounding alone would leave it).
    if high - low < 0.1 * log_growth:
        return None
    return low, high


def choose_target(
    front_log_costs: np.ndarray,
    index: int,
    log_growth: float,
    share: float,
    rng: np.random.Generator,
    expansion: tuple[float, float] | None = None,
) -> CostTarget:
    """The cost band for the ``index``-th model suggestion.

    Args:
        front_log_costs: log costs of the Pareto groups ``(k,)``.
        index: how many model suggestions came before (drives the sequence).
        log_growth: log of the growth step (the largest expansion).
        share: probability of an expansion level (see :func:`expansion_share`).
        rng: the suggestion's generator.
        expansion: the band an expansion aims at (see :func:`expansion_band`);
            ``None``: no room to grow, and the share goes to the front's top
            growth step instead.
    """
    lo, hi = float(np.min(front_log_costs)), float(np.max(front_log_costs))
    if rng.random() < share:
        if expansion is None:
            # No room to grow: the runs near the top must catch up first, so
            # this suggestion tunes the front's top growth step instead.
            return CostTarget(hi - 0.5 * log_growth, 0.5 * log_growth, False, upper=hi)
        e_lo, e_hi = expansion
        return CostTarget(0.5 * (e_lo + e_hi), 0.5 * (e_hi - e_lo), True, lower=e_lo)
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
    growth_base_cost: float | None,
    max_cost_growth: float | None,
    max_suggestion_cost: float | None,
    remaining_budget: float | None,
    max_budget_fraction: float,
) -> float | None:
    """The largest upper-quantile cost a suggestion may have (``None``: no ceiling).

    The smallest of: ``max_cost_growth`` times the growth base (see
    :func:`growth_base`), ``max_suggestion_cost``, and ``max_budget_fraction``
    of the budget left.
    """
    limits = []
    if growth_base_cost is not None and max_cost_growth is not None:
        limits.append(growth_base_cost * max_cost_growth)
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
