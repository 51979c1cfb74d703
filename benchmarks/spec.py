"""A tuner-neutral description of a benchmark problem and of one trial's outcome.

Every tuner adapter converts the same :class:`Knob` list into its own search
space (CARBS ``Param``, Optuna distributions, HEBO's design space, ...), so all
tuners search exactly the same bounds.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np

KnobValue = Union[int, float, str]
KnobKind = Literal["float", "int", "choice"]


@dataclass(frozen=True)
class Knob:
    """One tuned setting.

    Attributes:
        name: the setting's name.
        kind: ``"float"``, ``"int"`` or ``"choice"``.
        low: lower bound (numeric kinds).
        high: upper bound (numeric kinds).
        log: search on a log scale (numeric kinds; needs ``low > 0``).
        choices: the allowed values (``"choice"`` only).
        default: the starting point a user would write down; every tuner is
            given it (CARBS as its search center, the others as their first trial).
    """

    name: str
    kind: KnobKind
    low: float = math.nan
    high: float = math.nan
    log: bool = False
    choices: tuple[KnobValue, ...] = ()
    default: KnobValue | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Knob.name must be a non-empty string")
        if self.kind == "choice":
            if len(self.choices) < 2:
                raise ValueError(f"Knob {self.name!r}: choices needs 2+ values, got {self.choices!r}")
            if self.default is None:
                object.__setattr__(self, "default", self.choices[0])
            if self.default not in self.choices:
                raise ValueError(f"Knob {self.name!r}: default {self.default!r} is not a choice")
            return
        if self.kind not in ("float", "int"):
            raise ValueError(f"Knob {self.name!r}: kind must be float, int or choice, got {self.kind!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(
                f"Knob {self.name!r}: needs finite low < high, got low={self.low!r} high={self.high!r}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"Knob {self.name!r}: a log-scale knob needs low > 0, got {self.low!r}")
        if self.default is None:
            object.__setattr__(self, "default", self.midpoint())
        if not isinstance(self.default, (int, float)) or not self.low <= self.default <= self.high:
            raise ValueError(
                f"Knob {self.name!r}: default {self.default!r} is outside [{self.low}, {self.high}]"
            )

    @property
    def is_numeric(self) -> bool:
        """True for float and int knobs."""
        return self.kind != "choice"

    def midpoint(self) -> KnobValue:
        """The middle of the range on the knob's own scale (geometric for log knobs)."""
        mid = math.sqrt(self.low * self.high) if self.log else 0.5 * (self.low + self.high)
        return int(round(mid)) if self.kind == "int" else mid

    def to_unit(self, value: KnobValue) -> float:
        """Position of a numeric value in ``[0, 1]`` on the knob's scale."""
        v = float(value)
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> KnobValue:
        """Inverse of :meth:`to_unit`; integers are rounded and kept in bounds."""
        u = min(max(u, 0.0), 1.0)
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        if self.kind == "int":
            return int(min(max(round(v), math.ceil(self.low)), math.floor(self.high)))
        return min(max(v, self.low), self.high)

    def check(self, value: Any) -> KnobValue:
        """Validate one value a tuner produced; raise naming the knob otherwise."""
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"knob {self.name!r}: {value!r} is not one of {self.choices!r}")
            return value  # type: ignore[no-any-return,unused-ignore]
        if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"knob {self.name!r}: expected a number, got {value!r}")
        v = float(value)
        tol = 1e-9 * max(1.0, abs(self.high))
        if not (self.low - tol <= v <= self.high + tol):
            raise ValueError(f"knob {self.name!r}: {v!r} is outside [{self.low}, {self.high}]")
        if self.kind == "int":
            return int(round(v))
        return min(max(v, self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, as sent to the out-of-process tuner drivers."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log)
        return out


@dataclass(frozen=True)
class Outcome:
    """What one trial returned.

    Attributes:
        output: the observed metric (lower is better), ``nan`` for a failure.
        cost: what the trial cost, failures included (> 0).
        is_failure: the run crashed (out of memory, diverged, ...).
        true_output: the noise-free value used for scoring; for real tasks
            it equals ``output``.
    """

    output: float
    cost: float
    is_failure: bool = False
    true_output: float = math.nan

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cost) and self.cost > 0):
            raise ValueError(f"Outcome.cost must be finite and > 0, got {self.cost!r}")
        if math.isnan(self.true_output):
            object.__setattr__(self, "true_output", self.output)


@dataclass(frozen=True)
class Budget:
    """How much one tuner run may spend.

    Attributes:
        cost: cumulative cost at which the run stops.
        max_trials: a safety cap on the number of trials, so a tuner that
            keeps choosing very cheap settings still finishes.
    """

    cost: float
    max_trials: int


class Problem(ABC):
    """A benchmark problem: a search space, an objective to minimise and its cost.

    Subclasses call ``super().__init__`` with their settings and implement
    :meth:`evaluate`. A problem whose best output at every cost is known
    sets ``truth_cost_range`` and overrides :meth:`true_front`; runs on it
    are then also scored against that true frontier.
    """

    # The single-trial costs over which the gap to the true frontier is averaged.
    truth_cost_range: tuple[float, float] | None = None
    # What a front counts as where it has nothing (or nothing better); None: the
    # true frontier at the cheap end of ``truth_cost_range``.
    truth_ceiling: float | None = None

    def __init__(
        self,
        name: str,
        description: str,
        knobs: Sequence[Knob],
        quick_budget: Budget,
        full_budget: Budget,
        cost_unit: str = "s",
        wall_clock_cost: bool = False,
    ) -> None:
        names = [k.name for k in knobs]
        if len(set(names)) != len(names):
            raise ValueError(f"problem {name!r}: duplicate knob names in {names}")
        self.name = name
        self.description = description
        self.knobs = tuple(knobs)
        self.quick_budget = quick_budget
        self.full_budget = full_budget
        self.cost_unit = cost_unit
        # A wall-clock problem measures its own cost, so runs must not overlap.
        self.wall_clock_cost = wall_clock_cost

    @property
    def has_choices(self) -> bool:
        """Whether any knob is categorical."""
        return any(k.kind == "choice" for k in self.knobs)

    def default_params(self) -> dict[str, KnobValue]:
        """The knobs' defaults as one parameter dict."""
        return {k.name: k.default for k in self.knobs}  # type: ignore[misc]

    def check_params(self, params: dict[str, Any]) -> dict[str, KnobValue]:
        """Validate a tuner's suggestion: every knob present and in bounds."""
        missing = [k.name for k in self.knobs if k.name not in params]
        if missing:
            raise ValueError(f"problem {self.name!r}: suggestion lacks knobs {missing}")
        return {k.name: k.check(params[k.name]) for k in self.knobs}

    def true_front(self, costs: np.ndarray) -> np.ndarray | None:
        """The lowest noise-free output any setting of cost at most ``c`` reaches, per ``c``; None if unknown."""
        return None

    @abstractmethod
    def evaluate(self, params: dict[str, KnobValue], rng: np.random.Generator) -> Outcome:
        """Run one trial; ``rng`` supplies the observation noise."""

    def budget(self, mode: str) -> Budget:
        """The budget for ``"quick"`` or ``"full"`` runs."""
        if mode == "quick":
            return self.quick_budget
        if mode == "full":
            return self.full_budget
        raise ValueError(f"budget mode must be 'quick' or 'full', got {mode!r}")


def knob_names(knobs: Sequence[Knob]) -> list[str]:
    """The names of ``knobs`` in order."""
    return [k.name for k in knobs]
