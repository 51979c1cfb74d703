"""The Slurm launcher on a real single-node Slurm cluster, in a network namespace of its own.

``scripts/slurm.sh`` starts munged, slurmctld and slurmd on loopback (Debian's
slurm-wlm 22.05); ``carbs run`` submits the sweep's trials as ``sbatch`` jobs.
One job is cancelled with ``scancel`` while it runs a trial: with
``retries: 1`` the point runs again in another job, in the same
``$CARBS_TRIAL_DIR``, and the sweep completes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _netns import private_network, require_private_network
from _storage_urls import carbs_run, marker_text, wait_for, write_launcher_sweep

from carbs.storage import FailKind, TrialState
from carbs.study import load_study

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm.sh"

TRIAL = r'''
import json, os, sys, time
x, markers = float(sys.argv[1]), sys.argv[2]
checkpoint = os.path.join(os.environ["CARBS_TRIAL_DIR"], "checkpoint")
resumed = os.path.exists(checkpoint)
try:  # the first trial to start waits to be cancelled
    fd = os.open(os.path.join(markers, "victim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
except FileExistsError:
    pass
else:
    with open(checkpoint, "w") as f:
        f.write("half way")
    os.write(fd, os.environ["SLURM_JOB_ID"].encode())
    os.close(fd)
    time.sleep(120)
print(json.dumps({"loss": x * x, "resumed": int(resumed), "job": os.environ["SLURM_JOB_ID"]}))
'''


def _slurm_installed() -> bool:
    return all(shutil.which(c) for c in ("slurmctld", "slurmd", "munged", "sbatch"))


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[dict[str, str]]:
    require_private_network()
    if not _slurm_installed():
        if os.environ.get("CARBS_REQUIRE_CLUSTERS") == "1":
            pytest.fail("Slurm tests required but Slurm is not installed (scripts/slurm.sh install)")
        pytest.skip("Slurm is not installed: scripts/slurm.sh install")
    directory = tempfile.mkdtemp(prefix="carbs-slurm-", dir="/tmp")
    with private_network(dead_end_address=True):
        try:
            out = subprocess.run(
                [str(SCRIPT), "start", directory], check=True, capture_output=True, text=True, timeout=120
            ).stdout
            conf = out.strip().splitlines()[-1].split("=", 1)[1]
            yield {**os.environ, "SLURM_CONF": conf}
        finally:
            subprocess.run([str(SCRIPT), "stop", directory], capture_output=True, timeout=120)
            shutil.rmtree(directory, ignore_errors=True)


def test_sweep_runs_as_slurm_jobs_and_a_cancelled_job_is_rerun(
    slurm_cluster: dict[str, Any], tmp_path: Path
) -> None:
    env = slurm_cluster
    db = tmp_path / "slurm.db"
    launcher = "{type: slurm, partition: debug, cpus_per_task: 1, time: 10m, trials_per_job: 2, poll_interval: 1}"
    markers = write_launcher_sweep(tmp_path, TRIAL, name="slurm-sweep", trials=8, launcher=launcher)
    with carbs_run(tmp_path, db, env) as driver:
        job = wait_for(marker_text(driver, markers / "victim"), 180, "a trial running in a Slurm job")
        status = subprocess.run(
            [sys.executable, "-m", "carbs.cli", "status", "--storage", str(db)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert f"Slurm job {job}: RUNNING" in status.stdout, status.stdout + status.stderr
        assert f"(slurm:{job})" in status.stdout
        subprocess.run(["scancel", job], env=env, check=True, timeout=60)
        out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, out
    trials = load_study("slurm-sweep", f"sqlite:///{db}").trials()
    summary = [(t.number, t.state.value, t.fail_kind, t.job, t.retry_of) for t in trials]
    cancelled = [t for t in trials if t.job == f"slurm:{job}" and t.state == TrialState.FAILED]
    assert len(cancelled) == 1, summary
    assert cancelled[0].fail_kind in (FailKind.INTERRUPTED, FailKind.LOST), summary
    retry = [t for t in trials if t.retry_of == cancelled[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE, summary
    assert retry[0].params == cancelled[0].params
    assert retry[0].user_attrs["resumed"] == 1  # same CARBS_TRIAL_DIR in another job
    assert retry[0].job != cancelled[0].job
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8 and len(trials) == 9, summary
    # Each trial ran inside the Slurm job it is recorded with.
    assert all(t.job == f"slurm:{t.user_attrs['job']}" for t in complete)
    assert len({t.job for t in trials}) >= 4  # two trials per job at most
    assert f"submitted Slurm job {job}" in out
    # The jobs' logs are in the launcher's log directory, not slurm-%j.out in the
    # directory the jobs run in (sbatch's default).
    assert not list(tmp_path.glob("slurm-*.out"))
    [log] = tmp_path.rglob(f"slurm-{job}.out")
    assert "CANCELLED" in log.read_text(), log.read_text()
