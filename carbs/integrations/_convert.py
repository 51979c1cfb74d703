"""Building CARBS parameters from the ranges other libraries describe.

Ray Tune and Optuna describe a parameter by its bounds and sampling prior
only; CARBS also needs a ``scale`` (how far one basic unit reaches) and a
``search_center``. The rules here fill both in the same way for every
adapter:

* the whole range spans ``basic_span`` basic units (4 by default), so with
  the default search radius of 0.3 a typical step covers about 7% of the
  range (of its decades, for log ranges);
* integer ranges never get a scale so small that the neighbouring integer
  is out of the search's reach;
* the center is the middle of the range in basic space (the geometric mean
  for log ranges), rounded for integers, or the first category.

Native :class:`carbs.Param` objects stay the recommended form: they carry a
deliberate scale and center instead of these defaults.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from carbs.optimizer.space import (
    ChoiceSpace,
    LinearSpace,
    LogSpace,
    Param,
    ParamSpace,
    ParamValue,
    SpaceError,
)

DEFAULT_BASIC_SPAN = 4.0


class ConversionError(ValueError):
    """A search-space entry has no faithful CARBS equivalent."""


@dataclass(frozen=True)
class ValueCodec:
    """How a value moves between the host library and a CARBS parameter.

    ``kind`` is ``"identity"``, ``"float"`` (CARBS rounds on an integer grid
    but the host expects floats), ``"json"`` (categories that CARBS cannot
    hold directly, such as ``None`` or lists, travel as their JSON text) or
    ``"grid"``: a stepped range ``low, low + step, ...`` that is not made of
    whole multiples of its step (``step=0.5``, or ``3, 5, 7``); CARBS then
    searches the position ``k`` on the grid, an integer, and the host sees
    ``low + k * step`` (an ``int`` when ``integer`` is set).
    """

    kind: str = "identity"
    low: float = 0.0
    step: float = 1.0
    integer: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("identity", "float", "json", "grid"):
            raise ValueError(
                f"ValueCodec.kind must be 'identity', 'float', 'json' or 'grid', got {self.kind!r}"
            )
        if self.kind == "grid" and not (math.isfinite(self.step) and self.step > 0):
            raise ValueError(f"ValueCodec.step must be a finite number > 0, got {self.step!r}")

    def to_carbs(self, value: Any) -> Any:
        """Host value -> CARBS parameter value (``ValueError`` for a value off a grid)."""
        if self.kind == "json":
            return json.dumps(value, sort_keys=True)
        if self.kind == "grid":
            position = (float(value) - self.low) / self.step
            k = round(position)
            if abs(position - k) > 1e-6:
                raise ValueError(f"{value!r} is not on the grid {self.low!r} + k * {self.step!r}")
            return int(k)
        return value

    def from_carbs(self, value: Any) -> Any:
        """CARBS parameter value -> host value."""
        if self.kind == "float":
            return float(value)
        if self.kind == "json":
            return json.loads(value)
        if self.kind == "grid":
            # In decimal, so that 0 + 6 * 0.05 is 0.3 as written, not 0.30000000000000004.
            host = Decimal(repr(self.low)) + int(value) * Decimal(repr(self.step))
            return int(host) if self.integer else float(host)
        return value


IDENTITY = ValueCodec("identity")


def _check_span(basic_span: float) -> None:
    if not (isinstance(basic_span, (int, float)) and math.isfinite(basic_span) and basic_span > 0):
        raise ValueError(f"basic_span must be a finite number > 0, got {basic_span!r}")


def linear_space(
    name: str,
    low: float,
    high: float,
    *,
    is_integer: bool = False,
    step: float = 1,
    basic_span: float = DEFAULT_BASIC_SPAN,
) -> LinearSpace:
    """A bounded linear range; integer ranges keep one step within reach."""
    _check_span(basic_span)
    _check_range(name, low, high)
    scale = (high - low) / basic_span
    if is_integer:
        # A step of one basic unit at most keeps the neighbour reachable.
        scale = max(scale, float(step))
        return LinearSpace(min=low, max=high, scale=scale, is_integer=True, rounding_factor=step)
    return LinearSpace(min=low, max=high, scale=scale)


def log_space(
    name: str,
    low: float,
    high: float,
    *,
    is_integer: bool = False,
    step: float = 1,
    basic_span: float = DEFAULT_BASIC_SPAN,
) -> LogSpace:
    """A bounded positive range searched on a log scale (base 10)."""
    _check_span(basic_span)
    _check_range(name, low, high)
    if low <= 0:
        raise ConversionError(
            f"parameter {name!r}: a log range needs a lower bound > 0, got {low!r}"
        )
    scale = math.log10(high / low) / basic_span
    if is_integer:
        # The relative step is largest at the lower bound.
        scale = max(scale, math.log10((low + step) / low))
        return LogSpace(min=low, max=high, scale=scale, is_integer=True, rounding_factor=step)
    return LogSpace(min=low, max=high, scale=scale)


def _check_range(name: str, low: float, high: float) -> None:
    for label, value in (("lower", low), ("upper", high)):
        if not math.isfinite(value):
            raise ConversionError(
                f"parameter {name!r}: the {label} bound must be finite, got {value!r}"
            )
    if not low < high:
        raise ConversionError(
            f"parameter {name!r}: the range [{low!r}, {high!r}] holds a single value or none; "
            "pass a single value as a constant instead"
        )


def choice_space(name: str, categories: Sequence[Any]) -> tuple[ChoiceSpace, ValueCodec]:
    """A categorical parameter, with a JSON codec when some category is not a plain scalar."""
    cats = list(categories)
    if len(cats) < 2:
        raise ConversionError(
            f"parameter {name!r}: a choice needs at least 2 categories, got {cats!r}; "
            "pass a single value as a constant instead"
        )
    plain = all(
        isinstance(c, (str, int, float, bool)) and not (isinstance(c, float) and not math.isfinite(c))
        for c in cats
    )
    codec = IDENTITY
    labels: list[Any] = cats
    if not plain:
        codec = ValueCodec("json")
        labels = []
        for c in cats:
            try:
                text = json.dumps(c, sort_keys=True)
            except (TypeError, ValueError):
                raise ConversionError(
                    f"parameter {name!r}: category {c!r} is neither a str, int, float or bool nor "
                    "JSON-serialisable; use an index or a name instead"
                ) from None
            if json.loads(text) != c or type(json.loads(text)) is not type(c):
                raise ConversionError(
                    f"parameter {name!r}: category {c!r} does not survive a JSON round trip "
                    "(tuples, non-string keys); use a list, a string or an index instead"
                )
            labels.append(text)
    try:
        return ChoiceSpace(labels), codec
    except SpaceError as e:
        raise ConversionError(f"parameter {name!r}: {e}") from None


def default_center(name: str, space: ParamSpace) -> ParamValue:
    """The middle of the range in basic space (the first category for choices)."""
    if isinstance(space, ChoiceSpace):
        return space.choices[0]
    low, high = space.basic_bounds()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConversionError(
            f"parameter {name!r}: an unbounded range needs an explicit search center"
        )
    value = space.param_from_basic((low + high) / 2)
    if space.is_integer:
        # Rounding the midpoint can step past a bound that is off the grid.
        step = space.rounding_factor
        while value > space.max:
            value -= step
        while value < space.min:
            value += step
        return int(value)
    return float(value)


def integer_grid(name: str, low: float, high: float, step: float) -> tuple[int, int]:
    """The first and last multiples of ``step`` inside ``[low, high]``."""
    if step <= 0 or step != int(step):
        raise ConversionError(
            f"parameter {name!r}: a quantization step must be a whole number > 0 for CARBS to "
            f"round to it, got {step!r}"
        )
    first = math.ceil(round(low / step, 9)) * int(step)
    last = math.floor(round(high / step, 9)) * int(step)
    if first > last:
        raise ConversionError(
            f"parameter {name!r}: no multiple of {step!r} lies in [{low!r}, {high!r}]"
        )
    return int(first), int(last)


def make_param(
    name: str,
    space: ParamSpace,
    codec: ValueCodec,
    search_center: Mapping[str, Any],
    fallback_center: ParamValue | None = None,
) -> Param:
    """A :class:`Param` centered where the user asked, else at the range's middle."""
    if name in search_center:
        center = codec.to_carbs(search_center[name])
    elif fallback_center is not None:
        center = fallback_center
    else:
        center = default_center(name, space)
    return Param(name=name, space=space, search_center=center)


def check_center_names(search_center: Mapping[str, Any], names: Sequence[str]) -> None:
    """Raise naming any search-center entry that matches no parameter."""
    unknown = sorted(set(search_center) - set(names))
    if unknown:
        raise ValueError(
            f"search_center names unknown parameter(s) {unknown}; the parameters are {list(names)}"
        )


def positive_cost(value: Any) -> float | None:
    """``value`` as a cost if it is a finite number > 0, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    cost = float(value)
    return cost if math.isfinite(cost) and cost > 0 else None
