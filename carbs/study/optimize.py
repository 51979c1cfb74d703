"""``Study.optimize``: running a Python objective on suggested points, in threads.

The loop sees the study only through :class:`StudyLike` (ask, tell,
heartbeat), so the ``Study`` class imports this module and not the other way round.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from carbs.stopping import EarlyStopping
from carbs.storage import FailKind, TrialRecord, TrialStateError
from carbs.study.heartbeat import Heartbeat
from carbs.study.trial import (
    _CURRENT_TRIAL,
    ObjectiveResult,
    Trial,
    TrialPruned,
    default_worker_name,
    format_exception_tail,
)

logger = logging.getLogger(__name__)


class StudyLike(Protocol):
    """What the loop needs of a study (``carbs.study.Study`` has it)."""

    def ask(
        self, *, worker: str | None = None, heartbeat_grace: float | None = None, cost_left: float | None = None
    ) -> Trial:
        """Hand out the next trial."""
        ...

    def tell(
        self,
        trial: Trial | int,
        output: float | None = None,
        cost: float | None = None,
        failed: bool = False,
        *,
        reason: str | None = None,
        fail_kind: FailKind | str | None = None,
        stderr_tail: str | None = None,
        user_attrs: Mapping[str, Any] | None = None,
        pruned: bool = False,
    ) -> TrialRecord:
        """Record a trial's result."""
        ...

    def heartbeat(self, trial: Trial | int) -> bool:
        """Keep a running trial alive."""
        ...


S = TypeVar("S", bound=StudyLike)


def _check_limits(
    n_trials: int | None, max_cost: float | None, timeout: float | None, n_workers: int
) -> None:
    if n_trials is not None and (
        isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0
    ):
        raise ValueError(f"n_trials must be a non-negative integer or None, got {n_trials!r}")
    for name, value in (("max_cost", max_cost), ("timeout", timeout)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
        ):
            raise ValueError(f"{name} must be a number > 0 or None, got {value!r}")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")


def _split_result(number: int, result: Any) -> tuple[Any, float | None]:
    if isinstance(result, tuple):
        if len(result) != 2:
            raise ValueError(
                f"trial {number}: the objective must return output or (output, cost), "
                f"got a tuple of {len(result)}"
            )
        return result[0], result[1]
    return result, None


class _Run(Generic[S]):
    """Shared state of one ``optimize`` call across its worker threads."""

    def __init__(
        self,
        study: S,
        objective: Callable[[dict[str, Any]], ObjectiveResult],
        n_trials: int | None,
        max_cost: float | None,
        timeout: float | None,
        catch: tuple[type[BaseException], ...],
        heartbeat: Heartbeat | None,
        heartbeat_grace: float | None,
        callbacks: Sequence[Callable[[S, TrialRecord], None]],
        early_stopping: EarlyStopping | bool | None = None,
    ) -> None:
        self.study = study
        self.early_stopping = early_stopping
        self.objective = objective
        self.n_trials = n_trials
        self.max_cost = max_cost
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.catch = catch
        self.heartbeat = heartbeat
        self.heartbeat_grace = heartbeat_grace
        self.callbacks = callbacks
        self.lock = threading.Lock()
        self.started = 0
        self.spent = 0.0
        self.stop = threading.Event()
        self.running: dict[int, Trial] = {}
        self.error: BaseException | None = None

    def _reserve(self) -> bool:
        with self.lock:
            if self.stop.is_set():
                return False
            if self.n_trials is not None and self.started >= self.n_trials:
                return False
            if self.max_cost is not None and self.spent >= self.max_cost:
                return False
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return False
            self.started += 1
            return True

    def worker(self, slot: int) -> None:
        name = default_worker_name(slot)
        try:
            while self._reserve():
                self._one(name)
        except BaseException as e:  # surfaced by the main thread
            with self.lock:
                if self.error is None:
                    self.error = e
            self.stop.set()

    def _one(self, worker: str) -> None:
        cost_left = None if self.max_cost is None else self.max_cost - self.spent
        trial = self.study.ask(worker=worker, heartbeat_grace=self.heartbeat_grace, cost_left=cost_left)
        if self.early_stopping is not None:
            trial = dataclasses.replace(trial, _early_stopping=self.early_stopping)
        with self.lock:
            self.running[trial.number] = trial
        if self.heartbeat is not None:
            self.heartbeat.add(trial.number)
        start = time.perf_counter()
        try:
            record = self._evaluate(trial, start)
        finally:
            if self.heartbeat is not None:
                self.heartbeat.discard(trial.number)
            with self.lock:
                self.running.pop(trial.number, None)
        if record is not None:
            with self.lock:
                self.spent += record.cost or 0.0
            for callback in self.callbacks:
                callback(self.study, record)

    def _evaluate(self, trial: Trial, start: float) -> TrialRecord | None:
        token = _CURRENT_TRIAL.set(trial)
        try:
            output, cost = _split_result(trial.number, self.objective(dict(trial.params)))
        except TrialPruned as e:
            return self._tell_pruned(trial, str(e) or None)
        except self.catch as e:
            logger.warning("trial %d failed: %s: %s", trial.number, type(e).__name__, e)
            return self._tell(
                trial,
                None,
                time.perf_counter() - start,
                reason=f"{type(e).__name__}: {e}",
                kind=FailKind.ERROR,
                tail=format_exception_tail(e),
            )
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            self._tell(
                trial,
                None,
                time.perf_counter() - start,
                reason="interrupted" if interrupted else f"{type(e).__name__}: {e}",
                kind=FailKind.INTERRUPTED if interrupted else FailKind.ERROR,
                tail=None if interrupted else format_exception_tail(e),
            )
            raise
        finally:
            _CURRENT_TRIAL.reset(token)
        if cost is None:
            cost = time.perf_counter() - start
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not (
            math.isfinite(cost) and cost > 0
        ):
            return self._tell(
                trial,
                None,
                time.perf_counter() - start,
                reason=f"the objective returned a cost that is not a number > 0: {cost!r}",
                kind=FailKind.BAD_OUTPUT,
            )
        return self._tell(trial, output, float(cost))

    def _tell(
        self,
        trial: Trial,
        output: Any,
        cost: float,
        *,
        reason: str | None = None,
        kind: FailKind | None = None,
        tail: str | None = None,
    ) -> TrialRecord | None:
        try:
            return self.study.tell(
                trial,
                output,
                max(cost, 1e-6),
                failed=kind is not None,
                reason=reason,
                fail_kind=kind,
                stderr_tail=tail,
            )
        except TrialStateError as e:  # interrupted or reaped meanwhile
            logger.info("result of trial %d not recorded: %s", trial.number, e)
            return None

    def _tell_pruned(self, trial: Trial, reason: str | None) -> TrialRecord | None:
        try:
            record = self.study.tell(trial, pruned=True, reason=reason)
        except TrialStateError as e:
            logger.info("trial %d: pruned state not recorded: %s", trial.number, e)
            return None
        logger.info("trial %d PRUNED: %s", trial.number, record.fail_reason)
        return record

    def interrupt_running(self) -> None:
        """Mark this call's running trials FAILED(interrupted)."""
        with self.lock:
            trials = list(self.running.values())
        for trial in trials:
            elapsed = (time.time() - trial.started_at.timestamp())
            self._tell(trial, None, elapsed, reason="interrupted", kind=FailKind.INTERRUPTED)


def run_objective(
    study: S,
    objective: Callable[[dict[str, Any]], ObjectiveResult],
    *,
    n_trials: int | None,
    max_cost: float | None,
    timeout: float | None,
    n_workers: int,
    catch: tuple[type[BaseException], ...],
    heartbeat_grace: float | None,
    heartbeat_interval: float | None,
    callbacks: Sequence[Callable[[S, TrialRecord], None]],
    early_stopping: EarlyStopping | bool | None = None,
) -> None:
    """Body of :meth:`carbs.study.Study.optimize`."""
    _check_limits(n_trials, max_cost, timeout, n_workers)
    heartbeat = (
        Heartbeat(study.heartbeat, heartbeat_interval)
        if heartbeat_grace is not None and heartbeat_interval is not None
        else None
    )
    run: _Run[S] = _Run(
        study, objective, n_trials, max_cost, timeout, catch, heartbeat, heartbeat_grace, callbacks,
        early_stopping,
    )
    if heartbeat is not None:
        heartbeat.start()
    try:
        if n_workers == 1:
            run.worker(0)
        else:
            threads = [
                threading.Thread(target=run.worker, args=(i,), name=f"carbs-trial-{i}", daemon=True)
                for i in range(n_workers)
            ]
            for t in threads:
                t.start()
            # Join with a timeout so Ctrl-C reaches the main thread promptly.
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
    except KeyboardInterrupt:
        run.stop.set()
        run.interrupt_running()
        raise
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    if run.error is not None:
        raise run.error
