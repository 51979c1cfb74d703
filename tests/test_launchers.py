"""Launcher settings, GPUs per trial, retries with lineage, and the schema upgrade.

The Ray and Slurm clusters are exercised in test_launcher_ray.py and
test_launcher_slurm.py; everything here runs on the local launcher.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _storage_urls import BACKENDS, as_written_by_schema, storage_url, wait_for
from sqlalchemy import inspect, text

from carbs import LinearSpace, Param
from carbs.launchers import LauncherError
from carbs.launchers.slurm import check_slurm, job_script, slurm_time
from carbs.runner.worker import RunSpec
from carbs.storage import SCHEMA_VERSION, FailKind, Storage, TrialState
from carbs.study import create_study, load_study
from carbs.study.asking import retry_candidate
from carbs.sweep_config import (
    Budget,
    LauncherConfig,
    RetryPolicy,
    SweepConfigError,
    parse_launcher,
    parse_sweep_config,
)

BASE = {
    "name": "s",
    "command": "python t.py {x}",
    "parameters": {"x": {"space": "linear", "min": 0, "max": 1}},
    "budget": {"trials": 2},
}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"launcher": {"type": "kubernetes"}}, r"launcher.type must be one of .*got 'kubernetes'"),
        ({"launcher": {"type": "ray", "partition": "gpu"}}, r"unknown key 'launcher.partition'"),
        ({"launcher": {"type": "slurm", "time": "soon"}}, r"launcher.time must be seconds"),
        ({"launcher": {"type": "slurm", "cpus_per_task": 0}}, r"launcher.cpus_per_task must be >= 1"),
        ({"launcher": {"type": "ray", "resources": {"num_gpus": -1}}}, r"resources.num_gpus must be >= 0"),
        ({"launcher": "ray", "gpus_per_trial": 1, "gpus": [0, 1]}, r"only the local launcher"),
        ({"gpus": [0, 1]}, r"gpus is set but gpus_per_trial is 0"),
        ({"gpus": [0, 0], "gpus_per_trial": 1}, r"lists a GPU twice"),
        ({"gpus": [0], "gpus_per_trial": 2}, r"more than the GPUs listed"),
        ({"cost": "gpu_seconds"}, r"gpu_seconds needs gpus_per_trial >= 1"),
        ({"retries": 1, "retry_on": ["oom"]}, r"unknown failure kind 'oom'"),
        ({"retry_on": ["error"]}, r"retries is 0"),
        ({"retries": -1}, r"retries must be >= 0"),
        (
            {"launcher": {"type": "slurm", "gpus_per_node": 2}, "gpus_per_trial": 1},
            r"gpus_per_node \(2\) differs from gpus_per_trial \(1\)",
        ),
    ],
)
def test_launcher_settings_are_checked_at_load_time(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepConfigError, match=message):
        parse_sweep_config({**BASE, **extra}, base_dir=os.getcwd())


def test_launcher_settings_parse_into_what_the_launchers_use(tmp_path: Path) -> None:
    config = parse_sweep_config(
        {
            **BASE,
            "launcher": {"type": "slurm", "partition": "gpu", "time": "2h", "sbatch": "--qos=high"},
            "gpus_per_trial": 1,
            "retries": 2,
            "retry_on": "timeout",
            "trials_dir": "ckpt",
        },
        base_dir=str(tmp_path),
    )
    assert config.launcher == LauncherConfig(
        "slurm", {"partition": "gpu", "time": 7200.0, "sbatch": ["--qos=high"]}
    )
    assert config.retries == RetryPolicy(2, ("interrupted", "stale", "lost", "timeout"))
    assert config.trials_dir == str(tmp_path / "ckpt")
    stored = config.run_config()
    assert stored["launcher"]["type"] == "slurm" and stored["retries"]["max_retries"] == 2
    assert RetryPolicy.from_dict(stored["retries"]) == config.retries
    local = parse_sweep_config(BASE, base_dir=str(tmp_path))
    assert local.launcher.type == "local" and local.retries.max_retries == 0
    assert parse_launcher("launcher", "ray") == LauncherConfig("ray", {})


def test_slurm_job_script_carries_the_options_but_not_the_storage_url() -> None:
    launcher = LauncherConfig(
        "slurm",
        {
            "partition": "gpu",
            "account": "ml",
            "time": 93600.0,
            "cpus_per_task": 8,
            "mem": "32G",
            "sbatch": ["--qos=high", "#SBATCH --exclusive"],
            "setup": ["module load cuda"],
            "trials_per_job": 3,
            "python": "/opt/venv/bin/python",
        },
    )
    script = job_script(launcher, "my study", "/logs", gpus_per_trial=2).splitlines()
    assert script[0] == "#!/bin/bash"
    for line in (
        "#SBATCH --job-name=carbs-my study",
        "#SBATCH --output=/logs/slurm-%j.out",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=ml",
        "#SBATCH --mem=32G",
        "#SBATCH --time=1-02:00:00",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --qos=high",
        "#SBATCH --exclusive",
        "module load cuda",
    ):
        assert line in script
    assert script[-1] == (
        "exec /opt/venv/bin/python -m carbs.launchers.slurm_job --study 'my study' --trials 3"
    )
    assert not any("sqlite" in line or "postgres" in line for line in script)
    assert slurm_time(59.2) == "0-00:01:00"


def test_slurm_needs_its_commands_and_warns_about_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = RunSpec(command=["true"], metric="loss")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LauncherError, match=r"needs the Slurm commands \['sbatch', 'squeue'"):
        check_slurm(LauncherConfig("slurm"), spec, "sqlite:///x.db")
    for name in ("sbatch", "squeue", "scontrol", "scancel"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    warnings = check_slurm(LauncherConfig("slurm"), spec, f"sqlite:///{tmp_path}/s.db")
    assert len(warnings) == 1 and "every node sees that path" in warnings[0]
    assert check_slurm(LauncherConfig("slurm"), spec, "postgresql+psycopg://db/x") == []
    with pytest.raises(LauncherError, match="in-memory SQLite"):
        check_slurm(LauncherConfig("slurm"), spec, "sqlite://")


# -- GPUs per trial -------------------------------------------------------------------
GPU_TRIAL = r'''
import json, os, sys, time
start = time.time()
time.sleep(0.4)
with open(os.path.join(sys.argv[2], os.environ["CARBS_TRIAL_NUMBER"]), "w") as f:
    json.dump({"gpus": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}, f)
print(json.dumps({"loss": float(sys.argv[1]) ** 2}))
'''


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbs.cli", "--quiet", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _gpu_sweep(tmp_path: Path, workers: int, per_trial: int, gpus: str = "[0, 1, 2, 3]") -> Path:
    (tmp_path / "trial.py").write_text(GPU_TRIAL)
    (tmp_path / "seen").mkdir(exist_ok=True)
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: gpus\n"
        f"command: '{{python}} trial.py {{x}} {tmp_path / 'seen'}'\n"
        "metric: loss\n"
        "cost: gpu_seconds\n"
        "parameters:\n"
        "  x: {space: linear, min: -1, max: 1}\n"
        "budget: {trials: 8}\n"
        f"workers: {workers}\n"
        f"gpus_per_trial: {per_trial}\n"
        f"gpus: {gpus}\n"
    )
    return path


@pytest.mark.parametrize(("workers", "per_trial"), [(4, 1), (2, 2)])
def test_each_trial_gets_its_own_gpus_and_pays_gpu_seconds(
    tmp_path: Path, workers: int, per_trial: int
) -> None:
    sweep = _gpu_sweep(tmp_path, workers, per_trial)
    done = _cli("run", str(sweep), "--storage", str(tmp_path / "g.db"), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = [json.loads(p.read_text()) for p in (tmp_path / "seen").iterdir()]
    assert len(seen) == 8
    for a in seen:
        ids = a["gpus"].split(",")
        assert len(ids) == per_trial and set(ids) <= {"0", "1", "2", "3"}
        for b in seen:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert not set(ids) & set(b["gpus"].split(",")), (a, b)  # never shared
    overlapping = sum(
        1 for a in seen for b in seen if a is not b and a["start"] < b["end"] and b["start"] < a["end"]
    )
    assert overlapping > 0  # trials did run at the same time
    trials = load_study("gpus", f"sqlite:///{tmp_path / 'g.db'}").trials()
    for trial in trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.cost is not None and trial.cost >= 0.4 * per_trial  # wall-clock x GPUs
        assert trial.cost < (trial.duration or 0) * per_trial + 1e-6


def test_too_few_gpus_is_a_clear_error(tmp_path: Path) -> None:
    sweep = _gpu_sweep(tmp_path, workers=4, per_trial=1, gpus="[0, 1]")
    done = _cli("run", str(sweep), "--storage", str(tmp_path / "g.db"), cwd=tmp_path)
    assert done.returncode == 2
    assert "workers: 4 x gpus_per_trial: 1 need 4 GPUs, but 2 are available (0,1)" in done.stderr
    sweep.write_text(sweep.read_text().replace("gpus: [0, 1]\n", ""))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PATH": os.path.dirname(sys.executable)}
    done = _cli("run", str(sweep), "--storage", str(tmp_path / "g.db"), cwd=tmp_path, env=env)
    assert done.returncode == 2 and "no GPU was found" in done.stderr
    done = _cli(
        "run", str(sweep), "--storage", str(tmp_path / "g.db"), "--gpus", "3,5,7,9", "--no-progress",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    used = {json.loads(p.read_text())["gpus"] for p in (tmp_path / "seen").iterdir()}
    assert used <= {"3", "5", "7", "9"} and len(used) > 1


# -- retries -------------------------------------------------------------------------------
RETRY_TRIAL = r'''
import json, os, sys, time
x, mode = float(sys.argv[1]), sys.argv[2]
directory = os.environ["CARBS_TRIAL_DIR"]
checkpoint = os.path.join(directory, "checkpoint")
resumed = os.path.exists(checkpoint)
with open(checkpoint, "a") as f:
    f.write(os.environ["CARBS_ATTEMPT"] + "\n")
if mode == "hang":
    try:
        os.close(os.open("hung", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        pass
    else:
        time.sleep(120)  # the runner is killed meanwhile
if mode == "flaky" and os.environ["CARBS_ATTEMPT"] == "0":
    sys.exit(3)
print(json.dumps({"loss": x * x, "resumed": int(resumed), "attempt": int(os.environ["CARBS_ATTEMPT"])}))
'''


def _retry_sweep(tmp_path: Path, mode: str, extra: str) -> Path:
    (tmp_path / "trial.py").write_text(RETRY_TRIAL)
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: retry\n"
        f"command: '{{python}} trial.py {{x}} {mode}'\n"
        "metric: loss\n"
        "parameters:\n"
        "  x: {space: linear, min: -1, max: 1}\n"
        "budget: {trials: 3}\n"
        "heartbeat: {interval: 0.2, grace: 1.5}\n" + extra
    )
    return path


def test_killed_runner_resumes_and_reruns_the_lost_trial_in_its_directory(tmp_path: Path) -> None:
    sweep = _retry_sweep(tmp_path, "hang", "retries: 1\n")
    db = tmp_path / "r.db"
    runner = subprocess.Popen(
        [sys.executable, "-m", "carbs.cli", "--quiet", "run", str(sweep), "--storage", str(db), "--no-progress"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: (tmp_path / "hung").exists(), 60, "the first trial to start")
    runner.send_signal(signal.SIGKILL)  # the machine is lost: no clean-up at all
    runner.wait(30)
    # Resume once the lost trial's heartbeat grace (1.5 s) has run out: before
    # that it may still belong to a live worker elsewhere, and a resumed run that
    # reaches its budget first rightly leaves it alone.
    time.sleep(2.0)
    done = _cli("run", str(sweep), "--storage", str(db), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = load_study("retry", f"sqlite:///{db}").trials()
    first, retry = trials[0], trials[1]
    assert first.state == TrialState.FAILED and first.fail_kind == FailKind.STALE
    assert retry.retry_of == 0 and retry.suggestion_kind == "retry" and retry.params == first.params
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["resumed"] == 1 and retry.user_attrs["attempt"] == 1
    assert (tmp_path / "carbs-trials" / "retry" / "trial-00000" / "checkpoint").read_text() == "0\n1\n"
    assert sum(1 for t in trials if t.state == TrialState.COMPLETE) == 3
    # Trials that wrote nothing into their directory leave none behind.
    assert sorted(os.listdir(tmp_path / "carbs-trials" / "retry")) == ["trial-00000"] + [
        f"trial-{t.number:05d}" for t in trials[2:]
    ]


@pytest.mark.parametrize("retry_on", [None, "error"])
def test_a_trial_failing_by_its_own_fault_is_retried_only_when_asked(
    tmp_path: Path, retry_on: str | None
) -> None:
    extra = "retries: 2\n" + (f"retry_on: [{retry_on}]\n" if retry_on else "")
    sweep = _retry_sweep(tmp_path, "flaky", extra)
    db = tmp_path / "r.db"
    done = _cli("run", str(sweep), "--storage", str(db), "--no-progress", cwd=tmp_path)
    trials = load_study("retry", f"sqlite:///{db}").trials()
    failed = [t for t in trials if t.state == TrialState.FAILED]
    assert failed and all(t.fail_kind == FailKind.ERROR for t in failed)
    retries = [t for t in trials if t.retry_of is not None]
    if retry_on is None:
        assert done.returncode != 0 and not retries  # every first attempt fails, none re-run
    else:
        assert done.returncode == 0, done.stderr
        # Failed trials count in the budget, so the last one may find it spent.
        assert retries and {t.retry_of for t in retries} <= {t.number for t in failed}
        assert trials[1].retry_of == 0
        assert all(t.state == TrialState.COMPLETE and t.user_attrs["resumed"] == 1 for t in retries)


def test_retries_stop_after_max_retries_along_the_lineage(tmp_path: Path) -> None:
    study = create_study(
        "lineage", f"sqlite:///{tmp_path / 'l.db'}", [Param("x", LinearSpace(min=0, max=1, scale=0.25), 0.5)]
    )
    policy = RetryPolicy(2)
    first = study.ask()
    study.mark_lost(first, "node died")
    second = study.ask(retries=policy)
    assert (second.retry_of, second.lineage, second.attempt) == (first.number, first.number, 1)
    study.mark_lost(second, "node died")
    third = study.ask(retries=policy)
    assert (third.retry_of, third.lineage, third.attempt) == (second.number, first.number, 2)
    study.tell(third, failed=True, reason="pre-empted", fail_kind=FailKind.INTERRUPTED)
    assert retry_candidate(study.trials(), policy) is None  # two retries used up
    fresh = study.ask(retries=policy)
    assert fresh.retry_of is None and fresh.lineage == fresh.number
    assert study.mark_lost(first, "again") is None  # only RUNNING trials can be lost


# -- schema upgrade --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_version_1_database_is_upgraded_in_place(backend: str, tmp_path: Path) -> None:
    with storage_url(backend, tmp_path) as url:
        study = create_study("old", url, [Param("x", LinearSpace(min=0, max=1, scale=0.25), 0.5)])
        study.tell(study.ask(), 0.5, 1.0)
        as_written_by_schema(url, 1)  # what carbs wrote before schema versions 2, 3 and 4
        storage = Storage(url)
        with storage.engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("carbs_trials")}
            tables = set(inspect(conn).get_table_names())
            version = conn.execute(text("SELECT version FROM carbs_schema_version")).scalar()
        assert {"retry_of", "job"} <= columns and version == SCHEMA_VERSION == 4
        assert {"carbs_intermediate_values", "carbs_suggestion_pool"} <= tables
        again = load_study("old", storage)
        old = again.trials()[0]
        assert old.output == 0.5 and old.retry_of is None and old.job is None
        trial = again.ask(job="slurm:7")
        assert again.trial(trial.number).job == "slurm:7"
        Storage(url)  # opening an upgraded database again changes nothing


def test_a_lost_last_trial_is_rerun_although_the_budget_looked_spent(tmp_path: Path) -> None:
    from carbs.runner.results import TrialOutcome
    from carbs.runner.worker import SweepRunner

    study = create_study(
        "last", f"sqlite:///{tmp_path / 'l.db'}", [Param("x", LinearSpace(min=0, max=1, scale=0.25), 0.5)]
    )
    other_done = threading.Event()

    class LosesTrialZero(SweepRunner):
        def _execute(
            self, trial: Any, scratch: str, watcher: Any, extras: Any
        ) -> tuple[TrialOutcome, str]:
            if trial.number == 0:  # lost only after the other slot found the budget spent
                assert other_done.wait(30)
                time.sleep(1.0)
                return TrialOutcome(None, 1.0, FailKind.LOST, "node died"), ""
            other_done.set()
            return TrialOutcome(0.25, 1.0), ""

    spec = RunSpec(
        command=["true"], metric="loss", budget=Budget(max_trials=2), retries=RetryPolicy(1),
        trials_dir=str(tmp_path / "trials"),
    )  # fmt: skip
    summary = LosesTrialZero(study, spec, 2).run()
    trials = study.trials()
    assert [(t.number, t.state, t.retry_of) for t in trials] == [
        (0, TrialState.FAILED, None),
        (1, TrialState.COMPLETE, None),
        (2, TrialState.COMPLETE, 0),
    ]
    assert summary.completed == 2 and summary.failed == 1
