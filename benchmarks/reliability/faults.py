"""Fault scenarios of the stress run: kill -9 during writes, output floods, a server restart.

Each scenario returns a :class:`Row` of the reliability table: what was done,
the counts, and whether the expectations held.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.reliability.load import PARAMS, objective, run_load
from carbs.storage import FailKind, TrialRecord, TrialState, dispose_engines
from carbs.study import create_study, load_study

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Row:
    """One line of the reliability table."""

    scenario: str
    done: str
    counts: str
    ok: bool


def _hammer(url: str, grace: float) -> None:
    """Ask and tell as fast as possible until killed."""
    study = load_study("hammer", url)
    while True:
        trial = study.ask(heartbeat_grace=grace)
        study.tell(trial, *objective(trial.params))


def kill_during_writes(url: str, backend: str, rounds: int, processes: int, seed: int = 0) -> Row:
    """Rounds of ``processes`` writers killed with SIGKILL at random moments."""
    grace = 1.0
    study = create_study("hammer", url, params=PARAMS, settings={"num_random_samples": 10**6})
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("fork")
    complete: dict[int, TrialRecord] = {}
    for _ in range(rounds):
        dispose_engines()
        procs = [ctx.Process(target=_hammer, args=(url, grace)) for _ in range(processes)]
        for p in procs:
            p.start()
        time.sleep(rng.uniform(1.0, 3.0))
        for p in procs:
            if p.pid is not None:
                os.kill(p.pid, signal.SIGKILL)
            p.join(timeout=10)
        for t in study.trials():
            if t.state == TrialState.COMPLETE:
                complete.setdefault(t.number, t)
    time.sleep(grace + 0.2)
    trial = study.ask()  # reaps what the dead writers left RUNNING
    study.tell(trial, *objective(trial.params))
    trials = study.trials()
    by_number = {t.number: t for t in trials}
    lost = sum(1 for n, t in complete.items() if by_number.get(n) != t)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    stale = sum(1 for t in trials if t.fail_kind == FailKind.STALE)
    contiguous = [t.number for t in trials] == list(range(len(trials)))
    integrity = "n/a"
    if backend == "sqlite":
        path = url.split("///", 1)[1]
        integrity = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0]
    ok = lost == 0 and running == 0 and contiguous and integrity in ("ok", "n/a")
    return Row(
        f"kill -9 during writes ({backend})",
        f"{rounds} rounds x {processes} processes in tight ask/tell loops, SIGKILL at random, then resume",
        f"{len(complete)} COMPLETE seen before kills, {lost} lost or changed, {stale} stale "
        f"(reaped), {running} RUNNING left" + (f", integrity {integrity}" if backend == "sqlite" else ""),
        ok,
    )


TRIAL = """
import json, os, sys, time
with open("pids", "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(0.5)
print(json.dumps({"loss": (float(sys.argv[1]) - 0.3) ** 2}))
"""

SWEEP = """name: toy
command: '{{python}} trial.py {{x}}'
metric: loss
parameters:
  x: {{space: linear, min: -1, max: 1}}
budget: {{trials: {trials}}}
workers: {workers}
heartbeat: {{interval: 0.2, grace: 1.0}}
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_controller(rounds: int, trials: int, workers: int, seed: int = 0) -> Row:
    """``carbs run`` killed with SIGKILL at random moments, re-run until its budget is spent."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "trial.py").write_text(TRIAL)
        (directory / "sweep.yaml").write_text(SWEEP.format(trials=trials, workers=workers))
        url = f"sqlite:///{directory}/runs.db"
        argv = [sys.executable, "-m", "carbs.cli", "run", "sweep.yaml", "--storage", url, "--no-progress"]
        complete: dict[int, TrialRecord] = {}
        for _ in range(rounds):
            proc = subprocess.Popen(argv, cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(1.5, 3.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            dispose_engines()
            for t in load_study("toy", url).trials():
                if t.state == TrialState.COMPLETE:
                    complete.setdefault(t.number, t)
            time.sleep(1.2)  # past the grace period: the next run reaps the dead run's trials
        finished = subprocess.run(argv, cwd=directory, env=env, capture_output=True, timeout=600)
        dispose_engines()
        trials_now = load_study("toy", url).trials()
        pids = [int(p) for p in (directory / "pids").read_text().split()]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = sum(1 for p in pids if _alive(p))
    by_number = {t.number: t for t in trials_now}
    lost = sum(1 for n, t in complete.items() if by_number.get(n) != t)
    running = sum(1 for t in trials_now if t.state == TrialState.RUNNING)
    stale = sum(1 for t in trials_now if t.fail_kind == FailKind.STALE)
    done = sum(1 for t in trials_now if t.state == TrialState.COMPLETE)
    return Row(
        "kill -9 of `carbs run`",
        f"`carbs run` with {workers} workers killed {rounds} times at random, then run to its "
        f"budget of {trials} trials",
        f"{len(complete)} COMPLETE seen before kills, {lost} lost or changed, {stale} stale, "
        f"{running} RUNNING left, {orphans} trial programs left running, {done} COMPLETE at the end, "
        f"exit code {finished.returncode}",
        lost == 0 and running == 0 and orphans == 0 and done == trials and finished.returncode == 0,
    )


FLOOD = """
import sys
line = "y" * 8191 + "\\n"
for _ in range({mb} * 128):
    sys.stdout.write(line)
print('{{"loss": 0.25}}')
"""

JSON_FLOOD = """
import sys
w = sys.stdout.write
for i in range({lines}):
    w('{{"step": %d, "loss": 0.5}}\\n' % i)
print('{{"loss": 0.25}}')
"""

_MEASURE = """
import json, os, resource, sys, time
from carbs.runner.process import run_process
from carbs.runner.results import evaluate
start = time.perf_counter()
result = run_process([sys.executable, "-c", sys.argv[1]], env=dict(os.environ), cwd=os.getcwd())
outcome = evaluate(result, metric="loss", cost_key=None, results_file="/nonexistent", timeout=None)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "output": outcome.output, "seconds": time.perf_counter() - start,
                  "tail_chars": len(result.stdout_tail)}))
"""


def _runner_memory(program: str) -> dict[str, float]:
    """Peak memory of a process running ``program`` as a trial and reading all its output."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, program], capture_output=True, text=True, cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=1800, check=True,
        )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def output_flood(megabytes: int) -> Row:
    """A trial printing ``megabytes`` of plain text before its result."""
    baseline = _runner_memory(FLOOD.format(mb=0))
    flood = _runner_memory(FLOOD.format(mb=megabytes))
    growth = flood["peak_mb"] - baseline["peak_mb"]
    return Row(
        "trial output flood",
        f"a trial prints {megabytes} MB of text lines, then its result",
        f"runner peak memory {flood['peak_mb']:.0f} MB (+{growth:.0f} MB over an idle trial), "
        f"{flood['seconds']:.1f} s, result read: {flood['output']}, tail {flood['tail_chars']:.0f} chars",
        growth < 50 and flood["output"] == 0.25,
    )


def json_flood(lines: int) -> Row:
    """A trial logging ``lines`` JSON objects (one per training step) before its result."""
    baseline = _runner_memory(JSON_FLOOD.format(lines=0))
    flood = _runner_memory(JSON_FLOOD.format(lines=lines))
    growth = flood["peak_mb"] - baseline["peak_mb"]
    return Row(
        "JSON log flood",
        f"a trial prints {lines:,} JSON lines (one per step), then its result",
        f"runner peak memory {flood['peak_mb']:.0f} MB (+{growth:.0f} MB over an idle trial), "
        f"{flood['seconds']:.1f} s, result read: {flood['output']}",
        growth < 50 and flood["output"] == 0.25,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_restart_under_load(processes: int, trials_per_process: int, outage: float) -> Row | None:
    """Workers asking and telling while their PostgreSQL server restarts; ``None`` without binaries.

    The workers do not retry anything themselves: the storage reconnects.
    """
    if not any(Path(d, "initdb").exists() for d in Path("/usr/lib/postgresql").glob("*/bin")):
        return None
    directory = Path(tempfile.mkdtemp(prefix="carbs-pg-"))
    directory.chmod(0o755)  # the server runs as another user
    script = str(REPO / "scripts" / "postgres.sh")
    port = _free_port()

    def run(*args: str) -> str:
        out = subprocess.run([script, *args], capture_output=True, text=True, timeout=120, check=True)
        return out.stdout.strip()

    def restart_later() -> None:
        time.sleep(1.0)
        run("stop", str(directory))
        time.sleep(outage)
        run("start", str(directory), str(port))

    try:
        url = run("start", str(directory), str(port)).splitlines()[-1]
        result = run_load(
            url, backend="postgres", processes=processes, trials_per_process=trials_per_process,
            settings={"num_random_samples": 10**6}, retry=False, during=restart_later,
        )
    finally:
        subprocess.run([script, "stop", str(directory)], capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)
    return Row(
        "PostgreSQL restarted under load",
        f"{processes} processes x {trials_per_process} trials; server stopped for {outage:g} s "
        "after 1 s; the storage reconnects by itself (workers retry nothing)",
        f"asked {result.asked}, told {result.told}, lost {result.lost}, duplicated "
        f"{result.duplicated}, errors {result.errors}",
        result.lost == 0 and result.duplicated == 0 and result.errors == 0
        and result.told == processes * trials_per_process,
    )


def peak_memory_mb() -> float:
    """Peak memory of this process and its children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


Scenario = Callable[[], "Row | None"]
