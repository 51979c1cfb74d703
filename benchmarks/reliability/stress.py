"""The full reliability run: load and faults at scale, printed as markdown tables.

    python -m benchmarks.reliability.stress [--postgres-url URL] [--quick]

PostgreSQL scenarios use ``--postgres-url`` (default ``$CARBS_TEST_POSTGRES_URL``,
e.g. from ``scripts/postgres.sh start /tmp/pg 55477``) and are left out without
one; the restart scenario starts a server of its own. ``--quick`` shrinks every
scenario about tenfold. The full run takes about ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy
import scipy
import sqlalchemy

import carbs
from benchmarks.reliability import faults
from benchmarks.reliability.load import LoadResult, meter_cpu, run_load
from carbs.storage import dispose_engines

# Storage-bound load: the random phase never ends, so ask() costs only the storage.
STORAGE_BOUND = {"num_random_samples": 10**6}
# Model-bound load: the surrogate models suggest every point after the first four.
MODEL_BOUND = {"num_candidates_for_suggestion_per_dim": 10}


def fresh_postgres_schema(base: str) -> tuple[str, Callable[[], None]]:
    """A URL on a new schema of the server at ``base``, and a function dropping it."""
    import psycopg
    from sqlalchemy.engine import make_url

    from carbs.storage import normalize_url

    url = make_url(normalize_url(base))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"carbs_stress_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        dispose_engines()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), drop


def load_row(result: LoadResult, what: str) -> faults.Row:
    """A table row of a load run."""
    return faults.Row(
        f"load, {result.backend}",
        f"{result.processes} processes x {result.trials_per_process} trials, {what}",
        f"asked {result.asked}, told {result.told}, lost {result.lost}, duplicated "
        f"{result.duplicated}, errors {result.errors}; {result.throughput:.1f} trials/s",
        result.errors == 0 and result.lost == 0 and result.duplicated == 0
        and result.told == result.processes * result.trials_per_process,
    )


def many_workers(url: str, k: int, prefill: bool = False) -> tuple[faults.Row, LoadResult]:
    """64 workers asking on PostgreSQL at 500 trials: every ask accounted for, p95 under 0.5 s.

    With ``prefill``, the suggestion pool holds 64 suggestions when the workers
    start (as for workers joining a sweep whose pool is filled): the first asks
    then cost what taking a pooled suggestion costs with every worker at once."""
    # Trials of 5-15 s on a study already holding 500 trials; every point from
    # the models, with the default settings.
    result = run_load(url, backend="postgres", processes=64, trials_per_process=max(6 // k, 2),
                      seed_random_trials=500, seed_trials=10, trial_seconds=10.0,
                      prefill_pool=64 if prefill else 0)
    what = "trials of 5-15 s, 500 trials stored before, model-bound"
    row = load_row(result, what + (", 64 suggestions pooled before the start" if prefill else ""))
    p50, p95 = result.ask_percentile(0.5), result.ask_percentile(0.95)
    # The first seed ask searches the hyperparameters; the others show the steady state.
    steady = result.seed_ask_cpu[1:]
    cpu = statistics.median(c for c, _ in steady) if steady else math.nan
    lock = statistics.median(h for _, h in steady) if steady else math.nan
    pooled_cpu, pooled_lock = pooled_ask_cpu(url)
    first = range(0, 1)  # every worker asking at once
    later = range(1, result.trials_per_process)
    loads = sorted(result.load_averages) or [math.nan]
    row = faults.Row(row.scenario, row.done,
                     f"{row.counts}; ask p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (first asks, all at once: "
                     f"p50 {result.ask_percentile(0.5, first) * 1000:.0f} ms, p95 "
                     f"{result.ask_percentile(0.95, first) * 1000:.0f} ms; later asks: p50 "
                     f"{result.ask_percentile(0.5, later) * 1000:.0f} ms, p95 "
                     f"{result.ask_percentile(0.95, later) * 1000:.0f} ms); load average during the run "
                     f"{loads[0]:.1f}-{loads[-1]:.1f} (median {statistics.median(loads):.1f}); one ask alone: "
                     f"{cpu * 1000:.0f} ms CPU, {lock * 1000:.0f} ms of it holding the lock; an ask served "
                     f"from the pool: {pooled_cpu * 1000:.0f} ms CPU, {pooled_lock * 1000:.0f} ms of it "
                     "holding the lock; asks served: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(result.ask_paths.items())),
                     row.ok and p95 < 0.5)
    return row, result


def pooled_ask_cpu(url: str, study_name: str = "load", asks: int = 8) -> tuple[float, float]:
    """Median CPU seconds of an ask served from the suggestion pool, and of its
    transaction under the study lock, measured in this process on the study a
    load run left."""
    from carbs.study import load_study

    study = load_study(study_name, url)
    trials = [study.ask(), study.ask()]  # trials in flight: the pool is used and filled
    study.wait_for_pool_refill(300)
    locked_cpu = meter_cpu(study.storage, "locked_study", "take_suggestion")
    samples = []
    for _ in range(asks):
        locked_cpu[0], start = 0.0, time.process_time()
        trials.append(study.ask())
        samples.append((time.process_time() - start, locked_cpu[0]))
        study.wait_for_pool_refill(300)  # a refill runs in the background: not part of the ask
    for trial in trials:
        study.tell(trial, 1.0, 1.0)
    return statistics.median(c for c, _ in samples), statistics.median(h for _, h in samples)


def latency_table(results: list[tuple[str, LoadResult]]) -> list[str]:
    """Markdown lines: ask latency (lock wait included) against the trials already in the study."""
    lines = ["| run | trials in study | median ask (ms) | p90 ask (ms) |", "|---|---|---|---|"]
    for name, result in results:
        width = max(-(-result.asked // 6), 5)  # six buckets, rounded up
        for lo, hi, median, p90 in result.latency_by_bucket(width):
            lines.append(f"| {name} | {lo}-{hi} | {median:.0f} | {p90:.0f} |")
    return lines


def standard_scenarios(postgres_url: str | None, k: int, rows: list[faults.Row],
                       latencies: list[tuple[str, LoadResult]]) -> None:
    """The load and fault scenarios (PostgreSQL ones only with ``postgres_url``)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp)
        result = run_load(f"sqlite:///{db}/load.db", backend="sqlite", processes=8,
                          trials_per_process=130 // k, settings=STORAGE_BOUND)
        rows.append(load_row(result, "storage-bound (random suggestions)"))
        latencies.append(("sqlite, storage-bound", result))
        result = run_load(f"sqlite:///{db}/model.db", backend="sqlite", processes=8,
                          trials_per_process=40 // k, settings=MODEL_BOUND)
        rows.append(load_row(result, "model-bound (every suggestion from the models)"))
        latencies.append(("sqlite, model-bound", result))
        if postgres_url:
            url, drop = fresh_postgres_schema(postgres_url)
            try:
                result = run_load(url, backend="postgres", processes=32,
                                  trials_per_process=32 // k, settings=STORAGE_BOUND)
            finally:
                drop()
            rows.append(load_row(result, "storage-bound (random suggestions)"))
            latencies.append(("postgres, storage-bound", result))
        rows.append(faults.kill_during_writes(f"sqlite:///{db}/kill.db", "sqlite", rounds=10 // k + 1, processes=4))
        if postgres_url:
            url, drop = fresh_postgres_schema(postgres_url)
            try:
                rows.append(faults.kill_during_writes(url, "postgres", rounds=10 // k + 1, processes=8))
            finally:
                drop()
    rows.append(faults.kill_controller(rounds=10 // k + 1, trials=120 // k, workers=4))
    rows.append(faults.output_flood(2000 // k))
    rows.append(faults.json_flood(1_000_000 // k))
    restart = faults.postgres_restart_under_load(8, 80 // k, outage=3.0)
    if restart is not None:
        rows.append(restart)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("CARBS_TEST_POSTGRES_URL"))
    parser.add_argument("--quick", action="store_true", help="about ten times smaller")
    parser.add_argument("--many-workers-only", action="store_true",
                        help="only the 64-worker PostgreSQL scenarios (about 4 minutes)")
    args = parser.parse_args(argv)
    k = 10 if args.quick else 1
    rows: list[faults.Row] = []
    latencies: list[tuple[str, LoadResult]] = []
    started = time.perf_counter()
    if args.postgres_url:
        for prefill in (False, True):
            url, drop = fresh_postgres_schema(args.postgres_url)
            try:
                row, result = many_workers(url, k, prefill)
            finally:
                drop()
            rows.append(row)
            latencies.append(("postgres, 64 workers, model-bound" + (", pool filled" if prefill else ""), result))
    elif args.many_workers_only:
        parser.error("--many-workers-only needs --postgres-url")
    if not args.many_workers_only:
        standard_scenarios(args.postgres_url, k, rows, latencies)
    elapsed = time.perf_counter() - started

    print(f"Run on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{elapsed / 60:.1f} min; carbs {carbs.__version__}, Python {platform.python_version()}, "
          f"numpy {numpy.__version__}, scipy {scipy.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}\n")
    print("| scenario | what was done | counts | result |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.scenario} | {row.done} | {row.counts} | {'pass' if row.ok else 'FAIL'} |")
    print()
    print("\n".join(latency_table(latencies)))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
