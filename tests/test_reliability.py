"""Load and faults against the study API and the ``carbs`` command, with counts.

Short versions of the scenarios of ``benchmarks/reliability/stress.py``:
many processes asking and telling at once, ``kill -9`` of workers, of the
``carbs run`` controller and of processes in the middle of a write, a trial
that hangs past its timeout, a trial that floods its output, a read-only
database, and a PostgreSQL server restarted in the middle of a sweep. After
each: no COMPLETE trial lost or changed, no trial left RUNNING past the
grace period, and the study carries on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _storage_urls import postgres_schema_url, trials_of, wait_for

from benchmarks.reliability.load import PARAMS, objective, run_load
from carbs.storage import FailKind, StorageError, TrialRecord, TrialState, dispose_engines
from carbs.study import create_study, load_study

REPO = Path(__file__).resolve().parent.parent
GRACE = 1.5

# A trial program steered by files in its working directory (see write_sweep).
TRIAL = r'''
import json, os, subprocess, sys, time
x = float(sys.argv[1])
number = os.environ["CARBS_TRIAL_NUMBER"]
with open("pids", "a") as f:
    f.write(f"{number} {os.getpid()}\n")
def steer(name):
    return os.path.exists(name) and open(name).read().split() or []
if number in steer("hang"):
    # A hung trial that also started a helper process of its own.
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open("helpers", "a") as f:
        f.write(f"{helper.pid}\n")
    time.sleep(120)
if str(os.getppid()) in steer("hang_parents"):
    time.sleep(120)
if os.path.exists("slow"):
    time.sleep(float(open("slow").read()))
flood = steer("flood")
if flood:
    megabytes, stream = int(flood[0]), flood[1]
    out = sys.stdout if stream == "stdout" else sys.stderr
    line = ("y" * 8191) + "\n"
    for _ in range(megabytes * 128):
        out.write(line)
    out.flush()
    if stream == "stderr":
        print("last words: out of patience", file=sys.stderr)
        sys.exit(7)
print(json.dumps({"loss": (x - 0.3) ** 2}))
'''


def write_sweep(directory: Path, *, trials: int, workers: int = 1, extra: str = "") -> Path:
    """``trial.py`` and a ``sweep.yaml`` that runs it."""
    (directory / "trial.py").write_text(TRIAL)
    path = directory / "sweep.yaml"
    path.write_text(
        "name: toy\n"
        "command: '{python} trial.py {x}'\n"
        "metric: loss\n"
        "parameters:\n"
        "  x: {space: linear, min: -1, max: 1}\n"
        f"budget: {{trials: {trials}}}\n"
        f"workers: {workers}\n"
        f"heartbeat: {{interval: 0.2, grace: {GRACE}}}\n" + extra
    )
    return path


def cli(*args: str, cwd: Path, background: bool = False, **kw: Any) -> Any:
    """Run the ``carbs`` command (or start it, with ``background``)."""
    argv = [sys.executable, "-m", "carbs.cli", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if background:
        return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=180, env=env, **kw)


def started(directory: Path) -> dict[int, int]:
    """Trial number -> pid of every trial program started in ``directory``."""
    path = directory / "pids"
    if not path.exists():
        return {}
    return {int(n): int(p) for n, p in (line.split() for line in path.read_text().splitlines())}


def pid_alive(pid: int) -> bool:
    """Whether a process (not a zombie) with this pid exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, what: str) -> None:
    """Wait until process ``pid`` is gone."""
    deadline = time.monotonic() + 15
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"{what} (pid {pid}) is still alive"
        time.sleep(0.05)


def running_trial_of(url: str, worker_pid: int, after: int = -1) -> TrialRecord | None:
    """A RUNNING trial numbered above ``after`` that was handed to the process ``worker_pid``."""
    for t in trials_of(url):
        mine = t.worker is not None and t.worker.split(":")[1] == str(worker_pid)
        if t.state == TrialState.RUNNING and mine and t.number > after:
            return t
    return None


def assert_settled(trials: list[TrialRecord], before: dict[int, TrialRecord]) -> None:
    """Numbers contiguous, nothing RUNNING, earlier COMPLETE trials unchanged."""
    assert [t.number for t in trials] == list(range(len(trials)))
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    for number, record in before.items():
        assert trials[number] == record, f"COMPLETE trial {number} changed"



# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------
def check_load(result: Any, expected: int) -> None:
    """Every hand-out accounted for."""
    assert result.errors == 0, result.error_samples
    assert (result.asked, result.told) == (expected, expected)
    assert result.lost == 0
    assert result.duplicated == 0


def test_load_8_processes_on_sqlite(tmp_path: Path) -> None:
    # The last 60 trials are suggested by the models, the rest by the random phase.
    result = run_load(
        f"sqlite:///{tmp_path}/load.db", backend="sqlite", processes=8, trials_per_process=25,
        settings={"num_random_samples": 140, "num_candidates_for_suggestion_per_dim": 10},
    )
    check_load(result, 200)


@pytest.mark.postgres
def test_load_32_processes_on_postgres() -> None:
    with postgres_schema_url() as url:
        result = run_load(
            url, backend="postgres", processes=32, trials_per_process=8,
            settings={"num_random_samples": 200, "num_candidates_for_suggestion_per_dim": 10},
        )
    check_load(result, 256)


# ---------------------------------------------------------------------------
# kill -9
# ---------------------------------------------------------------------------
def _hammer(url: str) -> None:
    """Ask and tell as fast as possible until killed."""
    study = load_study("hammer", url)
    while True:
        trial = study.ask(heartbeat_grace=GRACE)
        study.tell(trial, *objective(trial.params))


def test_kill_9_in_the_middle_of_writes(url: str) -> None:
    study = create_study("hammer", url, params=PARAMS, settings={"num_random_samples": 10**6})
    rng = random.Random(0)
    ctx = multiprocessing.get_context("fork")
    complete: dict[int, TrialRecord] = {}
    killed = 0
    for _ in range(3):
        dispose_engines()
        procs = [ctx.Process(target=_hammer, args=(url,)) for _ in range(3)]
        for p in procs:
            p.start()
        time.sleep(rng.uniform(1.5, 2.5))
        for p in procs:
            assert p.pid is not None and p.is_alive()
            os.kill(p.pid, signal.SIGKILL)
            p.join(timeout=10)
            killed += 1
        for t in study.trials():
            if t.state == TrialState.COMPLETE:
                complete.setdefault(t.number, t)
    assert len(complete) > 10, "the processes did write"
    time.sleep(GRACE + 0.2)
    for _ in range(3):  # the next ask reaps what the dead processes left RUNNING
        trial = study.ask()
        study.tell(trial, *objective(trial.params))
    trials = study.trials()
    assert_settled(trials, complete)
    failed = [t for t in trials if t.state == TrialState.FAILED]
    assert len(failed) <= killed
    assert all(t.fail_kind == FailKind.STALE for t in failed)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_kill_9_of_a_worker_and_of_the_controller_then_resume(url: str, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, trials=12, workers=2)
    # Slow trials until the joining worker has one: on a busy machine a fresh
    # `carbs worker` can take seconds to ask, and the controller must not have
    # used up the budget by then.
    (tmp_path / "slow").write_text("1.5")
    hang = tmp_path / "hang_parents"  # trials started by these pids hang until killed
    runner = cli("run", str(sweep), "--storage", url, "--no-progress", cwd=tmp_path, background=True)
    worker = None
    try:
        wait_for(lambda: len(trials_of(url)) >= 2, what="the sweep to start")
        worker = cli("worker", "--storage", url, "--study", "toy", "--no-progress", cwd=tmp_path, background=True)
        hang.write_text(f"{worker.pid}\n")
        # kill -9 of the joining worker while one of its trials runs.
        victim = wait_for(lambda: running_trial_of(url, worker.pid), what="a trial of the worker")
        (tmp_path / "slow").write_text("0.3")
        wait_for(lambda: victim.number in started(tmp_path), what="its program")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        # kill -9 of the controller while a trial of its own runs (one asked after this
        # point, so that its program is sure to hang), once two trials are done.
        wait_for(lambda: sum(t.state == TrialState.COMPLETE for t in trials_of(url)) >= 2,
                 what="two finished trials")
        hang.write_text(f"{runner.pid}\n")
        after = max(t.number for t in trials_of(url))
        hung = wait_for(lambda: running_trial_of(url, runner.pid, after), what="a trial of the controller")
        wait_for(lambda: hung.number in started(tmp_path), what="its program")
        complete = {t.number: t for t in trials_of(url) if t.state == TrialState.COMPLETE}
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        for p in (runner, worker):
            if p is not None:
                p.kill()
                p.communicate()
    assert len(complete) >= 2
    programs = started(tmp_path)
    # Trial programs are stopped when their runner dies.
    for number in (victim.number, hung.number):
        wait_dead(programs[number], f"trial {number}'s program")
    hang.write_text("")
    time.sleep(GRACE + 0.3)
    dispose_engines()
    resumed = cli("run", str(sweep), "--storage", url, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming study toy" in resumed.stderr
    trials = trials_of(url)
    assert_settled(trials, complete)
    stale = {t.number for t in trials if t.fail_kind == FailKind.STALE}
    assert {victim.number, hung.number} <= stale
    assert all(t.fail_kind == FailKind.STALE for t in trials if t.state == TrialState.FAILED)
    # Stale trials do not use up the budget: the sweep still gets its 12 results.
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 12


# ---------------------------------------------------------------------------
# Trials that misbehave
# ---------------------------------------------------------------------------
def test_trial_hanging_past_its_timeout_is_killed_with_its_helpers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    sweep = write_sweep(tmp_path, trials=3, extra="trial_timeout: 1.5\n")
    (tmp_path / "hang").write_text("1")
    start = time.monotonic()
    done = cli("run", str(sweep), "--storage", url, "--no-progress", cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    trials = trials_of(url)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE]
    assert trials[1].fail_kind == FailKind.TIMEOUT and "timed out after 1.5 s" in (trials[1].fail_reason or "")
    assert 1.5 <= (trials[1].cost or 0) < 10
    assert elapsed < 60
    wait_dead(int((tmp_path / "helpers").read_text().split()[0]), "the hung trial's helper")


def test_trial_flooding_its_output_keeps_memory_bounded_and_the_tail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    write_sweep(tmp_path, trials=2)
    # Trial 0 prints 400 MB on stdout before its result; trial 1 prints 200 MB on stderr and fails.
    (tmp_path / "flood").write_text("400 stdout")
    code = (
        "import os, resource, subprocess, sys\n"
        "env = dict(os.environ)\n"
        "subprocess.run([sys.executable, '-m', 'carbs.cli', 'run', 'sweep.yaml', '--storage', sys.argv[1],"
        " '--no-progress', '--trials', '1'], check=True, capture_output=True)\n"
        "open('flood', 'w').write('200 stderr')\n"
        "subprocess.run([sys.executable, '-m', 'carbs.cli', 'run', 'sweep.yaml', '--storage', sys.argv[1],"
        " '--no-progress'], capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024
    assert peak_mb < 300, f"a runner reading 400 MB of output peaked at {peak_mb:.0f} MB"
    trials = trials_of(url)
    assert trials[0].state == TrialState.COMPLETE and trials[0].output is not None
    assert trials[1].state == TrialState.FAILED and trials[1].fail_kind == FailKind.ERROR
    tail = trials[1].stderr_tail or ""
    assert tail.splitlines()[-1] == "last words: out of patience"
    assert len(tail) < 200_000


HOSTILE_VALUE = "$(touch a); touch b `touch c` | touch d && touch e > f"


def test_parameter_values_never_reach_a_shell(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(
        "import json, sys\n"
        "open('argv', 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print(json.dumps({'loss': 1.0}))\n"
    )
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: quoting\n"
        "command: '{python} echo.py {mode} --tag={mode}'\n"
        "metric: loss\n"
        "parameters:\n"
        f"  mode: {{space: choice, choices: [{json.dumps(HOSTILE_VALUE)}, plain], center: {json.dumps(HOSTILE_VALUE)}}}\n"
        "budget: {trials: 3}\n"
    )
    done = cli("run", str(sweep), "--storage", f"sqlite:///{tmp_path}/runs.db", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    received = [json.loads(line) for line in (tmp_path / "argv").read_text().splitlines()]
    assert [HOSTILE_VALUE, f"--tag={HOSTILE_VALUE}"] in received
    assert all(args in ([v, f"--tag={v}"] for v in (HOSTILE_VALUE, "plain")) for args in received)
    assert not [name for name in "abcdef" if (tmp_path / name).exists()]


# ---------------------------------------------------------------------------
# Storage faults
# ---------------------------------------------------------------------------
def test_read_only_sqlite_file_is_a_clear_error_and_stays_intact(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    study = create_study("ro", f"sqlite:///{path}", params=PARAMS)
    study.optimize(lambda p: objective(p), n_trials=3)
    before = study.trials()
    dispose_engines()
    # Opened read-only (file permissions do not bind root, so the URL says so).
    ro_url = f"sqlite:///file:{path}?mode=ro&uri=true"
    ro = load_study("ro", ro_url)
    assert ro.trials() == before
    with pytest.raises(StorageError, match="readonly|read-only|read only"):
        ro.ask()
    dispose_engines()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    again = load_study("ro", f"sqlite:///{path}")
    assert again.trials() == before
    trial = again.ask()
    again.tell(trial, *objective(trial.params))
    assert len(again.trials()) == 4


FULL_DISK = r"""
import json, resource, signal, sys
from carbs.study import load_study
from benchmarks.reliability.load import objective
study = load_study("full", sys.argv[1])
# No file of this process may grow past 200 kB: the disk is "full".
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
told = []
try:
    while True:
        trial = study.ask(heartbeat_grace=0.5)
        study.tell(trial, *objective(trial.params))
        told.append(trial.number)
except Exception as e:
    print(json.dumps({"told": told, "error": f"{type(e).__name__}: {e}"}))
"""


def test_full_disk_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    study = create_study("full", url, params=PARAMS, settings={"num_random_samples": 10**6})
    dispose_engines()
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, url], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["error"].startswith("StorageError: storage sqlite:"), report["error"]
    assert len(report["told"]) >= 3
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    complete = {t.number: t for t in study.trials() if t.state == TrialState.COMPLETE}
    assert set(report["told"]) <= set(complete)
    # With space again, the study carries on; a trial cut off while RUNNING is reaped as stale.
    time.sleep(0.6)
    trial = study.ask()
    study.tell(trial, *objective(trial.params))
    trials = study.trials()
    assert_settled(trials, complete)
    assert trials[-1].state == TrialState.COMPLETE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def own_postgres() -> Iterator[tuple[str, Callable[[], None]]]:
    """A throwaway PostgreSQL server of this test's own, and a function that restarts it."""
    if not any(Path(d, "initdb").exists() for d in Path("/usr/lib/postgresql").glob("*/bin")):
        if os.environ.get("CARBS_REQUIRE_POSTGRES") == "1":
            pytest.fail("CARBS_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries are installed")
        pytest.skip("no PostgreSQL server binaries")
    # Not under pytest's private temporary directory: the server runs as another user.
    directory = Path(tempfile.mkdtemp(prefix="carbs-pg-"))
    directory.chmod(0o755)
    script = str(REPO / "scripts" / "postgres.sh")
    port = _free_port()

    def start() -> str:
        out = subprocess.run([script, "start", str(directory), str(port)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    def stop() -> None:
        subprocess.run([script, "stop", str(directory)], capture_output=True, text=True, timeout=60)

    url = start()

    def restart() -> None:
        stop()
        time.sleep(1.0)
        start()

    try:
        yield url, restart
    finally:
        stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_restarted_mid_sweep(own_postgres: tuple[str, Callable[[], None]], tmp_path: Path) -> None:
    url, restart = own_postgres
    sweep = write_sweep(tmp_path, trials=14, workers=2)
    (tmp_path / "slow").write_text("0.4")
    runner = cli("run", str(sweep), "--storage", url, "--no-progress", cwd=tmp_path, background=True)
    try:
        wait_for(lambda: sum(t.state == TrialState.COMPLETE for t in trials_of(url)) >= 3, what="3 trials")
        complete = {t.number: t for t in trials_of(url) if t.state == TrialState.COMPLETE}
        dispose_engines()
        restart()
        _, err = runner.communicate(timeout=120)
    finally:
        runner.kill()
    # Storage calls reconnect with backoff, so the runner rides out the restart.
    assert runner.returncode == 0, err
    dispose_engines()
    time.sleep(GRACE + 0.3)
    resumed = cli("run", str(sweep), "--storage", url, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    trials = trials_of(url)
    assert_settled(trials, complete)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 14
    assert all(t.fail_kind == FailKind.STALE for t in trials if t.state == TrialState.FAILED)
