"""What the dashboard serves: each study's trials, kept up to date incrementally.

A :class:`StudyFeed` keeps every trial of one study in memory and reads from
the database only what can have changed since its last read: trials numbered
above the highest it has seen, and its unfinished ones (see
:meth:`carbs.storage.Storage.trials_since`). Every change bumps a version, so a
page that holds version ``v`` asks for the rows changed after ``v`` and gets
only those. The scaling analysis runs in a background thread, at most one per
study at a time and no more often than it takes to compute, so a study of
10,000 trials never blocks a request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from carbs.storage import Storage, StudyRecord, TrialRecord, TrialState

logger = logging.getLogger(__name__)

# Reads of one study closer together than this share one database query.
REFRESH_INTERVAL = 0.5
# The analysis is redone at most every max(this, 3 * its last duration) seconds.
ANALYSIS_INTERVAL = 3.0
ERROR_TAIL_CHARS = 240


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def error_tail(trial: TrialRecord) -> str | None:
    """The reason a trial failed, or the last line of its standard error."""
    if trial.fail_reason:
        text = trial.fail_reason.strip()
    elif trial.stderr_tail:
        lines = [line for line in trial.stderr_tail.strip().splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    else:
        return None
    return text[-ERROR_TAIL_CHARS:] if text else None


def trial_row(trial: TrialRecord) -> dict[str, Any]:
    """The columns of the trials table and the points of the plots, as JSON data."""
    return {
        "number": trial.number,
        "state": str(trial.state),
        "params": dict(trial.params),
        "output": _finite(trial.output),
        "cost": _finite(trial.cost),
        "started_at": _iso(trial.started_at),
        "finished_at": _iso(trial.finished_at),
        "duration": trial.duration,
        "worker": trial.worker,
        "fail_kind": str(trial.fail_kind) if trial.fail_kind is not None else None,
        "error": error_tail(trial),
        "informative": trial.is_informative,
    }


def _is_open(trial: TrialRecord) -> bool:
    """Can still change: running, or declared stale (a late result is still accepted)."""
    if trial.state == TrialState.RUNNING:
        return True
    return trial.state == TrialState.FAILED and str(trial.fail_kind) == "stale"


class StudyFeed:
    """One study's trials in memory, refreshed incrementally, with versioned changes.

    Args:
        storage: where the study lives.
        record: the study.
        analysis_options: keyword arguments of :func:`carbs.analysis.analyze`.
        run: calls ``fn(*job)`` for the analysis, possibly elsewhere (default: in the
            calling thread); :class:`Feeds` runs it in a worker process.
    """

    def __init__(
        self,
        storage: Storage,
        record: StudyRecord,
        analysis_options: dict[str, Any] | None = None,
        run: Callable[[Callable[..., Any], tuple[Any, ...]], Any] | None = None,
    ) -> None:
        self.storage = storage
        self._run = run or (lambda fn, job: fn(*job))
        self.record = record
        self.analysis_options = dict(analysis_options or {})
        self.rows: dict[int, dict[str, Any]] = {}
        self._row_json: dict[int, str] = {}  # each row encoded once, when it changes
        self.changed: dict[int, int] = {}  # trial number -> version of its last change
        self.version = 0
        self.rows_read = 0  # trial rows read from the database, for the tests and benchmark
        self._trials: dict[int, TrialRecord] = {}
        self._curves: dict[int, list[dict[str, Any]]] = {}
        self._curve_steps: dict[int, int] = {}
        self._curve_changed: dict[int, int] = {}
        self._curve_version = 0
        self._last_curve_read = -math.inf
        self.curve_points_read = 0
        self._open: set[int] = set()
        self._max_number = -1
        self._last_read = -math.inf
        self._lock = threading.Lock()
        # Analysis state, guarded by _lock.
        self._analysis: Any = None
        self._summary: dict[str, Any] | None = None
        self._analysis_version = 0  # bumps when a new summary is ready
        self._analysed_at_version = -1  # trial version the current/next analysis describes
        self._analysis_running = False
        self._analysis_error: str | None = None
        self._next_analysis = 0.0

    # -- trials ----------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Read what can have changed since the last read (shared by close callers)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_read < REFRESH_INTERVAL:
                return
            self._last_read = now
            fresh = self.storage.trials_since(self.record.id, self._max_number, sorted(self._open))
            self.rows_read += len(fresh)
            bumped = False
            for trial in fresh:
                row = trial_row(trial)
                if self.rows.get(trial.number) != row:
                    if not bumped:
                        self.version += 1
                        bumped = True
                    self.rows[trial.number] = row
                    self._row_json[trial.number] = json.dumps(row, default=str)
                    self.changed[trial.number] = self.version
                self._trials[trial.number] = trial
                self._max_number = max(self._max_number, trial.number)
                if _is_open(trial):
                    self._open.add(trial.number)
                else:
                    self._open.discard(trial.number)

    def changes(self, since: int) -> tuple[int, str]:
        """The current version and the rows changed after version ``since`` as a JSON array."""
        with self._lock:
            numbers = sorted(n for n, v in self.changed.items() if v > since)
            return self.version, "[" + ",".join(self._row_json[n] for n in numbers) + "]"

    def trial(self, number: int) -> TrialRecord:
        """One trial, read fresh (the trial page shows its whole standard error)."""
        return self.storage.trial(self.record.id, number)

    def progress(self) -> dict[str, Any]:
        """Trials by state, cost spent, best output, Pareto size and last activity."""
        with self._lock:
            rows = list(self.rows.values())
            trials = list(self._trials.values())
        counts: dict[str, int] = {s.value: 0 for s in TrialState}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        sign = self.record.direction
        done = [r for r in rows if r["state"] == TrialState.COMPLETE.value and r["output"] is not None]
        best = max(done, key=lambda r: r["output"] * sign) if done else None
        times = [t.finished_at or t.heartbeat_at or t.started_at for t in trials]
        return {
            "name": self.record.name,
            "metric": self.record.metric,
            "direction": "maximize" if sign > 0 else "minimize",
            "n_trials": len(rows),
            "states": counts,
            "cost_spent": float(sum(r["cost"] for r in rows if r["cost"] is not None)),
            "best": None if best is None else {"number": best["number"], "output": best["output"],
                                               "cost": best["cost"]},
            "last_activity": _iso(max(times)) if times else None,
            "created_at": _iso(self.record.created_at),
            "version": self.version,
        }

    def param_specs(self) -> list[dict[str, str]]:
        """Name and kind (``log``, ``linear``, ``logit``, ``choice``) of each parameter."""
        from carbs.analysis.summary import param_kind
        from carbs.optimizer.space import Param

        return [
            {"name": p.name, "kind": param_kind(p)}
            for p in (Param.from_dict(d) for d in self.record.params)
        ]

    # -- intermediate values ---------------------------------------------------
    def has_curves(self) -> bool:
        """The storage keeps intermediate values (learning curves)."""
        return hasattr(self.storage, "intermediate_values")

    def curves(self, since: int) -> tuple[int, dict[int, list[dict[str, Any]]]]:
        """The curves that grew after curve version ``since``: trial number -> points.

        Asks the database for the last step of every curve (one small
        aggregate), then reads only the curves whose last step moved.
        """
        if not self.has_curves():
            return 0, {}
        storage: Any = self.storage
        with self._lock:
            now = time.monotonic()
            if now - self._last_curve_read >= REFRESH_INTERVAL:
                self._last_curve_read = now
                steps = storage.last_steps(self.record.id)
                grown = [n for n, s in steps.items() if self._curve_steps.get(n) != s]
                if grown:
                    fresh = storage.intermediate_values(self.record.id, grown)
                    self.curve_points_read += sum(len(v) for v in fresh.values())
                    self._curve_version += 1
                    for number, points in fresh.items():
                        self._curves[number] = [
                            {"step": p.step, "value": _finite(p.value), "cost": _finite(p.cost)}
                            for p in points
                        ]
                        self._curve_steps[number] = steps[number]
                        self._curve_changed[number] = self._curve_version
            changed = {n: self._curves[n] for n, v in self._curve_changed.items() if v > since}
            return self._curve_version, changed

    # -- analysis --------------------------------------------------------------
    def _observations(self) -> list[tuple[int, Any]]:
        """``(trial number, observation)`` of the finished trials the optimizer would see."""
        from carbs.study import trial_observation  # the study's own rule: what the model sees

        with self._lock:
            trials = [self._trials[n] for n in sorted(self._trials)]
        out = []
        for t in trials:
            obs = trial_observation(t)
            if obs is not None:
                out.append((t.number, obs))
        return out

    def analysis_state(self) -> dict[str, Any]:
        """Version and status of the analysis; starts a new one when trials changed."""
        with self._lock:
            stale = self._analysed_at_version != self.version
            start = stale and not self._analysis_running and time.monotonic() >= self._next_analysis
            if start:
                self._analysis_running = True
                self._analysed_at_version = self.version
            state = {
                "version": self._analysis_version,
                "computing": self._analysis_running,
                "error": self._analysis_error,
            }
        if start:
            threading.Thread(target=self._analyse, name=f"analysis-{self.record.name}",
                             daemon=True).start()
        return state

    def _analyse(self) -> None:
        started = time.monotonic()
        try:
            obs = self._observations()
            first = self._summary is None and self.analysis_options.get("n_bootstrap", 1) > 0
            # The first view gets the fits without intervals at once, then the full bootstrap.
            passes = [{**self.analysis_options, "n_bootstrap": 0}] if first else []
            passes.append(self.analysis_options)
            for options in passes:
                job = (obs, self.record.params, self.record.direction, options)
                analysis, summary = self._run(analyse_job, job)
                with self._lock:
                    self._analysis, self._summary = analysis, summary
                    self._analysis_version += 1
                    self._analysis_error = None
        except Exception as e:  # shown on the page; the next change retries
            logger.exception("analysis of study %r failed", self.record.name)
            with self._lock:
                self._analysis_error = f"{type(e).__name__}: {e}"
        finally:
            took = time.monotonic() - started
            with self._lock:
                self._analysis_running = False
                self._next_analysis = time.monotonic() + max(ANALYSIS_INTERVAL, 3 * took) - took

    def summary(self) -> tuple[int, dict[str, Any] | None]:
        """The latest analysis summary (``None`` before the first is ready) and its version."""
        with self._lock:
            return self._analysis_version, self._summary

    def extrapolate(self, target_cost: float) -> dict[str, Any]:
        """The latest analysis extrapolated to ``target_cost``, as JSON data."""
        from carbs.analysis.jsonutil import jsonable

        with self._lock:
            analysis = self._analysis
        if analysis is None:
            raise LookupError("the analysis is not ready yet")
        result: dict[str, Any] = jsonable(analysis.extrapolate(target_cost).to_dict())
        return result


def analyse_job(
    numbered: list[tuple[int, Any]],
    params: list[dict[str, Any]],
    direction: int,
    options: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """Fit the analysis of ``(trial number, observation)`` pairs and summarise it.

    Runs in the analysis process.
    """
    from carbs.analysis import analyze
    from carbs.analysis.summary import summarize
    from carbs.optimizer.space import Param

    observations = [o for _, o in numbered]
    analysis = analyze(observations, [Param.from_dict(p) for p in params], direction, **options)
    analysis.trial_numbers = [n for n, _ in numbered]
    summary = summarize(analysis)
    summary["n_bootstrap"] = options.get("n_bootstrap")
    return analysis, summary


def _lower_priority() -> None:
    # The bootstrap can take seconds of CPU: pages and sweeps come first.
    with contextlib.suppress(OSError):
        os.nice(10)


class Feeds:
    """A :class:`StudyFeed` per study of a storage, created on first use.

    Analyses run in one worker process (started on first use), so a long
    bootstrap never holds up the server's requests; :meth:`close` stops it.
    ``run(fn, job)`` replaces that worker (``fn(*job)`` runs the analysis).
    """

    def __init__(
        self,
        storage: Storage,
        analysis_options: dict[str, Any] | None = None,
        run: Callable[[Callable[..., Any], tuple[Any, ...]], Any] | None = None,
    ) -> None:
        self.storage = storage
        self._runner = run
        self.analysis_options = dict(analysis_options or {})
        self._feeds: dict[str, StudyFeed] = {}
        self._lock = threading.Lock()
        self._pool: Any = None

    def _run(self, fn: Callable[..., Any], job: tuple[Any, ...]) -> Any:
        if self._runner is not None:
            return self._runner(fn, job)
        with self._lock:
            if self._pool is None:
                import multiprocessing

                # spawn: forking a threaded server process is unsafe.
                ctx = multiprocessing.get_context("spawn")
                self._pool = ctx.Pool(1, initializer=_lower_priority)
            pool = self._pool
        return pool.apply_async(fn, job).get()

    def close(self) -> None:
        """Stop the analysis process (a running fit is abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
            pool.join()

    def studies(self) -> list[StudyRecord]:
        """Every study of the storage, oldest first."""
        return self.storage.list_studies()

    def get(self, name: str) -> StudyFeed:
        """The feed of study ``name``; raises ``StudyNotFoundError``."""
        with self._lock:
            feed = self._feeds.get(name)
        if feed is None:
            record = self.storage.get_study(name)
            with self._lock:
                feed = self._feeds.setdefault(
                    name, StudyFeed(self.storage, record, self.analysis_options, self._run)
                )
        feed.refresh()
        return feed
