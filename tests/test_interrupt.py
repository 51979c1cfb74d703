"""Ctrl-C twice in quick succession still marks the running trials FAILED(interrupted) (issue 13, item 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _storage_urls import wait_for

from carbs.cli.common import EXIT_INTERRUPTED
from carbs.storage import FailKind, TrialState
from carbs.study import load_study

# A trial program that ignores SIGTERM, so only a SIGKILL ends it.
_STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open("pids", "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc")
@pytest.mark.parametrize("gap", [0.05, 0.0])
def test_second_sigint_kills_programs_and_records_interrupted(tmp_path: Path, gap: float) -> None:
    (tmp_path / "prog.py").write_text(_STUBBORN)
    (tmp_path / "sweep.yaml").write_text(
        "name: stubborn\ncommand: '{python} prog.py {x}'\nmetric: loss\n"
        "parameters:\n  x: {space: linear, min: 0, max: 1}\nbudget: {trials: 4}\nworkers: 2\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "carbs.cli", "run", "sweep.yaml", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    pids_file = tmp_path / "pids"
    try:
        wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2, 60, "two trials")
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
        pids = [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []
        survivors = [pid for pid in pids if _alive(pid)]
        for pid in survivors:  # never leave them behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert took < 5.0 + 10.0  # the kill grace is never waited out in full, plus slack for a busy machine
    assert survivors == [], "trial programs survived"
    trials = load_study("stubborn", f"sqlite:///{tmp_path}/carbs.db").trials()
    assert len(trials) == 2
    assert [(t.state, t.fail_kind) for t in trials] == [(TrialState.FAILED, FailKind.INTERRUPTED)] * 2
