"""Workers that run a sweep's command for trial after trial until the budget is spent.

One :class:`SweepRunner` drives ``n_workers`` threads; each asks the study for
a trial, runs the command in a subprocess while a heartbeat keeps the trial
alive in storage, and tells the result. Any number of runners, on any number
of machines, may work on one study at the same time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carbs.runner.command import (
    ENV_ATTEMPT,
    ENV_TRIAL_DIR,
    default_environment,
    render_command,
    trial_environment,
)
from carbs.runner.curves import CurveWatcher
from carbs.runner.fail_fast import FailFast
from carbs.runner.gpus import ENV_VISIBLE_DEVICES, GpuPool
from carbs.runner.process import DEFAULT_KILL_GRACE, ProcessResult, run_process
from carbs.runner.results import TextValues, TrialOutcome, evaluate
from carbs.storage import FailKind, StorageError, TrialRecord, TrialState, TrialStateError
from carbs.study import BudgetExhausted, Study, Trial, default_worker_name
from carbs.study.heartbeat import Heartbeat
from carbs.sweep_config import DEFAULT_FAIL_FAST, GPU_SECONDS, Budget, RetryPolicy, SweepConfig

logger = logging.getLogger(__name__)

# A program dead of one of these while this runner was being stopped was
# stopped with it (a scheduler signals the whole job), not by its own fault.
_STOP_SIGNALS = frozenset({-signal.SIGTERM, -signal.SIGINT, -signal.SIGKILL, -signal.SIGHUP})
# Seconds to wait for the runner's own stop signal after such a death.
_STOP_SIGNAL_WAIT = 1.0
# Seconds between looks at a spent budget while this runner's trials may still be lost.
_BUDGET_RECHECK = 0.5


@dataclass
class RunSpec:
    """How a sweep's trials are run.

    Attributes mirror the sweep file (see ``carbs.sweep_config.SweepConfig``);
    ``echo`` also prints the programs' output on this terminal. ``gpus`` are
    the device ids handed out here (``None``: devices are not assigned, e.g.
    in a Slurm job that was given its own); ``job`` names the launcher job
    this runner runs in; ``max_trials_here`` stops it after that many trials.
    """

    command: list[str]
    metric: str
    cost: str | None = None
    metric_regex: str | None = None
    budget: Budget = field(default_factory=Budget)
    trial_timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = field(default_factory=os.getcwd)
    log_dir: str | None = None
    heartbeat_interval: float = 10.0
    heartbeat_grace: float = 60.0
    echo: bool = False
    kill_grace: float = DEFAULT_KILL_GRACE
    fail_fast: int = DEFAULT_FAIL_FAST
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    gpus_per_trial: int = 0
    gpus: list[str] | None = None
    trials_dir: str | None = None
    job: str | None = None
    max_trials_here: int | None = None

    @classmethod
    def from_sweep(cls, config: SweepConfig) -> RunSpec:
        """The spec of a parsed sweep file."""
        return cls(
            command=list(config.command),
            metric=config.metric,
            cost=config.cost,
            metric_regex=config.metric_regex,
            budget=config.budget,
            trial_timeout=config.trial_timeout,
            env=dict(config.env),
            workdir=config.workdir,
            log_dir=config.log_dir,
            heartbeat_interval=config.heartbeat_interval,
            heartbeat_grace=config.heartbeat_grace,
            fail_fast=config.fail_fast,
            retries=config.retries,
            gpus_per_trial=config.gpus_per_trial,
            gpus=config.gpus,
            trials_dir=config.trials_dir,
        )

    @classmethod
    def from_study(cls, study: Study) -> RunSpec:
        """The spec stored with a study by ``carbs run`` (used by ``carbs worker``)."""
        cfg = study.config
        if not cfg.get("command"):
            raise ValueError(
                f"study {study.name!r} has no stored command: it was not created by "
                "'carbs run'; start it with a sweep file first"
            )
        budget = cfg.get("budget") or {}
        heartbeat = cfg.get("heartbeat") or {}
        return cls(
            command=list(cfg["command"]),
            metric=study.metric,
            cost=cfg.get("cost"),
            metric_regex=cfg.get("metric_regex"),
            budget=Budget(budget.get("trials"), budget.get("cost"), budget.get("time")),
            trial_timeout=cfg.get("trial_timeout"),
            env=dict(cfg.get("env") or {}),
            workdir=cfg.get("workdir") or os.getcwd(),
            log_dir=cfg.get("log_dir"),
            heartbeat_interval=float(heartbeat.get("interval", 10.0)),
            heartbeat_grace=float(heartbeat.get("grace", 60.0)),
            fail_fast=int(cfg.get("fail_fast", DEFAULT_FAIL_FAST)),
            retries=RetryPolicy.from_dict(cfg.get("retries")),
            gpus_per_trial=int(cfg.get("gpus_per_trial") or 0),
            trials_dir=cfg.get("trials_dir"),
        )


@dataclass
class RunSummary:
    """What one :meth:`SweepRunner.run` did.

    Attributes:
        completed / failed / pruned: trials this runner finished, by outcome.
        interrupted: the run was stopped by Ctrl-C / SIGTERM.
        stop_reason: why it ended (budget, time limit, interruption, error).
        error: a storage error that ended the run, if any.
    """

    completed: int = 0
    failed: int = 0
    pruned: int = 0
    interrupted: bool = False
    stop_reason: str = ""
    error: Exception | None = None


TrialCallback = Callable[[Trial, int], None]
ResultCallback = Callable[[TrialRecord, TrialOutcome], None]


class SweepRunner:
    """Runs a study's command on suggested points with ``n_workers`` parallel trials.

    Args:
        study: the study to work on.
        spec: how to run a trial.
        n_workers: trials run at once by this runner.
        on_trial_start: called with ``(trial, slot)`` when a trial starts.
        on_trial_end: called with ``(record, outcome)`` when a trial is recorded.
    """

    def __init__(
        self,
        study: Study,
        spec: RunSpec,
        n_workers: int = 1,
        *,
        on_trial_start: TrialCallback | None = None,
        on_trial_end: ResultCallback | None = None,
    ) -> None:
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        self.study = study
        self.spec = spec
        self.n_workers = n_workers
        self.on_trial_start = on_trial_start
        self.on_trial_end = on_trial_end
        self.summary = RunSummary()
        self._stop = threading.Event()  # no new trials
        self._interrupt = threading.Event()  # kill the running ones too
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._heartbeat = Heartbeat(study.heartbeat, spec.heartbeat_interval, self._on_lost)
        self._base_env = default_environment()
        self._fail_fast: FailFast | None = None
        self._pids: set[int] = set()  # running programs, for a second Ctrl-C
        self._killing = False
        # Set (from a signal handler) by a second Ctrl-C that must not raise.
        self._hurry = False
        self._asked = 0
        self._active = 0  # trials of this runner being run now
        self._gpus: GpuPool | None = None
        if spec.gpus_per_trial and spec.gpus is not None:
            if n_workers * spec.gpus_per_trial > len(spec.gpus):
                raise ValueError(
                    f"{n_workers} workers x gpus_per_trial {spec.gpus_per_trial} need "
                    f"{n_workers * spec.gpus_per_trial} GPUs, but only {len(spec.gpus)} are "
                    f"available ({spec.gpus}); lower workers or list more gpus"
                )
            self._gpus = GpuPool(spec.gpus)

    # -- control --------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Start no new trial; running ones finish normally."""
        with self._lock:
            if not self.summary.stop_reason:
                self.summary.stop_reason = reason
        self._stop.set()

    def interrupt(self) -> None:
        """Stop now: running programs are terminated and their trials FAILED(interrupted)."""
        self.summary.interrupted = True
        self.request_stop("interrupted")
        self._interrupt.set()

    def _on_lost(self, number: int) -> None:
        # Declared stale while still running (e.g. after a long database outage):
        # the program keeps going, and its late result is still recorded.
        logger.warning(
            "trial %d was declared stale by another process; its result will still be kept",
            number,
        )

    # -- main loop ----------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run until the budget is spent or :meth:`interrupt` is called; Ctrl-C interrupts."""
        if self.spec.budget.max_time is not None:
            self._deadline = time.monotonic() + self.spec.budget.max_time
        if self.spec.log_dir:
            os.makedirs(self.spec.log_dir, exist_ok=True)
        self._fail_fast = FailFast(
            self.spec.fail_fast,
            self.study.state_counts()[TrialState.COMPLETE] > 0,
            self.spec.cost,
            [p.name for p in self.study.params],
        )
        # Each worker sets its event when it is done. The main thread waits on
        # those rather than on Thread.join: a join cut short by Ctrl-C can
        # report the thread finished while it is still recording its trial.
        # It polls them (see _wait_for_all) rather than blocking in Event.wait.
        done = [threading.Event() for _ in range(self.n_workers)]
        threads = [
            threading.Thread(
                target=self._worker, args=(slot, done[slot]), name=f"carbs-worker-{slot}", daemon=True
            )
            for slot in range(self.n_workers)
        ]
        with self._heartbeat:
            for t in threads:
                t.start()
            try:
                _wait_for_all(done, None)
            except KeyboardInterrupt:
                self._wind_down(done)
        return self.summary

    def _wind_down(self, done: list[threading.Event]) -> None:
        """After Ctrl-C: stop the programs and wait until every trial is recorded.

        A second Ctrl-C (or SIGTERM) only hurries this up: the programs get
        SIGKILL at once instead of a grace period, but the wait for their
        trials to be marked FAILED(interrupted) is never skipped.
        """
        deadline = time.monotonic() + self.spec.kill_grace + 10.0
        first = True
        hurried = False

        def poll() -> None:
            nonlocal hurried
            if self._hurry and not hurried:
                hurried = True
                logger.warning("interrupted again: killing the running programs now")
                self._kill_running()

        while True:
            try:
                if first:
                    first = False
                    logger.warning("interrupted: stopping the running trials")
                    self.interrupt()  # workers terminate their programs and record the trials
                _wait_for_all(done, deadline, poll)
                return
            except KeyboardInterrupt:
                logger.warning("interrupted again: killing the running programs now")
                self.interrupt()
                self._kill_running()

    def hurry(self) -> None:
        """A second Ctrl-C: kill the running programs at once instead of after their grace.

        Only sets a flag that the wind-down polls, so a signal handler may call
        it at any moment. A handler that raised ``KeyboardInterrupt`` again
        instead could land before the wind-down is ready to catch it, and the
        programs would outlive the runner.
        """
        self._hurry = True

    def _kill_running(self) -> None:
        with self._lock:
            self._killing = True
            pids = list(self._pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each program leads its own process group

    def _next_trial(self, worker: str) -> Trial | None:
        if self._stop.is_set():
            return None
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.request_stop(f"time budget reached ({self.spec.budget.max_time:g} s)")
            return None
        limit = self.spec.max_trials_here
        with self._lock:
            spent = limit is not None and self._asked >= limit
            self._asked += 0 if spent else 1
        if spent:
            self.request_stop(f"ran the {limit} trial(s) of this worker")
            return None
        while True:
            try:
                return self.study.ask(
                    worker=worker,
                    heartbeat_grace=self.spec.heartbeat_grace,
                    budget=self.spec.budget,
                    retries=self.spec.retries,
                    job=self.spec.job,
                )
            except BudgetExhausted as e:
                # A trial still running here may yet be lost, and its point need a
                # retry that the budget then allows: wait for those trials first.
                with self._lock:
                    waiting = self.spec.retries.max_retries > 0 and self._active > 0
                if not waiting:
                    self.request_stop(str(e))
                    return None
            if self._stop.wait(_BUDGET_RECHECK):
                return None

    def _worker(self, slot: int, done: threading.Event) -> None:
        worker = default_worker_name(slot)
        try:
            while True:
                trial = self._next_trial(worker)
                if trial is None:
                    return
                self._run_trial(trial, slot)
        except StorageError as e:
            logger.error("worker %s stopped: %s", worker, e)
            with self._lock:
                if self.summary.error is None:
                    self.summary.error = e
            self.request_stop(f"storage error: {e}")
        finally:
            done.set()

    def trial_dir(self, trial: Trial) -> str | None:
        """The trial's own directory, the same for every retry of its point."""
        if not self.spec.trials_dir:
            return None
        return os.path.join(self.spec.trials_dir, self.study.name, f"trial-{trial.lineage:05d}")

    def trial_extras(self, trial: Trial, gpus: list[str] | None) -> dict[str, str]:
        """Environment variables of the trial beyond the command's: its directory, attempt, GPUs."""
        extras = {ENV_ATTEMPT: str(trial.attempt)}
        directory = self.trial_dir(trial)
        if directory is not None:
            extras[ENV_TRIAL_DIR] = directory
        if gpus is not None:
            extras[ENV_VISIBLE_DEVICES] = ",".join(gpus)
        return extras

    def _run_trial(self, trial: Trial, slot: int) -> None:
        with self._lock:
            self._active += 1
        try:
            self._run_one(trial, slot)
        finally:
            with self._lock:
                self._active -= 1

    def _run_one(self, trial: Trial, slot: int) -> None:
        self._heartbeat.add(trial.number)
        if self.on_trial_start is not None:
            self.on_trial_start(trial, slot)
        gpus = None
        if self._gpus is not None:
            gpus = self._gpus.acquire(self.spec.gpus_per_trial, self._interrupt)
        scratch = tempfile.mkdtemp(prefix=f"carbs-trial-{trial.number}-")
        directory = self.trial_dir(trial)
        watcher = CurveWatcher(
            self.study,
            trial,
            self.spec.metric,
            None if self.spec.cost == GPU_SECONDS else self.spec.cost,
            os.path.join(scratch, "results.json"),
            self.study.early_stopping,
        )
        try:
            if gpus is None and self._gpus is not None:
                outcome = TrialOutcome(None, 1e-6, FailKind.INTERRUPTED, "interrupted")
                stderr_tail = ""
            else:
                if directory is not None:
                    os.makedirs(directory, exist_ok=True)
                extras = self.trial_extras(trial, gpus)
                outcome, stderr_tail = self._execute(trial, scratch, watcher, extras)
                outcome = self._judge_stop(outcome)
        except Exception as e:  # a bug or an OS error must not leave the trial RUNNING
            logger.exception("trial %d could not be run", trial.number)
            outcome = TrialOutcome(None, 1e-6, FailKind.ERROR, f"{type(e).__name__}: {e}")
            stderr_tail = ""
        finally:
            self._heartbeat.discard(trial.number)
            shutil.rmtree(scratch, ignore_errors=True)
            if gpus is not None and self._gpus is not None:
                self._gpus.release(gpus)
        if self.spec.cost == GPU_SECONDS and outcome.fail_kind is None:
            outcome.cost *= max(self.spec.gpus_per_trial, 1)
        self._record(trial, outcome, stderr_tail, watcher.user_attrs())
        if directory is not None:
            _remove_if_empty(directory, stop_at=self.spec.trials_dir)

    def _judge_stop(self, outcome: TrialOutcome) -> TrialOutcome:
        """A program killed by a stop signal while this runner is stopped too was interrupted."""
        if outcome.fail_kind != FailKind.ERROR or outcome.reason is None:
            return outcome
        killed = any(
            outcome.reason == f"killed by {signal.Signals(-code).name}" for code in _STOP_SIGNALS
        )
        if killed and self._interrupt.wait(_STOP_SIGNAL_WAIT):
            return TrialOutcome(None, outcome.cost, FailKind.INTERRUPTED, "interrupted", outcome.values)
        return outcome

    def _execute(
        self, trial: Trial, scratch: str, watcher: CurveWatcher, extras: Mapping[str, str]
    ) -> tuple[TrialOutcome, str]:
        spec = self.spec
        results_file = watcher.results_file
        argv = render_command(
            spec.command,
            trial.params,
            trial_number=trial.number,
            study=self.study.name,
            results_file=results_file,
        )
        env = trial_environment(
            self._base_env,
            spec.env,
            trial.params,
            trial_number=trial.number,
            study=self.study.name,
            results_file=results_file,
        )
        env.update(extras)
        logs: dict[str, Any] = {}
        if spec.log_dir:
            stem = os.path.join(spec.log_dir, f"{self.study.name}-trial-{trial.number:05d}")
            logs = {"stdout_log": stem + ".out", "stderr_log": stem + ".err"}
        logger.info("trial %d: %s", trial.number, " ".join(argv))
        pids: list[int] = []
        keys = [spec.metric] + ([spec.cost] if spec.cost and spec.cost != GPU_SECONDS else [])
        text = TextValues(keys, spec.metric, spec.metric_regex)
        result = run_process(
            argv,
            env=env,
            cwd=spec.workdir,
            timeout=spec.trial_timeout,
            stop=self._interrupt,
            echo=spec.echo,
            kill_grace=spec.kill_grace,
            on_stdout_line=text.feed,
            on_start=lambda pid: self._started(pid, pids),
            on_json=watcher.on_json,
            should_stop=watcher.poll,
            stop_grace=watcher.rule.kill_grace if watcher.rule is not None else None,
            **logs,
        )
        with self._lock:
            self._pids.difference_update(pids)
            if self._killing and result.returncode is not None and result.returncode < 0:
                result.interrupted = True  # our SIGKILL, not the program's fault
        watcher.close()
        if result.stopped_early and not result.interrupted:
            decision = watcher.decision
            return TrialOutcome(
                watcher.last_value,
                watcher.last_cost if watcher.last_cost else max(result.elapsed, 1e-6),
                reason=decision.reason if decision is not None else "stopped early",
                values=dict(result.reported),
                pruned=True,
            ), result.stderr_tail
        return judge_program(spec, result, results_file, text)

    def _started(self, pid: int, pids: list[int]) -> None:
        pids.append(pid)
        with self._lock:
            self._pids.add(pid)
            killing = self._killing
        if killing:  # started just as a second Ctrl-C killed the others
            self._kill_running()

    def _record(
        self,
        trial: Trial,
        outcome: TrialOutcome,
        stderr_tail: str,
        report_attrs: dict[str, Any] | None = None,
    ) -> None:
        try:
            record = self.study.tell(
                trial,
                outcome.output,
                outcome.cost,
                failed=outcome.failed,
                reason=outcome.reason,
                fail_kind=outcome.fail_kind,
                stderr_tail=(stderr_tail or None) if outcome.failed else None,
                user_attrs={**outcome.user_attrs(self.spec.metric), **(report_attrs or {})},
                pruned=outcome.pruned,
            )
        except TrialStateError as e:
            logger.warning("trial %d: result not recorded: %s", trial.number, e)
            return
        with self._lock:
            if outcome.pruned:
                self.summary.pruned += 1
            elif record.fail_kind is None:
                self.summary.completed += 1
            else:
                self.summary.failed += 1
        if outcome.failed:
            logger.info("trial %d FAILED: %s", trial.number, outcome.reason)
        elif outcome.pruned:
            logger.info("trial %d PRUNED: %s", trial.number, outcome.reason)
        stop = self._fail_fast.observe(record) if self._fail_fast is not None else None
        if stop is not None:
            self.request_stop(stop)
        if self.on_trial_end is not None:
            self.on_trial_end(record, outcome)


def judge_program(
    spec: RunSpec, result: ProcessResult, results_file: str, text: TextValues
) -> tuple[TrialOutcome, str]:
    """The outcome of a finished trial program, and the output kept with it if it failed.

    That output is the tail of stderr, or of stdout (marked so) when stderr is
    empty. Used where the program ran: here, or on a cluster node.
    """
    outcome = evaluate(
        result,
        metric=spec.metric,
        cost_key=None if spec.cost == GPU_SECONDS else spec.cost,
        results_file=results_file,
        timeout=spec.trial_timeout,
        text_values=text.values(),
    )
    tail = result.stderr_tail
    if outcome.failed and not tail and result.stdout_tail:
        tail = "(stdout)\n" + result.stdout_tail
    return outcome, tail


def _remove_if_empty(directory: str, stop_at: str | None) -> None:
    """Remove a trial directory the program left empty, and its emptied parents up to ``stop_at``."""
    stop = os.path.abspath(stop_at) if stop_at else None
    path = os.path.abspath(directory)
    while path and path != stop:
        try:
            os.rmdir(path)  # fails when not empty: nothing the program wrote is removed
        except OSError:
            return
        path = os.path.dirname(path)
    if stop is not None:
        with contextlib.suppress(OSError):  # other studies' directories may still be there
            os.rmdir(stop)


def spec_with_overrides(spec: RunSpec, overrides: Mapping[str, Any]) -> RunSpec:
    """A copy of ``spec`` with the non-``None`` values of ``overrides`` applied."""
    values = {k: v for k, v in overrides.items() if v is not None}
    data = {**spec.__dict__, **values}
    return RunSpec(**data)


def _wait_for_all(
    done: list[threading.Event], deadline: float | None, poll: Callable[[], None] | None = None
) -> None:
    """Wait until every event is set (or ``time.monotonic()`` passes ``deadline``).

    Polls instead of blocking in ``Event.wait``: a Ctrl-C that lands while
    ``Event.wait`` re-acquires its lock turns into "release unlocked lock"
    (a RuntimeError) on the way out, and a quick second Ctrl-C then escapes
    the wind-down. ``time.sleep`` can be interrupted safely.
    """
    while not all(event.is_set() for event in done):
        if deadline is not None and time.monotonic() >= deadline:
            return
        if poll is not None:
            poll()
        time.sleep(0.05)
