"""Plain records the storage layer hands out (no database objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class TrialState(str, Enum):
    """Life cycle of a trial: handed out, then finished one way or the other."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    # Stopped early by the stopping rule: its last value and the cost it spent
    # are kept, and the optimizer sees it as a run that did not reach the front.
    PRUNED = "PRUNED"

    def __str__(self) -> str:
        return self.value


class FailKind(str, Enum):
    """Why a trial failed; ``INTERRUPTED`` and ``STALE`` say nothing about its params."""

    ERROR = "error"  # the objective raised, or the program exited non-zero
    TIMEOUT = "timeout"
    BAD_OUTPUT = "bad_output"  # the metric was missing, not a number, or not finite
    REPORTED = "reported"  # the program or the caller declared the failure
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM of the worker
    STALE = "stale"  # the worker stopped heartbeating
    LOST = "lost"  # its node, Ray worker or Slurm job went away (cancelled, pre-empted, died)

    def __str__(self) -> str:
        return self.value


# Failures caused by the infrastructure rather than by the parameters: they are
# not shown to the optimizer and do not use up the trial budget.
NON_INFORMATIVE_FAILURES = frozenset({FailKind.INTERRUPTED, FailKind.STALE, FailKind.LOST})


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """Attach UTC to naive datetimes (SQLite drops the zone) and convert aware ones."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@dataclass(frozen=True)
class StudyRecord:
    """A stored study definition.

    Attributes:
        id: database key.
        name: unique name of the study.
        direction: ``1`` to maximise the metric, ``-1`` to minimise it.
        metric: name of the reported value that is optimised.
        params: the search space, as a list of ``Param.to_dict()`` dicts.
        settings: the optimizer settings, as ``CARBSParams.to_dict()``.
        config: how trials are run (command, budget, ...), as a JSON-compatible dict.
        user_attrs: free-form attributes set by the user.
        created_at: creation time (UTC).
    """

    id: int
    name: str
    direction: int
    metric: str
    params: list[dict[str, Any]]
    settings: dict[str, Any]
    config: dict[str, Any]
    user_attrs: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial.

    Attributes:
        number: position of the trial in its study, from 0.
        params: the parameter values handed out.
        state: ``RUNNING``, ``COMPLETE``, ``FAILED`` or ``PRUNED``.
        output: the metric (``None`` unless reported); for a PRUNED trial its last
            intermediate value.
        cost: what the trial cost, usually seconds (``None`` while running); for
            a PRUNED trial the cost it spent before it was stopped.
        started_at / finished_at / heartbeat_at: UTC times.
        heartbeat_grace: seconds without a heartbeat after which the trial is
            declared stale; ``None`` means it is never reaped.
        worker: who ran it (``host:pid:slot``).
        suggestion_kind: how the optimizer chose the point (``random``, ``model``,
            ``retry``, ...).
        retry_of: the number of the trial this one re-runs after it was lost.
        job: the launcher job that ran it (``slurm:1234``), if any.
        fail_kind / fail_reason: why it failed.
        stderr_tail: the last lines of the program's standard error.
        user_attrs: extra values reported by the trial.
        id: database key.
    """

    number: int
    params: dict[str, Any]
    state: TrialState
    output: float | None
    cost: float | None
    started_at: datetime
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    heartbeat_grace: float | None = None
    worker: str | None = None
    suggestion_kind: str | None = None
    retry_of: int | None = None
    job: str | None = None
    fail_kind: FailKind | None = None
    fail_reason: str | None = None
    stderr_tail: str | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    id: int = 0

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, ``None`` while running."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def is_informative(self) -> bool:
        """Finished, and not lost to an interruption or a dead worker."""
        if self.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
        return self.state == TrialState.FAILED and self.fail_kind not in NON_INFORMATIVE_FAILURES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible copy (times as ISO 8601 strings)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "number": self.number,
            "state": self.state.value,
            "params": dict(self.params),
            "output": self.output,
            "cost": self.cost,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": self.duration,
            "worker": self.worker,
            "suggestion_kind": self.suggestion_kind,
            "retry_of": self.retry_of,
            "job": self.job,
            "fail_kind": self.fail_kind.value if self.fail_kind else None,
            "fail_reason": self.fail_reason,
            "stderr_tail": self.stderr_tail,
            "user_attrs": dict(self.user_attrs),
        }


@dataclass(frozen=True)
class IntermediateValue:
    """One point of a trial's learning curve.

    Attributes:
        step: the step the trial reported (epochs, iterations, ...), increasing.
        value: the metric at that step.
        cost: the cost spent up to that step (seconds unless the study reports its own cost).
        reported_at: when it was stored (UTC).
    """

    step: int
    value: float
    cost: float
    reported_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible copy (the time as an ISO 8601 string)."""
        return {
            "step": self.step,
            "value": self.value,
            "cost": self.cost,
            "reported_at": self.reported_at.isoformat(),
        }


@dataclass(frozen=True)
class PooledSuggestion:
    """A suggestion stored ahead of time in a study's pool (see ``Storage.add_suggestions``).

    Attributes:
        id: database key (the row is deleted when it is handed out).
        params: the parameter values.
        suggestion_kind: how the optimizer chose it ("model", "resample", ...).
        basis: the number of observations the models had seen when it was made.
        cost_upper: its upper-quantile predicted cost, when the models made it.
        definition: digest of the study's space and settings it was made for.
    """

    id: int
    params: dict[str, Any]
    suggestion_kind: str | None
    basis: int
    cost_upper: float | None
    definition: str


@dataclass(frozen=True)
class PoolSnapshot:
    """What an ask needs to take a pooled suggestion, read in one go without the study lock
    (see ``Storage.pool_snapshot``).

    Attributes:
        running: the RUNNING trials.
        rows: the pooled suggestions, oldest first.
        observations: the number of informative trials.
        claimed_at: when the pool's refill was claimed (``None``: released).
        asking_since: when an ask made while no trial ran began (``None``: none under way).
    """

    running: list[TrialRecord]
    rows: list[PooledSuggestion]
    observations: int
    claimed_at: datetime | None
    asking_since: datetime | None
