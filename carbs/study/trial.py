"""What a study hands out and the small helpers shared by ``ask``/``tell`` and ``optimize``.

This module imports nothing else of the study package, so ``core`` (the
``Study``) and ``optimize`` (the in-process loop) both build on it without
importing each other back.
"""

from __future__ import annotations

import contextvars
import math
import os
import socket
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Union

from carbs.optimizer.types import ObservationInParam
from carbs.stopping import EarlyStopping
from carbs.storage import TrialRecord, TrialState

ObjectiveResult = Union[float, tuple[float, float]]


class StudyDefinitionError(ValueError):
    """A study exists with a different search space, direction or metric."""


class BudgetExhausted(RuntimeError):
    """``ask`` was given a budget that is already spent; ``str(e)`` says which part."""


class TrialPruned(Exception):
    """Raised by an objective to stop its trial early (after ``trial.should_prune()``).

    ``Study.optimize`` records the trial as PRUNED with its last reported value
    and the cost spent so far, and goes on with the next trial.
    """


class TrialOwner(Protocol):
    """What a trial asks of its study (``carbs.study.Study`` has it)."""

    def report(
        self, trial: Trial | int, value: float, step: int, *, cost: float | None = None
    ) -> None:
        """Store an intermediate value."""
        ...

    def should_prune(
        self, trial: Trial | int, early_stopping: EarlyStopping | bool | None = None
    ) -> bool:
        """The stopping rule's verdict."""
        ...

    @property
    def metric(self) -> str:
        """Name of the optimised value."""
        ...


@dataclass(frozen=True)
class Trial:
    """A point handed out by :meth:`Study.ask`: run it, then :meth:`Study.tell` the result.

    While it runs, :meth:`report` stores intermediate values (its learning
    curve) and :meth:`should_prune` says whether the stopping rule would stop
    it; the names and argument order are Optuna's, so objectives written for
    Optuna's pruning read the same here.

    Attributes:
        number: the trial's id within its study (0, 1, 2, ...).
        params: the parameter values to run.
        study_name: the study it belongs to.
        started_at: when it was handed out (UTC).
        retry_of: the trial whose point this one runs again, if it is a retry.
        lineage: the number of the first trial of that point (its own number
            unless it is a retry); names the per-trial directory kept across retries.
        attempt: 0 for a first run, 1 for the first retry, ...
    """

    number: int
    params: dict[str, Any]
    study_name: str
    started_at: datetime
    _study: TrialOwner | None = field(default=None, repr=False, compare=False)
    # The rule of the optimize call that runs it: None -> the study's stored rule, False -> off.
    _early_stopping: EarlyStopping | bool | None = field(default=None, repr=False, compare=False)
    retry_of: int | None = None
    lineage: int = -1
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.lineage < 0:
            object.__setattr__(self, "lineage", self.number)

    def _owner(self) -> TrialOwner:
        if self._study is None:
            raise RuntimeError(
                f"trial {self.number} is not attached to a study; use the Trial from Study.ask"
            )
        return self._study

    def report(self, value: float, step: int, *, cost: float | None = None) -> None:
        """Store the metric ``value`` at ``step``; see :meth:`Study.report`."""
        self._owner().report(self, value, step, cost=cost)

    def should_prune(self) -> bool:
        """Whether the stopping rule says to stop now; see :meth:`Study.should_prune`."""
        return self._owner().should_prune(self, self._early_stopping)


_CURRENT_TRIAL: contextvars.ContextVar[Trial | None] = contextvars.ContextVar(
    "carbs_current_trial", default=None
)


def current_trial() -> Trial | None:
    """The trial whose objective is running in this thread under ``Study.optimize``, else ``None``."""
    return _CURRENT_TRIAL.get()


def direction_sign(direction: str | int) -> int:
    """``"minimize"``/``-1`` -> ``-1``, ``"maximize"``/``1`` -> ``1``; anything else raises."""
    if direction in (1, -1) and not isinstance(direction, bool):
        return int(direction)
    if isinstance(direction, str):
        d = direction.strip().lower()
        if d in ("minimize", "minimise", "min"):
            return -1
        if d in ("maximize", "maximise", "max"):
            return 1
    raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")


def default_worker_name(slot: int | None = None) -> str:
    """``host:pid`` (and ``:slot``), naming who runs a trial."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return name if slot is None else f"{name}:{slot}"


def format_exception_tail(exc: BaseException, limit: int = 20) -> str:
    """The last ``limit`` lines of an exception's traceback."""
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()
    return "\n".join(lines[-limit:])


def trial_observation(trial: TrialRecord) -> ObservationInParam | None:
    """The optimizer's view of a stored trial: what a study's models learn from it.

    ``None`` for a trial that says nothing about its point (still running, or
    lost to an interruption or a dead worker). A COMPLETE trial is an ordinary
    observation, a FAILED one a failure (``is_failure``).

    A PRUNED trial becomes a *partial* observation (``is_partial``): its last
    value as the output at its point, a pessimistic stand-in for the final one
    (a run that goes on mostly ends no worse than where it was stopped, and it
    was stopped because even so it was behind the front), while its truncated
    cost is kept from the cost model (which would learn that the point is
    cheap) and the run from the Pareto set. The output model then predicts a
    poor result there, so the search does not steer back into the region; it
    is not told as a failure, which would also mark the region as one where
    runs break (the failure model's probability multiplies every nearby
    candidate's score) and impute the worst output ever seen there, pushing
    the search away from settings whose finished runs can be the best (long
    schedules and slow starters that a rule stops now and then). Without a
    finite last value it is a failure.
    """
    if not trial.is_informative:
        return None
    cost = trial.cost
    if cost is None or not math.isfinite(cost) or cost <= 0:
        # The optimizer needs a positive cost; a failure without one weighs nothing.
        cost = max(trial.duration or 0.0, 1e-6)
    if trial.state == TrialState.COMPLETE and trial.output is not None:
        return ObservationInParam(input=dict(trial.params), output=trial.output, cost=cost)
    if (
        trial.state == TrialState.PRUNED
        and trial.output is not None
        and math.isfinite(trial.output)
    ):
        return ObservationInParam(
            input=dict(trial.params), output=trial.output, cost=cost, is_partial=True
        )
    return ObservationInParam(input=dict(trial.params), output=math.nan, cost=cost, is_failure=True)
