"""Parameter spaces: how a value as the user writes it maps to the basic space.

The models and the local search live in a "basic" space where one unit means
roughly the same amount of change for every parameter:

* ``LinearSpace``: ``basic = value / scale``
* ``LogSpace``:    ``basic = log_base(value) / scale``
* ``LogitSpace``:  ``basic = log10(value / (1 - value)) / scale``
* ``ChoiceSpace``: a one-hot vector of ``len(choices)`` coordinates, each
  ``0`` or ``scale``; the chosen value is the largest coordinate.

Integer spaces are rounded to a multiple of ``rounding_factor`` in parameter
space, and the rounded point (mapped back to basic space) is what is modelled
and handed out, so the models never see a value that was not run.

All array methods take and return ``numpy`` arrays of shape ``(n,)`` for real
spaces and ``(n, len(choices))`` for ``ChoiceSpace``.
"""

from __future__ import annotations

import abc
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union

import numpy as np

ParamValue = Union[int, float, str, bool]

# Tolerance when comparing a rounded value against its bounds.
_BOUND_TOL = 1e-9


class SpaceError(ValueError):
    """A parameter space or a value in it is invalid."""


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    # An int beyond float range (JSON allows them) would overflow every later float().
    return not isinstance(value, int) or abs(value) <= sys.float_info.max


class RealNumberSpace(abc.ABC):
    """Shared behaviour of the one-dimensional numeric spaces."""

    min: float
    max: float
    scale: float
    is_integer: bool
    rounding_factor: float
    kind: ClassVar[str] = "real"
    n_basic_dims: ClassVar[int] = 1

    # -- validation ---------------------------------------------------------
    def _validate_common(self) -> None:
        name = type(self).__name__
        for attr in ("min", "max", "scale", "rounding_factor"):
            value = getattr(self, attr)
            if not _is_number(value) or math.isnan(float(value)):
                raise SpaceError(f"{name}.{attr} must be a number, got {value!r}")
        if not isinstance(self.is_integer, (bool, np.bool_)):
            raise SpaceError(f"{name}.is_integer must be True or False, got {self.is_integer!r}")
        for key, value in vars(self).items():  # numpy scalars would not serialise to JSON
            if isinstance(value, np.generic):
                object.__setattr__(self, key, value.item())
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise SpaceError(f"{name}.scale must be a finite number > 0, got {self.scale!r}")
        if self.min >= self.max:
            raise SpaceError(f"{name}.min ({self.min!r}) must be below {name}.max ({self.max!r})")
        if not (math.isfinite(self.rounding_factor) and self.rounding_factor > 0):
            raise SpaceError(
                f"{name}.rounding_factor must be a finite number > 0, got {self.rounding_factor!r}"
            )
        if self.is_integer and self.rounding_factor != int(self.rounding_factor):
            raise SpaceError(
                f"{name}.rounding_factor must be a whole number for an integer space, "
                f"got {self.rounding_factor!r}"
            )

    # -- scalar interface (the reference API) --------------------------------
    def basic_from_param(self, value: ParamValue) -> float:
        """Map one parameter value to basic space."""
        if not _is_number(value):
            raise SpaceError(f"{type(self).__name__} expects a number, got {value!r}")
        return float(self.to_basic(np.array([float(value)]))[0])

    def param_from_basic(self, value: float, is_rounded: bool = True) -> float | int:
        """Map one basic-space value back to a parameter value."""
        out = float(self.from_basic(np.array([float(value)]), is_rounded=is_rounded)[0])
        if self.is_integer and is_rounded:
            return int(round(out))
        return out

    # -- vectorised interface ------------------------------------------------
    @abc.abstractmethod
    def to_basic(self, values: np.ndarray) -> np.ndarray:
        """Parameter values ``(n,)`` -> basic values ``(n,)``."""

    @abc.abstractmethod
    def _from_basic_raw(self, basic: np.ndarray) -> np.ndarray:
        """Basic values ``(n,)`` -> unrounded parameter values ``(n,)``."""

    def from_basic(self, basic: np.ndarray, is_rounded: bool = True) -> np.ndarray:
        """Basic values ``(n,)`` -> parameter values ``(n,)``, rounded if integer."""
        values = self._from_basic_raw(np.asarray(basic, dtype=float))
        if self.is_integer and is_rounded:
            values = np.round(values / self.rounding_factor) * self.rounding_factor
        return values

    def round_in_basic(self, basic: np.ndarray) -> np.ndarray:
        """Snap basic values to the nearest representable (integer) point."""
        if not self.is_integer:
            return np.asarray(basic, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.to_basic(self.from_basic(basic, is_rounded=True))

    @property
    def min_bound(self) -> float:
        """Lower bound in parameter space (integers get 0.1 of slack)."""
        return self.min - 0.1 if self.is_integer else self.min

    @property
    def max_bound(self) -> float:
        """Upper bound in parameter space (integers get 0.1 of slack)."""
        return self.max + 0.1 if self.is_integer else self.max

    def in_bounds(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of parameter values ``(n,)`` inside ``[min, max]``."""
        tol_lo = _BOUND_TOL * max(1.0, abs(self.min)) if math.isfinite(self.min) else 0.0
        tol_hi = _BOUND_TOL * max(1.0, abs(self.max)) if math.isfinite(self.max) else 0.0
        values = np.asarray(values, dtype=float)
        return (values >= self.min - tol_lo) & (values <= self.max + tol_hi) & ~np.isnan(values)

    def basic_bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the space in basic coordinates (may be infinite)."""
        with np.errstate(divide="ignore"):
            lo, hi = self.to_basic(np.array([self.min, self.max], dtype=float))
        return float(lo), float(hi)

    def validate_value(self, name: str, value: Any) -> float:
        """Check a user-provided value; return it as a float or raise naming the field."""
        if not _is_number(value):
            raise SpaceError(f"parameter {name!r}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise SpaceError(f"parameter {name!r}: value must be finite, got {value!r}")
        if not bool(self.in_bounds(np.array([value]))[0]):
            raise SpaceError(
                f"parameter {name!r}: value {value!r} is outside the bounds "
                f"[{self.min!r}, {self.max!r}] of its {type(self).__name__}"
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible description of the space."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for key, value in self.__dict__.items():
            if value is None:
                out[key] = None
            elif isinstance(value, float) and not math.isfinite(value):
                out[key] = "inf" if value > 0 else "-inf"
            else:
                out[key] = value
        return out


@dataclass(frozen=True)
class LinearSpace(RealNumberSpace):
    """A real (or integer) parameter searched on a linear scale.

    ``scale`` is how many parameter units one basic unit spans: with the
    default search radius of 0.3 a step of about ``0.3 * scale`` is typical.
    """

    min: float = -math.inf
    max: float = math.inf
    scale: float = 1.0
    is_integer: bool = False
    rounding_factor: float = 1

    def __post_init__(self) -> None:
        self._validate_common()

    def to_basic(self, values: np.ndarray) -> np.ndarray:
        """Parameter values ``(n,)`` -> basic values ``(n,)``."""
        return np.asarray(values, dtype=float) / self.scale

    def _from_basic_raw(self, basic: np.ndarray) -> np.ndarray:
        return basic * self.scale


@dataclass(frozen=True)
class LogSpace(RealNumberSpace):
    """A positive parameter searched on a log scale (learning rates, widths).

    ``min`` left as ``None`` means no lower bound other than zero; an explicit
    ``min`` must be > 0.
    """

    min: float = None  # type: ignore[assignment]
    max: float = math.inf
    scale: float = 1.0
    base: float = 10
    is_integer: bool = False
    rounding_factor: float = 1

    def __post_init__(self) -> None:
        if self.min is None:
            object.__setattr__(self, "min", 0.0)
        elif not _is_number(self.min) or not float(self.min) > 0:
            raise SpaceError(
                f"LogSpace.min must be > 0, got {self.min!r} (leave it out for no lower bound)"
            )
        if not _is_number(self.base) or not (float(self.base) > 1 and math.isfinite(self.base)):
            raise SpaceError(f"LogSpace.base must be a finite number > 1, got {self.base!r}")
        self._validate_common()

    def to_basic(self, values: np.ndarray) -> np.ndarray:
        """Parameter values ``(n,)`` -> basic values ``(n,)``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.asarray(values, dtype=float)) / (math.log(self.base) * self.scale)

    def _from_basic_raw(self, basic: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.power(float(self.base), basic * self.scale)

    def from_basic(self, basic: np.ndarray, is_rounded: bool = True) -> np.ndarray:
        """Basic values -> parameter values; integers never round down to zero."""
        values = super().from_basic(basic, is_rounded)
        if self.is_integer and is_rounded:
            values = np.maximum(values, self.rounding_factor)
        return values


@dataclass(frozen=True)
class LogitSpace(RealNumberSpace):
    """A fraction in (0, 1) searched on a logit scale (dropout, momentum)."""

    min: float = 0.0
    max: float = 1.0
    scale: float = 1.0
    is_integer: bool = field(default=False, init=False)
    rounding_factor: float = field(default=1, init=False)

    def __post_init__(self) -> None:
        for attr in ("min", "max"):
            value = getattr(self, attr)
            if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
                raise SpaceError(f"LogitSpace.{attr} must lie in [0, 1], got {value!r}")
        self._validate_common()

    def to_basic(self, values: np.ndarray) -> np.ndarray:
        """Parameter values ``(n,)`` -> basic values ``(n,)``."""
        v = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(v / (1.0 - v)) / self.scale

    def _from_basic_raw(self, basic: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.power(10.0, -basic * self.scale))


@dataclass(frozen=True)
class ChoiceSpace:
    """A categorical parameter (optimizer name, activation, ...).

    In basic space a choice is a one-hot vector with ``len(choices)``
    coordinates; the chosen coordinate is ``scale`` and the others ``0``. The
    local search perturbs every coordinate with the same Gaussian noise as the
    numeric parameters and then rounds back to the largest coordinate, so a
    sample keeps its origin's choice most of the time and switches to another
    one with a probability that grows with the search radius (about 12% per
    alternative at the default radius 0.3 and scale 0.5). Distances between
    any two different choices are equal, so no order is implied.
    """

    choices: Sequence[ParamValue]
    scale: float = 0.5
    kind: ClassVar[str] = "choice"
    is_integer: ClassVar[bool] = False

    def __post_init__(self) -> None:
        is_list = isinstance(self.choices, (Sequence, np.ndarray)) and not isinstance(self.choices, str)
        choices = tuple(self.choices) if is_list else None
        if choices is None or len(choices) < 2:
            raise SpaceError(
                f"ChoiceSpace.choices must be a list of at least 2 values, got {self.choices!r}"
            )
        for c in choices:
            if not isinstance(c, (str, int, float, bool)) or (
                isinstance(c, float) and not math.isfinite(c)
            ):
                raise SpaceError(
                    f"ChoiceSpace.choices may hold only str, int, float or bool, got {c!r}"
                )
        if len({(type(c), c) for c in choices}) != len(choices):
            raise SpaceError(f"ChoiceSpace.choices has duplicates: {list(choices)!r}")
        if not (_is_number(self.scale) and math.isfinite(self.scale) and self.scale > 0):
            raise SpaceError(f"ChoiceSpace.scale must be a finite number > 0, got {self.scale!r}")
        object.__setattr__(self, "choices", choices)

    @property
    def n_basic_dims(self) -> int:
        """Number of basic-space coordinates (one per choice)."""
        return len(self.choices)

    def index_of(self, name: str, value: Any) -> int:
        """Position of ``value`` in ``choices``; raises naming the parameter."""
        if not isinstance(value, (str, int, float, bool, np.generic)):  # arrays compare elementwise
            raise SpaceError(f"parameter {name!r}: value {value!r} is not one of the choices {list(self.choices)!r}")
        for i, c in enumerate(self.choices):
            if c == value and type(c) is type(value):
                return i
        for i, c in enumerate(self.choices):  # 1 == 1.0 and numpy scalars
            if c == value and not isinstance(c, bool) and not isinstance(value, bool):
                return i
        raise SpaceError(
            f"parameter {name!r}: value {value!r} is not one of the choices {list(self.choices)!r}"
        )

    def to_basic_one(self, name: str, value: Any) -> np.ndarray:
        """One value -> its one-hot basic vector ``(len(choices),)``."""
        out = np.zeros(len(self.choices))
        out[self.index_of(name, value)] = self.scale
        return out

    def round_in_basic(self, basic: np.ndarray) -> np.ndarray:
        """Snap ``(n, k)`` basic rows to the one-hot vector of their largest coordinate."""
        basic = np.asarray(basic, dtype=float)
        out = np.zeros_like(basic)
        out[np.arange(basic.shape[0]), np.argmax(basic, axis=1)] = self.scale
        return out

    def from_basic_rows(self, basic: np.ndarray) -> list[ParamValue]:
        """``(n, k)`` basic rows -> the chosen values."""
        return [self.choices[i] for i in np.argmax(np.asarray(basic), axis=1)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible description of the space."""
        return {"type": "ChoiceSpace", "choices": list(self.choices), "scale": self.scale}


ParamSpace = Union[LinearSpace, LogSpace, LogitSpace, ChoiceSpace]

_SPACE_TYPES: dict[str, type] = {
    "LinearSpace": LinearSpace,
    "LogSpace": LogSpace,
    "LogitSpace": LogitSpace,
    "ChoiceSpace": ChoiceSpace,
}


def space_from_dict(data: dict[str, Any]) -> ParamSpace:
    """Rebuild a space from :meth:`to_dict` output; raises on unknown types or keys."""
    if not isinstance(data, dict) or "type" not in data:
        raise SpaceError(f"a space description needs a 'type' key, got {data!r}")
    kind = data["type"]
    cls = _SPACE_TYPES.get(kind)
    if cls is None:
        raise SpaceError(f"unknown space type {kind!r}; expected one of {sorted(_SPACE_TYPES)}")
    kwargs: dict[str, Any] = {}
    allowed = {f.name for f in fields(cls) if f.init}
    for key, value in data.items():
        if key == "type":
            continue
        if key not in allowed:
            if cls is LogitSpace and key in ("is_integer", "rounding_factor"):
                continue  # written by to_dict, fixed for logit spaces
            raise SpaceError(f"{kind}: unknown field {key!r}")
        if value in ("inf", "-inf"):
            value = float(value)
        kwargs[key] = value
    if cls is LogSpace and kwargs.get("min") == 0.0:
        kwargs["min"] = None
    space: ParamSpace = cls(**kwargs)
    return space


@dataclass(frozen=True)
class Param:
    """One tuned parameter: its name, its space, and where the search starts."""

    name: str
    space: ParamSpace
    search_center: ParamValue

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"Param.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.space, (LinearSpace, LogSpace, LogitSpace, ChoiceSpace)):
            raise SpaceError(
                f"Param {self.name!r}: space must be a LinearSpace, LogSpace, LogitSpace or "
                f"ChoiceSpace, got {self.space!r}"
            )
        try:
            if isinstance(self.space, ChoiceSpace):
                self.space.index_of(self.name, self.search_center)
            else:
                self.space.validate_value(self.name, self.search_center)
        except SpaceError as e:
            raise SpaceError(f"search_center of {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible description of the parameter."""
        return {"name": self.name, "space": self.space.to_dict(), "search_center": self.search_center}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Param:
        """Rebuild a parameter from :meth:`to_dict` output."""
        missing = {"name", "space", "search_center"} - set(data)
        if missing:
            raise SpaceError(f"a parameter description is missing {sorted(missing)}: {data!r}")
        return cls(
            name=data["name"], space=space_from_dict(data["space"]), search_center=data["search_center"]
        )


class SearchSpace:
    """All parameters together: dicts of values <-> rows of the basic matrix.

    Column layout: parameters in the given order, one column for a numeric
    parameter and ``len(choices)`` columns for a categorical one.
    """

    def __init__(self, params: Sequence[Param]) -> None:
        if len(params) == 0:
            raise SpaceError("at least one parameter is needed")
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpaceError(f"duplicate parameter names: {dupes}")
        self.params = list(params)
        self.names = names
        self.slices: list[slice] = []
        start = 0
        for p in self.params:
            self.slices.append(slice(start, start + p.space.n_basic_dims))
            start += p.space.n_basic_dims
        self.dim = start
        lo = np.full(self.dim, -np.inf)
        hi = np.full(self.dim, np.inf)
        for p, s in zip(self.params, self.slices):
            if not isinstance(p.space, ChoiceSpace):
                lo[s], hi[s] = p.space.basic_bounds()
        self.basic_lower = lo
        self.basic_upper = hi

    def check_names(self, values: dict[str, Any], what: str = "input") -> None:
        """Raise naming unknown or missing parameters."""
        unknown = sorted(set(values) - set(self.names))
        missing = [n for n in self.names if n not in values]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown parameter(s) {unknown}")
            if missing:
                parts.append(f"missing parameter(s) {missing}")
            raise SpaceError(f"{what}: " + " and ".join(parts) + f"; expected {self.names}")

    def to_basic(self, values: dict[str, Any], what: str = "input") -> np.ndarray:
        """Validate one parameter dict and map it to a basic row ``(dim,)``."""
        self.check_names(values, what)
        row = np.empty(self.dim)
        for p, s in zip(self.params, self.slices):
            if isinstance(p.space, ChoiceSpace):
                row[s] = p.space.to_basic_one(p.name, values[p.name])
            else:
                v = p.space.validate_value(p.name, values[p.name])
                row[s] = p.space.to_basic(np.array([v]))
        return self.round(row[None, :])[0]

    def from_basic(self, basic: np.ndarray) -> list[dict[str, ParamValue]]:
        """Basic rows ``(n, dim)`` -> parameter dicts (rounded, Python scalars)."""
        basic = np.atleast_2d(np.asarray(basic, dtype=float))
        columns: list[list[ParamValue]] = []
        for p, s in zip(self.params, self.slices):
            if isinstance(p.space, ChoiceSpace):
                columns.append(p.space.from_basic_rows(basic[:, s]))
            else:
                vals = p.space.from_basic(basic[:, s.start])
                if p.space.is_integer:
                    columns.append([int(round(v)) for v in vals])
                else:
                    columns.append([float(v) for v in vals])
        return [
            {name: col[i] for name, col in zip(self.names, columns)} for i in range(basic.shape[0])
        ]

    def round(self, basic: np.ndarray) -> np.ndarray:
        """Snap rows ``(n, dim)`` to representable points (integers, one-hot choices)."""
        out = np.array(basic, dtype=float, copy=True)
        for p, s in zip(self.params, self.slices):
            if isinstance(p.space, ChoiceSpace):
                out[:, s] = p.space.round_in_basic(out[:, s])
            elif p.space.is_integer:
                out[:, s.start] = p.space.round_in_basic(out[:, s.start])
        return out

    def in_bounds(self, basic: np.ndarray) -> np.ndarray:
        """Mask ``(n,)`` of rounded rows whose every value lies within its bounds."""
        basic = np.atleast_2d(basic)
        mask = np.all(np.isfinite(basic), axis=1)
        for p, s in zip(self.params, self.slices):
            if not isinstance(p.space, ChoiceSpace):
                mask &= p.space.in_bounds(p.space.from_basic(basic[:, s.start]))
        return mask

    def clip(self, basic: np.ndarray) -> np.ndarray:
        """Project rows onto the bounds (then round, keeping them inside)."""
        out = np.clip(basic, self.basic_lower, self.basic_upper)
        out = self.round(out)
        # Rounding an integer can step just outside a bound that is not a
        # multiple of the rounding factor: step back inside.
        for p, s in zip(self.params, self.slices):
            space = p.space
            if isinstance(space, ChoiceSpace) or not space.is_integer:
                continue
            vals = space.from_basic(out[:, s.start])
            step = space.rounding_factor
            vals = np.where(vals > space.max, vals - step, vals)
            vals = np.where(vals < space.min, vals + step, vals)
            with np.errstate(divide="ignore"):
                out[:, s.start] = space.to_basic(vals)
        return out

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-compatible description of every parameter."""
        return [p.to_dict() for p in self.params]
