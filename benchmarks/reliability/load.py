"""Many processes asking and telling on one study at once, with every hand-out accounted for.

Each worker process loads the study by name, waits at a barrier so that all
start together, then runs ``ask`` / instant objective / ``tell`` in a loop and
reports what it saw. The parent then reconciles the reports with what the
storage holds:

* **lost**: a trial that was handed out but is neither COMPLETE nor FAILED at
  the end, or a hand-out whose trial is missing from the storage;
* **duplicated**: a trial number handed to two askers, a trial told twice, or
  the same point handed out while an identical one was still RUNNING;
* **errors**: any exception from ``ask`` or ``tell``.

All three are expected to be 0.
"""

from __future__ import annotations

import collections
import functools
import json
import math
import multiprocessing
import os
import random
import statistics
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from carbs import LinearSpace, LogSpace, Param
from carbs.optimizer.types import SUGGESTION_ID_DICT_KEY
from carbs.storage import (
    Storage,
    StorageError,
    TrialRecord,
    TrialState,
    TrialStateError,
    dispose_engines,
)
from carbs.study import Study, create_study, load_study

T = TypeVar("T")

PARAMS = [
    Param("x", LinearSpace(min=-1.0, max=1.0, scale=0.5), search_center=0.0),
    Param("lr", LogSpace(min=1e-4, max=1.0), search_center=1e-2),
]


def objective(params: dict[str, Any]) -> tuple[float, float]:
    """An instant objective: (output, cost)."""
    return (params["x"] - 0.3) ** 2 + math.log10(params["lr"]) ** 2 / 100, 1.0 + params["lr"]


@dataclass
class WorkerReport:
    """What one worker process did."""

    worker: str
    asked: list[tuple[int, str, float]] = field(default_factory=list)  # number, params, seconds
    told: int = 0
    told_twice: int = 0
    paths: list[str] = field(default_factory=list)  # how each ask was served
    retried: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    """Counts of one load run, reconciled with the storage."""

    backend: str
    processes: int
    trials_per_process: int
    asked: int
    told: int
    lost: int
    duplicated: int
    errors: int
    retried: int
    seconds: float
    ask_seconds: list[tuple[int, float]]  # (trials that existed when asked, seconds)
    error_samples: list[str]
    # CPU seconds of each ask of the seed trials (one process alone), and of
    # the part spent holding the study lock: what bounds many workers' asks.
    seed_ask_cpu: list[tuple[float, float]] = field(default_factory=list)
    # (how many asks the worker had made before, seconds) of each ask: round 0
    # is every worker asking at once.
    ask_rounds: list[tuple[int, float]] = field(default_factory=list)
    # The 1-minute load average, sampled every few seconds during the run.
    load_averages: list[float] = field(default_factory=list)
    # How many asks were served each way (from the pool, after waiting, ...).
    ask_paths: dict[str, int] = field(default_factory=dict)

    def ask_percentile(self, q: float, rounds: range | None = None) -> float:
        """The ``q`` quantile (0-1) of the ask latency in seconds (of the asks of ``rounds`` only)."""
        if rounds is None:
            values = sorted(s for _, s in self.ask_seconds)
        else:
            values = sorted(s for r, s in self.ask_rounds if r in rounds)
        return values[min(len(values) - 1, int(q * len(values)))] if values else math.nan

    @property
    def throughput(self) -> float:
        """Finished trials per second of wall-clock time."""
        return self.told / self.seconds if self.seconds > 0 else 0.0

    def latency_by_bucket(self, width: int) -> list[tuple[int, int, float, float]]:
        """``(from, to, median ms, p90 ms)`` of the ask latency per ``width`` existing trials."""
        buckets: dict[int, list[float]] = {}
        for count, seconds in self.ask_seconds:
            buckets.setdefault(count // width, []).append(seconds * 1000.0)
        last = max((count for count, _ in self.ask_seconds), default=0)
        rows = []
        for b in sorted(buckets):
            values = sorted(buckets[b])
            p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
            rows.append((b * width, min((b + 1) * width - 1, last), statistics.median(values), p90))
        return rows


def _retrying(call: Callable[[], T], report: WorkerReport, retry: bool) -> T:
    """``call()``; with ``retry``, storage errors (an unreachable server) are retried for 2 minutes."""
    deadline = time.monotonic() + 120.0
    while True:
        try:
            return call()
        except StorageError:
            if not retry or time.monotonic() > deadline:
                raise
            report.retried += 1
            time.sleep(0.5)


def _worker(
    url: str,
    study_name: str,
    index: int,
    n_trials: int,
    grace: float,
    retry: bool,
    barrier: Any,
    out: Any,
    trial_seconds: float = 0.0,
) -> None:
    """Body of one worker process."""
    report = WorkerReport(worker=f"load-{index}:{os.getpid()}")
    pace = random.Random(index)
    try:
        study = _retrying(lambda: load_study(study_name, url), report, retry)
        barrier.wait(timeout=300)
        for _ in range(n_trials):
            start = time.perf_counter()
            try:
                trial = _retrying(
                    lambda: study.ask(worker=report.worker, heartbeat_grace=grace), report, retry
                )
            except Exception as e:
                report.errors.append(f"ask: {type(e).__name__}: {e}")
                continue
            elapsed = time.perf_counter() - start
            report.paths.append(str(getattr(study, "_last_ask_path", None)))
            report.asked.append((trial.number, json.dumps(trial.params, sort_keys=True), elapsed))
            output, cost = objective(trial.params)
            if trial_seconds > 0:  # a trial that takes time, as real ones do
                time.sleep(trial_seconds * pace.uniform(0.5, 1.5))
            try:
                _retrying(functools.partial(study.tell, trial, output, cost), report, retry)
                report.told += 1
            except TrialStateError:
                report.told_twice += 1
            except Exception as e:
                report.errors.append(f"tell {trial.number}: {type(e).__name__}: {e}")
    except Exception:
        report.errors.append(traceback.format_exc(limit=5))
    out.put(report)


def _overlapping_duplicates(trials: list[TrialRecord]) -> int:
    """Trials handed out with the same params as another trial that was still RUNNING."""
    by_point: dict[str, list[TrialRecord]] = {}
    for t in trials:
        by_point.setdefault(json.dumps(t.params, sort_keys=True), []).append(t)
    count = 0
    for same in by_point.values():
        same.sort(key=lambda t: t.started_at)
        for earlier, later in zip(same, same[1:]):
            if earlier.finished_at is None or later.started_at < earlier.finished_at:
                count += 1
    return count


def seed_finished_trials(url: str, study_name: str, n: int, seed: int = 0) -> None:
    """Store ``n`` COMPLETE trials at random points directly, without the optimizer
    (a study that already holds a long history, in seconds). Every fifth is
    marked a resample, as in a sweep with the default ``resample_frequency``,
    so that the next asks are not a run of resamples catching up."""
    study = load_study(study_name, url)
    storage: Storage = study.storage
    rng = random.Random(seed)
    for i in range(n):
        params = {"x": rng.uniform(-1.0, 1.0), "lr": 10 ** rng.uniform(-4.0, 0.0)}
        kind = "resample" if i % 5 == 4 else "random"
        record = storage.locked_study(
            study.id, lambda locked, p=params, k=kind: locked.add_trial(p, suggestion_kind=k)
        )
        output, cost = objective(params)
        storage.finish_trial(study.id, record.number, state=TrialState.COMPLETE, output=output, cost=cost)


def meter_cpu(storage: Storage, *methods: str) -> list[float]:
    """Wrap ``methods`` of ``storage`` so that the CPU seconds spent in them add up in
    the returned one-item list (set it to 0 to start a measurement)."""
    spent = [0.0]
    for name in methods:
        real = getattr(storage, name)

        def timed(*args: Any, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - start

        setattr(storage, name, timed)
    return spent


def fill_pool(study: Study, n: int) -> None:
    """Store ``n`` suggestions of one batch in the study's suggestion pool, with the
    observation count and cost estimates a refill stores."""
    opt = study.build_optimizer()
    basis = opt.observation_count
    chunk = []
    for out in opt.suggest_batch(n):
        params = {k: v for k, v in out.suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
        upper = out.log.get("suggestion_meta/cost_upper_estimate")
        chunk.append((params, out.log.get("suggestion_kind"), None if upper is None else float(upper)))
    study.storage.add_suggestions(study.id, study._definition(), basis, chunk)


def run_load(
    url: str,
    *,
    backend: str,
    processes: int,
    trials_per_process: int,
    study_name: str = "load",
    settings: dict[str, Any] | None = None,
    grace: float = 600.0,
    seed_trials: int = 0,
    seed_random_trials: int = 0,
    trial_seconds: float = 0.0,
    retry: bool = False,
    during: Callable[[], None] | None = None,
    prefill_pool: int = 0,
) -> LoadResult:
    """Run the load test on an empty storage at ``url`` and reconcile the counts.

    ``seed_trials`` trials are run first in this process, so that the workers
    start in the model phase rather than the random one; ``seed_random_trials``
    finished trials at random points are stored before them. Each worker's
    trials take ``trial_seconds`` (from half to one and a half times). With ``retry`` the
    workers retry storage errors (as a sweep loop riding out a database
    restart would); ``during`` is called once all workers have started (to
    inject a fault). ``prefill_pool`` suggestions are stored in the study's
    suggestion pool before the workers start, made in one batch as a refill
    makes them: the first asks then measure the cost of taking a pooled
    suggestion with every worker at once, without waiting for models.
    """
    study = create_study(study_name, url, params=PARAMS, settings=settings or {})
    seed_finished_trials(url, study_name, seed_random_trials)
    seed_ask_cpu = []
    locked_cpu = meter_cpu(study.storage, "locked_study")
    for _ in range(seed_trials):
        locked_cpu[0], start = 0.0, time.process_time()
        trial = study.ask()
        seed_ask_cpu.append((time.process_time() - start, locked_cpu[0]))
        study.tell(trial, *objective(trial.params))
    if prefill_pool:
        fill_pool(study, prefill_pool)
    # Forked children must not share pooled connections with this process.
    dispose_engines()
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(url, study_name, i, trials_per_process, grace, retry, barrier, out, trial_seconds),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=300)
    start = time.perf_counter()
    loads: list[float] = []
    sampling = threading.Event()

    def sample_load() -> None:
        while True:
            loads.append(os.getloadavg()[0])
            if sampling.wait(5.0):
                return

    sampler = threading.Thread(target=sample_load, daemon=True)
    sampler.start()
    if during is not None:
        during()
    reports: list[WorkerReport] = [out.get(timeout=1800) for _ in procs]
    seconds = time.perf_counter() - start
    sampling.set()
    sampler.join()
    for p in procs:
        p.join(timeout=60)
    exit_errors = [f"worker exit code {p.exitcode}" for p in procs if p.exitcode != 0]

    trials = {t.number: t for t in load_study(study_name, url).trials()}
    handed = [(n, params, s) for r in reports for (n, params, s) in r.asked]
    numbers = [n for n, _, _ in handed]
    lost = sum(
        1
        for n in set(numbers)
        if n not in trials or trials[n].state not in (TrialState.COMPLETE, TrialState.FAILED)
    )
    lost += sum(1 for t in trials.values() if t.state == TrialState.RUNNING and t.number not in numbers)
    duplicated = (
        len(numbers) - len(set(numbers))
        + sum(r.told_twice for r in reports)
        + _overlapping_duplicates(list(trials.values()))
    )
    # A hand-out whose params differ from the stored trial is corruption: count it as lost.
    lost += sum(1 for n, params, _ in handed if n in trials and json.dumps(trials[n].params, sort_keys=True) != params)
    errors = [e for r in reports for e in r.errors] + exit_errors
    return LoadResult(
        backend=backend,
        processes=processes,
        trials_per_process=trials_per_process,
        asked=len(handed),
        told=sum(r.told for r in reports),
        lost=lost,
        duplicated=duplicated,
        errors=len(errors),
        retried=sum(r.retried for r in reports),
        seconds=seconds,
        ask_seconds=[(n, s) for n, _, s in handed],
        error_samples=errors[:5],
        seed_ask_cpu=seed_ask_cpu,
        ask_rounds=[(i, s) for r in reports for i, (_, _, s) in enumerate(r.asked)],
        load_averages=loads,
        ask_paths=dict(collections.Counter(p for r in reports for p in r.paths)),
    )
