"""Plain records passed in and out of the optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from carbs.optimizer.space import ParamValue

ParamDictType = dict[str, ParamValue]

# Key under which a suggestion's id travels inside its parameter dict.
SUGGESTION_ID_DICT_KEY = "suggestion_uuid"


@dataclass
class ObservationInParam:
    """A finished trial as the user reports it.

    Attributes:
        input: the parameter values that were run (may carry ``suggestion_uuid``).
        output: the metric; non-finite values are recorded as failures.
        cost: what the run cost, usually seconds; must be finite and > 0.
        is_failure: the run did not complete (out of memory, diverged, ...).
        is_partial: the run was stopped early on purpose (it was not going to
            reach the front): ``output`` is its last reported value, which a
            finished run would have matched or bettered, and ``cost`` is what
            it spent, not what a finished run costs. The output model and the
            failure model use it (as a run that did not fail, with that
            pessimistic output); the cost model, the Pareto set and
            resampling leave it out.
    """

    input: ParamDictType
    output: float
    cost: float = 1.0
    is_failure: bool = False
    is_partial: bool = False


@dataclass
class ObservationInBasic:
    """An observation as the models see it: a basic-space row ``(dim,)``."""

    real_number_input: np.ndarray
    output: float
    cost: float = 1.0
    suggestion_id: str | None = None
    is_partial: bool = False  # stopped early: see ObservationInParam.is_partial


@dataclass
class SuggestionInBasic:
    """A pending suggestion in basic space, with what was predicted for it."""

    real_number_input: np.ndarray
    log_info: dict[str, float] = field(default_factory=dict)


@dataclass
class SuggestOutput:
    """What ``suggest`` returns: the parameters to run and diagnostic values."""

    suggestion: dict[str, Any]
    log: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObserveOutput:
    """What ``observe`` returns: running statistics of the search."""

    logs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParetoPoint:
    """One member of the performance-cost Pareto set, in parameter space.

    Attributes:
        input: the parameter values.
        output: mean output over the group's samples.
        cost: mean cost over the group's samples.
        sample_count: how many times this input was observed.
    """

    input: ParamDictType
    output: float
    cost: float
    sample_count: int
