"""The analysis of a study as plain JSON data, computed once and rendered many ways.

:func:`summarize` turns a :class:`~carbs.analysis.ScalingAnalysis` into a dict
of numbers, strings and lists: the counts, the best trial, the Pareto set, the
laws, the front fit, the extrapolation to a target cost and the fitted curves
sampled on a cost grid. The static report (``carbs report``), ``carbs scaling``
and the live dashboard all render from this dict, so they always agree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from carbs.analysis.analyze import ScalingAnalysis
from carbs.analysis.jsonutil import jsonable
from carbs.optimizer.space import ChoiceSpace, LinearSpace, LogitSpace, LogSpace, Param

GRID_POINTS = 80


def param_kind(param: Param) -> str:
    """How a parameter is searched: ``log``, ``logit``, ``linear`` or ``choice``."""
    space = param.space
    if isinstance(space, ChoiceSpace):
        return "choice"
    if isinstance(space, LogSpace):
        return "log"
    if isinstance(space, LogitSpace):
        return "logit"
    if isinstance(space, LinearSpace):
        return "linear"
    return type(space).__name__


def default_target_cost(analysis: ScalingAnalysis) -> float | None:
    """Ten times the costliest successful trial (``None`` without a success)."""
    if not analysis.successes:
        return None
    return 10.0 * analysis.observed_cost_range[1]


def cost_grid(analysis: ScalingAnalysis, target_cost: float | None, n: int = GRID_POINTS) -> np.ndarray:
    """Log-spaced costs over the observed range, stretched to include ``target_cost``."""
    lo, hi = analysis.observed_cost_range
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return np.empty(0)
    if target_cost is not None:
        lo, hi = min(lo, target_cost), max(hi, target_cost)
    return np.geomspace(lo, hi, n) if hi > lo else np.array([lo])


def fitted_curves(
    analysis: ScalingAnalysis, target_cost: float | None = None, n: int = GRID_POINTS
) -> dict[str, Any]:
    """The front and every law sampled on :func:`cost_grid`, each as value, low and high."""
    grid = cost_grid(analysis, target_cost, n)
    out: dict[str, Any] = {"cost": grid.tolist(), "front": None, "laws": {}}
    if grid.size == 0:
        return out
    if analysis.front is not None:
        band = analysis.front.predict_interval(grid)
        out["front"] = {
            "value": analysis.front.predict(grid).tolist(),
            "low": band[0].tolist(),
            "high": band[1].tolist(),
        }
    for name, law in analysis.laws.items():
        band = law.predict_interval(grid)
        out["laws"][name] = {
            "value": law.predict(grid).tolist(),
            "low": band[0].tolist(),
            "high": band[1].tolist(),
        }
    return out


def summarize(
    analysis: ScalingAnalysis, target_cost: float | None = None, grid_points: int = GRID_POINTS
) -> dict[str, Any]:
    """Everything the report, ``carbs scaling`` and the dashboard show, as strict JSON data.

    Args:
        analysis: the fitted analysis.
        target_cost: cost to extrapolate to (default :func:`default_target_cost`).
        grid_points: how many costs the fitted curves are sampled at.

    Returns:
        :meth:`ScalingAnalysis.to_dict` plus ``confidence``, ``params`` (name
        and kind of each parameter), ``best.trial`` (its trial number), ``target_cost``, ``extrapolation`` (``None`` with
        ``extrapolation_skipped`` saying why) and ``curves``.
    """
    data = analysis.to_dict()
    data["confidence"] = analysis.confidence
    data["params"] = [{"name": p.name, "kind": param_kind(p)} for p in analysis.params]
    best = analysis.best()
    if best is not None:
        index = next(i for i, o in enumerate(analysis.observations) if o is best)
        data["best"]["trial"] = analysis.trial_number(index)
    if target_cost is None:
        target_cost = default_target_cost(analysis)
    data["target_cost"] = target_cost
    data["extrapolation"] = None
    data["extrapolation_skipped"] = None
    if target_cost is None:
        data["extrapolation_skipped"] = "no successful trials"
    else:
        data["extrapolation"] = analysis.extrapolate(target_cost).to_dict()
    data["curves"] = fitted_curves(analysis, target_cost, grid_points)
    result: dict[str, Any] = jsonable(data)
    return result
