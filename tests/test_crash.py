"""Crash safety with real processes: ``kill -9``, Ctrl-C, and several workers on one study.

The sweeps use a 0.2 s heartbeat and a 1.5 s grace period so that dead
workers are noticed quickly.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from _storage_urls import trials_of, wait_for, write_sweep

from carbs.storage import FailKind, TrialRecord, TrialState, dispose_engines

GRACE = 1.5



def start_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start the ``carbs`` command in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "carbs.cli", "--quiet", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def pid_alive(pid: int) -> bool:
    """Whether a process (not a zombie) with this pid exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def last_pid(directory: Path) -> int:
    """The pid of the latest trial program started in ``directory``."""
    return int((directory / "pids").read_text().split()[-1])


def running_started(directory: Path, url: str, number: int) -> bool:
    """Trial ``number`` is RUNNING and its program has started."""
    trials = trials_of(url)
    pids = (directory / "pids").read_text().split() if (directory / "pids").exists() else []
    return len(trials) > number and trials[number].state == TrialState.RUNNING and len(pids) > number


def test_kill_9_of_the_runner_then_resume(url: str, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, trials=5)
    (tmp_path / "hang_trial").write_text("2")
    runner = start_cli("run", sweep, "--storage", url, cwd=tmp_path)
    try:
        wait_for(lambda: running_started(tmp_path, url, 2), what="trial 2 to start")
        child = last_pid(tmp_path)
        complete_before = {t.number: t for t in trials_of(url) if t.state == TrialState.COMPLETE}
        assert sorted(complete_before) == [0, 1]
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        runner.kill()
        runner.communicate()
    # The orphaned trial program is told to stop when its runner dies.
    wait_for(lambda: not pid_alive(child), timeout=10, what="the orphaned trial to stop")
    assert trials_of(url)[2].state == TrialState.RUNNING
    time.sleep(GRACE + 0.3)

    dispose_engines()
    resumed = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "run", sweep, "--storage", url, "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming study toy (3 trials so far)" in resumed.stderr
    trials = trials_of(url)
    stale = trials[2]
    assert stale.state == TrialState.FAILED and stale.fail_kind == FailKind.STALE
    assert "sent no heartbeat" in (stale.fail_reason or "")
    complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert complete == [0, 1, 3, 4, 5]  # the stale trial does not use up the budget
    for number, before in complete_before.items():
        assert trials[number] == before


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    sweep = write_sweep(tmp_path, trials=8, workers=2)
    (tmp_path / "slow").write_text("0.3")
    rng = random.Random(0)
    seen_complete: dict[int, TrialRecord] = {}
    for _ in range(3):
        runner = start_cli("run", sweep, "--storage", url, cwd=tmp_path)
        try:
            time.sleep(rng.uniform(1.2, 2.5))
            runner.send_signal(signal.SIGKILL)
            runner.wait(timeout=10)
        finally:
            runner.kill()
            runner.communicate()
        for t in trials_of(url):
            if t.state == TrialState.COMPLETE:
                seen_complete.setdefault(t.number, t)
    time.sleep(GRACE + 0.3)
    resumed = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "run", sweep, "--storage", url, "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    trials = trials_of(url)
    assert [t.number for t in trials] == list(range(len(trials)))
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(1 for t in trials if t.state == TrialState.COMPLETE) == 8
    assert all(t.fail_kind == FailKind.STALE for t in trials if t.state == TrialState.FAILED)
    for number, before in seen_complete.items():
        assert trials[number] == before


def test_ctrl_c_of_a_worker_marks_its_trial_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    sweep = write_sweep(tmp_path, trials=1)
    first = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "run", sweep, "--storage", url, "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert first.returncode == 0, first.stderr
    (tmp_path / "hang_trial").write_text("1")
    worker = start_cli(
        "worker", "--storage", url, "--study", "toy", "--trials", "3", "--no-progress",
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: running_started(tmp_path, url, 1), what="trial 1 to start")
        child = last_pid(tmp_path)
        worker.send_signal(signal.SIGINT)
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 130, err
    trial = trials_of(url)[1]
    assert trial.state == TrialState.FAILED and trial.fail_kind == FailKind.INTERRUPTED
    assert trial.fail_reason == "interrupted" and trial.cost is not None
    assert not pid_alive(child)
    assert [t.state for t in trials_of(url)] == [TrialState.COMPLETE, TrialState.FAILED]


def test_two_workers_share_a_study(url: str, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, trials=10, workers=2)
    # Slow enough that the runner is still busy when the second process joins.
    (tmp_path / "slow").write_text("0.6")
    runner = start_cli("run", sweep, "--storage", url, cwd=tmp_path)
    try:
        wait_for(lambda: trials_of(url), what="the study to be created")
        worker = subprocess.run(
            [sys.executable, "-m", "carbs.cli", "worker", "--storage", url, "--study", "toy",
             "--workers", "2", "--no-progress"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        _, err = runner.communicate(timeout=120)
    finally:
        runner.kill()
    assert runner.returncode == 0, err
    assert worker.returncode == 0, worker.stderr
    trials = trials_of(url)
    assert [t.number for t in trials] == list(range(10))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    pids = {t.worker.split(":")[1] for t in trials if t.worker}
    assert len(pids) == 2, "both processes ran trials"
    for a in trials:
        for b in trials:
            overlap = a.number < b.number and b.started_at < (a.finished_at or b.started_at)
            assert not (overlap and a.params == b.params), (a.number, b.number)
    # Every trial program that was started was recorded once.
    assert len((tmp_path / "pids").read_text().split()) == 10
    assert os.path.exists(tmp_path / "trial.py")
