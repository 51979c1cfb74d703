"""Predicted settings and output at a target cost, with intervals and range flags."""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from carbs.analysis.front import FrontFit
from carbs.analysis.scaling import ScalingLaw
from carbs.optimizer.space import ChoiceSpace, Param, ParamValue
from carbs.optimizer.types import ParetoPoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictedValue:
    """One parameter's predicted value at the target cost.

    Attributes:
        value: the law's value (unrounded, possibly outside the parameter's bounds).
        interval: bootstrap ``(low, high)`` interval, clipped to the parameter's bounds.
        suggested: ``value`` clipped to the bounds and rounded as the space requires.
        is_clipped: ``value`` lay outside the parameter's bounds.
        raw_interval: the interval before clipping (``None``: same as ``interval``).
    """

    value: float
    interval: tuple[float, float]
    suggested: ParamValue
    is_clipped: bool
    raw_interval: tuple[float, float] | None = None

    @property
    def is_interval_clipped(self) -> bool:
        """The bootstrap interval reached outside the bounds and was cut at them."""
        return self.raw_interval is not None


@dataclass(frozen=True)
class Extrapolation:
    """What the fitted laws predict at ``target_cost``.

    Attributes:
        target_cost: the cost asked about.
        observed_cost_range: ``(min, max)`` cost of the successful trials.
        is_outside_observed_range: the target lies outside that range, so the
            prediction extrapolates the laws rather than interpolating them.
        cost_ratio: ``target_cost`` divided by the most expensive observed cost.
        parameters: predictions for the parameters that have a law.
        suggestion: a complete parameter dict to run at the target: law
            predictions where there is a law, else the most expensive Pareto
            point's value.
        output: predicted best output, if the front was fitted.
        output_interval: its bootstrap interval.
        warnings: human-readable caveats.
    """

    target_cost: float
    observed_cost_range: tuple[float, float]
    is_outside_observed_range: bool
    cost_ratio: float
    parameters: dict[str, PredictedValue]
    suggestion: dict[str, ParamValue]
    output: float | None = None
    output_interval: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-compatible summary."""
        return {
            "target_cost": self.target_cost,
            "observed_cost_range": list(self.observed_cost_range),
            "is_outside_observed_range": self.is_outside_observed_range,
            "cost_ratio": self.cost_ratio,
            "parameters": {
                name: {
                    "value": p.value,
                    "interval": list(p.interval),
                    "suggested": p.suggested,
                    "is_clipped": p.is_clipped,
                    "raw_interval": None if p.raw_interval is None else list(p.raw_interval),
                }
                for name, p in self.parameters.items()
            },
            "suggestion": dict(self.suggestion),
            "output": self.output,
            "output_interval": None if self.output_interval is None else list(self.output_interval),
            "warnings": list(self.warnings),
        }


def _suggest_value(param: Param, value: float) -> tuple[ParamValue, bool]:
    space = param.space
    assert not isinstance(space, ChoiceSpace)
    clipped = float(np.clip(value, space.min, space.max))
    is_clipped = not math.isclose(clipped, value, rel_tol=1e-12, abs_tol=0.0)
    if space.is_integer:
        step = space.rounding_factor
        rounded = round(clipped / step) * step
        if rounded > space.max:
            rounded -= step
        if rounded < space.min:
            rounded += step
        return int(round(rounded)), is_clipped
    return clipped, is_clipped


def extrapolate(
    target_cost: float,
    params: Sequence[Param],
    laws: Mapping[str, ScalingLaw],
    pareto_points: Sequence[ParetoPoint],
    observed_cost_range: tuple[float, float],
    front: FrontFit | None = None,
) -> Extrapolation:
    """Predict parameter values (and the best output) at ``target_cost``.

    Args:
        target_cost: finite and > 0.
        params: all parameters of the study.
        laws: fitted laws by parameter name (parameters without one keep the
            most expensive Pareto point's value in the suggestion).
        pareto_points: the Pareto set, cheapest first.
        observed_cost_range: ``(min, max)`` cost of the successful trials.
        front: the fitted Pareto front, for the output prediction.
    """
    # numbers.Real admits numpy scalars; bool is a Real but never a cost.
    if (
        isinstance(target_cost, bool)
        or not isinstance(target_cost, numbers.Real)
        or not (math.isfinite(target_cost) and target_cost > 0)
    ):
        raise ValueError(f"target_cost must be a finite number > 0, got {target_cost!r}")
    lo, hi = observed_cost_range
    outside = target_cost < lo or target_cost > hi
    warnings: list[str] = []
    if outside:
        side = "above" if target_cost > hi else "below"
        warnings.append(
            f"target cost {target_cost:.4g} is {side} the observed cost range "
            f"[{lo:.4g}, {hi:.4g}]: values are extrapolated"
        )
        logger.info(warnings[-1])
    anchor = dict(pareto_points[-1].input) if pareto_points else {}
    predicted: dict[str, PredictedValue] = {}
    suggestion: dict[str, ParamValue] = {}
    for param in params:
        law = laws.get(param.name)
        if law is None:
            if param.name in anchor:
                suggestion[param.name] = anchor[param.name]
            continue
        value = float(law.predict(target_cost))
        low, high = (float(v[0]) for v in law.predict_interval(target_cost))
        suggested, is_clipped = _suggest_value(param, value)
        if is_clipped:
            warnings.append(
                f"{param.name}: predicted {value:.4g} lies outside its bounds and was clipped "
                f"to {suggested}"
            )
        space = param.space
        assert not isinstance(space, ChoiceSpace)
        interval = (float(np.clip(low, space.min, space.max)), float(np.clip(high, space.min, space.max)))
        raw = None
        if interval != (low, high):
            raw = (low, high)
            warnings.append(
                f"{param.name}: the interval [{low:.4g}, {high:.4g}] reaches outside the bounds "
                f"[{space.min:.4g}, {space.max:.4g}] and is shown clipped to them"
            )
        predicted[param.name] = PredictedValue(value, interval, suggested, is_clipped, raw)
        suggestion[param.name] = suggested
    output = output_interval = None
    if front is not None:
        output = float(front.predict(target_cost))
        o_lo, o_hi = (float(v[0]) for v in front.predict_interval(target_cost))
        output_interval = (o_lo, o_hi)
    return Extrapolation(
        target_cost=float(target_cost),
        observed_cost_range=(float(lo), float(hi)),
        is_outside_observed_range=outside,
        cost_ratio=float(target_cost) / float(hi),
        parameters=predicted,
        suggestion=suggestion,
        output=output,
        output_interval=output_interval,
        warnings=warnings,
    )
