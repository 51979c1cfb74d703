"""Optuna distributions <-> CARBS parameters.

From Optuna (a search space inferred from the study's trials):

=========================================  ====================================
``FloatDistribution(a, b)``                ``LinearSpace(a, b)``
``FloatDistribution(a, b, log=True)``      ``LogSpace(a, b)``
``FloatDistribution(a, b, step=s)``        integer space rounded to ``s`` (whole ``s``, ``a`` a multiple of ``s``), as floats;
                                           other grids: the position ``k`` of ``a + k * s`` as an integer space
``IntDistribution(a, b, step=s)``          integer ``LinearSpace`` rounded to ``s`` (``a`` a multiple of ``s``);
                                           other grids (``3, 5, 7``): the position on the grid, as above
``IntDistribution(a, b, log=True)``        integer ``LogSpace``
``CategoricalDistribution(choices)``       ``ChoiceSpace`` (``None`` and other non-scalars via JSON)
=========================================  ====================================

To Optuna (a fixed search space given as carbs ``Param`` objects), each
parameter is declared with the distribution an objective should ask for with
the matching ``trial.suggest_*`` call (see ``suggest_params``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from carbs.integrations._extras import missing_extra

try:
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
except ImportError as e:
    raise missing_extra("optuna", "Optuna", e) from e

from carbs.integrations._convert import (
    DEFAULT_BASIC_SPAN,
    IDENTITY,
    ConversionError,
    ValueCodec,
    choice_space,
    linear_space,
    log_space,
    make_param,
)
from carbs.optimizer.space import ChoiceSpace, LinearSpace, LogitSpace, LogSpace, Param, ParamSpace


def param_from_distribution(
    name: str,
    distribution: BaseDistribution,
    search_center: Mapping[str, Any],
    basic_span: float = DEFAULT_BASIC_SPAN,
) -> tuple[Param, ValueCodec]:
    """One Optuna distribution as a CARBS parameter; raises ``ConversionError`` if unfaithful."""
    space, codec = _space_from_distribution(name, distribution, basic_span)
    return make_param(name, space, codec, search_center), codec


def _space_from_distribution(
    name: str, dist: BaseDistribution, basic_span: float
) -> tuple[ParamSpace, ValueCodec]:
    if isinstance(dist, CategoricalDistribution):
        return choice_space(name, dist.choices)
    if isinstance(dist, IntDistribution):
        if dist.log:
            return log_space(name, dist.low, dist.high, is_integer=True, basic_span=basic_span), IDENTITY
        if not _on_multiples(dist.low, dist.step):
            return _grid(name, dist.low, dist.high, dist.step, True, basic_span)
        return (
            linear_space(
                name, dist.low, dist.high, is_integer=True, step=dist.step, basic_span=basic_span
            ),
            IDENTITY,
        )
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            step = dist.step
            if not (float(step) == int(step) and _on_multiples(dist.low, step)):
                return _grid(name, dist.low, dist.high, step, False, basic_span)
            space = linear_space(
                name,
                int(round(dist.low)),
                int(round(dist.high)),
                is_integer=True,
                step=int(step),
                basic_span=basic_span,
            )
            return space, ValueCodec("float")
        if dist.log:
            return log_space(name, dist.low, dist.high, basic_span=basic_span), IDENTITY
        return linear_space(name, dist.low, dist.high, basic_span=basic_span), IDENTITY
    raise ConversionError(f"parameter {name!r}: unsupported distribution {dist!r}")


def _on_multiples(low: float, step: float) -> bool:
    """Whether the grid ``low + k * step`` is made of multiples of ``step`` (what CARBS rounds to)."""
    return math.isclose(low / step, round(low / step), abs_tol=1e-9)


def _grid(
    name: str, low: float, high: float, step: float, integer: bool, basic_span: float
) -> tuple[ParamSpace, ValueCodec]:
    """A stepped range CARBS cannot round to directly: search the position on the grid.

    ``k`` in ``0 .. n`` stands for ``low + k * step``; Optuna has already
    trimmed ``high`` to the last point of the grid.
    """
    n = int(round((high - low) / step))
    space = linear_space(name, 0, n, is_integer=True, step=1, basic_span=basic_span)
    return space, ValueCodec("grid", low=float(low), step=float(step), integer=integer)


def _check_grid(name: str, low: float, step: float) -> None:
    # Optuna's grid starts at ``low``; CARBS rounds to multiples of the step.
    if not _on_multiples(low, step):
        raise ConversionError(
            f"parameter {name!r}: the grid low + k * {step!r} starting at {low!r} is not made of "
            f"multiples of {step!r}, which is what CARBS rounds to"
        )


def distribution_from_param(param: Param) -> BaseDistribution:
    """The Optuna distribution an objective declares for a fixed CARBS parameter."""
    space = param.space
    name = param.name
    if isinstance(space, ChoiceSpace):
        return CategoricalDistribution(list(space.choices))
    if isinstance(space, LogitSpace):
        return FloatDistribution(space.min, space.max)
    if not (math.isfinite(space.min) and math.isfinite(space.max)):
        raise ConversionError(
            f"parameter {name!r}: Optuna needs finite bounds, got [{space.min!r}, {space.max!r}]"
        )
    if isinstance(space, LogSpace):
        if space.min <= 0:
            raise ConversionError(
                f"parameter {name!r}: Optuna's log distributions need min > 0; set LogSpace.min"
            )
        if space.is_integer:
            if space.rounding_factor != 1:
                raise ConversionError(
                    f"parameter {name!r}: Optuna's log integers take no step; use rounding_factor=1"
                )
            return IntDistribution(int(space.min), int(space.max), log=True)
        return FloatDistribution(space.min, space.max, log=True)
    if isinstance(space, LinearSpace) and space.is_integer:
        step = int(space.rounding_factor)
        _check_grid(name, space.min, step)
        return IntDistribution(int(space.min), int(space.max), step=step)
    return FloatDistribution(space.min, space.max)
