"""The Slurm launcher: trials run inside Slurm jobs submitted with ``sbatch``.

``carbs run`` becomes a driver that keeps up to ``workers`` jobs queued or
running. Each job is a worker (:mod:`carbs.launchers.slurm_job`): it asks the
study for a trial, runs it, records it in the database itself, and stops
after ``trials_per_job`` trials. The driver watches the jobs with ``squeue``
and ``scontrol``; when a job ends while one of its trials is still RUNNING
(cancelled, pre-empted, timed out, node failure), that trial is marked
FAILED(lost) and the sweep's ``retries`` decide whether its point runs again.
A job that Slurm signals (``scancel``, pre-emption, time limit) marks its
running trial FAILED(interrupted) itself before it exits.

The storage URL reaches the jobs through the ``CARBS_STORAGE`` environment
variable (``sbatch`` exports the submitting environment), never through the
job script, so a password in it is not written to disk.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from carbs.launchers.base import LauncherError
from carbs.runner.worker import RunSpec, RunSummary
from carbs.storage import TrialState
from carbs.storage.engine import STORAGE_ENV_VAR, is_sqlite
from carbs.study import budget_exhausted

if TYPE_CHECKING:  # pragma: no cover
    from carbs.study import Study
    from carbs.sweep_config import LauncherConfig

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 10.0
# Jobs in a row that end without running a trial before the driver gives up.
_MAX_BARREN_JOBS = 3
_ACTIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED")


def job_name(study: str) -> str:
    """The Slurm job name of a study's jobs (how the driver finds them again)."""
    return f"carbs-{study}"


def check_slurm(launcher: LauncherConfig, spec: RunSpec, storage_url: str) -> list[str]:
    """The Slurm commands must exist; warn when the jobs may not reach an SQLite file."""
    missing = [c for c in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(c) is None]
    if missing:
        raise LauncherError(
            f"launcher type 'slurm' needs the Slurm commands {missing} on PATH; run carbs "
            "on a machine that can submit jobs (a login node)"
        )
    warnings = []
    if is_sqlite(storage_url):
        path = storage_url.split("///", 1)[-1] if "///" in storage_url else ""
        if path in ("", ":memory:"):
            raise LauncherError(
                "launcher type 'slurm' cannot use an in-memory SQLite database: the jobs "
                "write to the storage from the compute nodes; use PostgreSQL"
            )
        warnings.append(
            f"the Slurm jobs write their trials into the SQLite file {path} from the compute "
            "nodes: this works only if every node sees that path on a file system with working "
            "locks (a local disk on a one-node cluster; not /tmp of another node, and NFS "
            "locking is unreliable); for real clusters use PostgreSQL "
            "(storage: postgresql://user@host/db)"
        )
    return warnings


def slurm_time(seconds: float) -> str:
    """``D-HH:MM:SS`` as ``sbatch --time`` takes it (rounded up to whole seconds)."""
    total = int(-(-seconds // 1))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def job_script(launcher: LauncherConfig, study: str, log_dir: str, gpus_per_trial: int = 0) -> str:
    """The batch script of one job: ``#SBATCH`` lines, setup lines, then the worker."""
    opts = launcher.options
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name(study)}",
        f"#SBATCH --output={os.path.join(log_dir, 'slurm-%j.out')}",
        "#SBATCH --ntasks=1",
    ]
    for key, flag in (("partition", "partition"), ("account", "account"), ("mem", "mem")):
        if key in opts:
            lines.append(f"#SBATCH --{flag}={opts[key]}")
    if "time" in opts:
        lines.append(f"#SBATCH --time={slurm_time(opts['time'])}")
    if "cpus_per_task" in opts:
        lines.append(f"#SBATCH --cpus-per-task={opts['cpus_per_task']}")
    gpus = opts.get("gpus_per_node", gpus_per_trial)
    if gpus:
        lines.append(f"#SBATCH --gpus-per-node={gpus}")
    for extra in opts.get("sbatch", []):
        extra = extra.strip()
        lines.append(extra if extra.startswith("#SBATCH") else f"#SBATCH {extra}")
    lines.extend(opts.get("setup", []))
    python = opts.get("python", sys.executable)
    worker = [
        python,
        "-m",
        "carbs.launchers.slurm_job",
        "--study",
        study,
        "--trials",
        str(opts.get("trials_per_job", 1)),
    ]
    lines.append("exec " + " ".join(shlex.quote(w) for w in worker))
    return "\n".join(lines) + "\n"


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    if done.returncode != 0:
        raise LauncherError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def active_jobs(study: str) -> dict[str, str]:
    """Job id -> state of this user's jobs of the study that Slurm lists as queued or running."""
    out = _run(["squeue", "--me", "--noheader", f"--name={job_name(study)}", "--format=%i %T"])
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in _ACTIVE_STATES:
            jobs[parts[0]] = parts[1]
    return jobs


def final_state(job: str) -> str:
    """The state Slurm gives a job that left the queue (``UNKNOWN`` once it is forgotten)."""
    try:
        out = _run(["scontrol", "--oneliner", "show", "job", job])
    except (LauncherError, subprocess.TimeoutExpired):
        return "UNKNOWN"
    for field in out.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return "UNKNOWN"


class SlurmDriver:
    """Keeps up to ``workers`` Slurm jobs working on a study until its budget is spent."""

    def __init__(
        self,
        study: Study,
        spec: RunSpec,
        workers: int,
        launcher: LauncherConfig,
        *,
        on_trial_end: Callable[[Any, Any], None] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.study = study
        self.spec = spec
        self.workers = workers
        self.launcher = launcher
        self.poll_interval = float(launcher.options.get("poll_interval", DEFAULT_POLL_INTERVAL))
        self.summary = RunSummary()
        self._say = say or (lambda text: logger.info("%s", text))
        self._on_trial_end = on_trial_end
        self._stop = threading.Event()
        self._jobs: dict[str, str] = {}  # submitted or adopted, still active
        self._seen: set[int] = set()
        self._barren = 0
        base = spec.log_dir or os.path.join(spec.trials_dir or spec.workdir, ".slurm")
        self.log_dir = os.path.join(base, study.name) if not spec.log_dir else base

    def interrupt(self) -> None:
        """Stop submitting and cancel the study's jobs (their trials become interrupted)."""
        self.summary.interrupted = True
        self._stop.set()

    def run(self) -> RunSummary:
        """Submit and watch jobs until the budget is spent and every job has ended."""
        os.makedirs(self.log_dir, exist_ok=True)
        script = os.path.join(self.log_dir, "job.sbatch")
        with open(script, "w", encoding="utf-8") as f:
            f.write(
                job_script(self.launcher, self.study.name, self.log_dir, self.spec.gpus_per_trial)
            )
        self._jobs = active_jobs(self.study.name)
        if self._jobs:
            self._say(f"adopted running Slurm jobs {sorted(self._jobs, key=int)}")
        self._seen = {t.number for t in self.study.trials() if t.state != TrialState.RUNNING}
        deadline = None
        if self.spec.budget.max_time is not None:
            deadline = time.monotonic() + self.spec.budget.max_time
        try:
            while True:
                self._reconcile()
                self._report_finished()
                if self._stop.is_set():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.summary.stop_reason = f"time budget reached ({self.spec.budget.max_time:g} s)"
                    break
                reason = budget_exhausted(self.study.trials(), self.spec.budget)
                if reason is not None and not self._jobs:
                    self.summary.stop_reason = reason
                    break
                if reason is None:
                    self._submit_missing(script)
                if self._stop.wait(self.poll_interval):
                    break
        except KeyboardInterrupt:
            self.interrupt()
        if self.summary.interrupted:
            self.summary.stop_reason = "interrupted"
            self._cancel_all()
        return self.summary

    # -- jobs ------------------------------------------------------------------
    def _submit_missing(self, script: str) -> None:
        wanted = self.workers - len(self._jobs)
        budget = self.spec.budget
        if budget.max_trials is not None:
            trials = self.study.trials()
            used = sum(1 for t in trials if t.state == TrialState.RUNNING or t.is_informative)
            per_job = int(self.launcher.options.get("trials_per_job", 1))
            starting = sum(1 for state in self._jobs.values() if state == "PENDING")
            remaining = budget.max_trials - used - starting * per_job
            wanted = min(wanted, -(-remaining // per_job))
        if wanted <= 0:
            return
        env = dict(os.environ)
        env[STORAGE_ENV_VAR] = self.study.storage.url
        for _ in range(wanted):
            out = _run(["sbatch", "--parsable", f"--chdir={self.spec.workdir}", script], env=env)
            job = out.strip().split(";")[0]
            self._jobs[job] = "PENDING"
            self._say(f"submitted Slurm job {job}")

    def _reconcile(self) -> None:
        """Notice jobs that left the queue; mark their still-RUNNING trials lost."""
        current = active_jobs(self.study.name)
        ended = [job for job in self._jobs if job not in current]
        self._jobs = {job: current[job] for job in list(self._jobs) + list(current) if job in current}
        for job in ended:
            state = final_state(job)
            running = [
                t
                for t in self.study.trials([TrialState.RUNNING])
                if t.job == f"slurm:{job}"
            ]
            for trial in running:
                reason = f"Slurm job {job} ended ({state}) while the trial was running"
                if self.study.mark_lost(trial.number, reason) is not None:
                    self._say(f"trial {trial.number} FAILED (lost): {reason}")
            # A job that exits cleanly without a trial found the budget spent; one
            # that fails without a trial cannot start the worker (bad python, setup).
            ran_any = any(t.job == f"slurm:{job}" for t in self.study.trials())
            if ran_any:
                self._barren = 0
            elif state == "FAILED":
                self._barren += 1
            if state != "COMPLETED":
                self._say(f"Slurm job {job} ended: {state}")
            if self._barren >= _MAX_BARREN_JOBS:
                log = os.path.join(self.log_dir, f"slurm-{job}.out")
                raise LauncherError(
                    f"{self._barren} Slurm jobs in a row ended without running a trial "
                    f"(last: job {job}, {state}); see {log}"
                )

    def _report_finished(self) -> None:
        finished = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED]
        for trial in self.study.trials(finished):
            if trial.number in self._seen:
                continue
            self._seen.add(trial.number)
            if trial.state == TrialState.PRUNED:
                self.summary.pruned += 1
            elif trial.fail_kind is None:
                self.summary.completed += 1
            else:
                self.summary.failed += 1
            if self._on_trial_end is not None:
                self._on_trial_end(trial, None)  # the outcome stayed in the job

    def _cancel_all(self) -> None:
        if not self._jobs:
            return
        try:
            _run(["scancel", *sorted(self._jobs, key=int)])
            self._say(f"cancelled Slurm jobs {sorted(self._jobs, key=int)}")
        except (LauncherError, subprocess.TimeoutExpired) as e:
            logger.warning("could not cancel the Slurm jobs: %s", e)


def describe_jobs(study: str) -> list[str]:
    """Lines for ``carbs status``: the study's queued and running Slurm jobs."""
    if shutil.which("squeue") is None:
        return []
    try:
        out = _run(
            ["squeue", "--me", "--noheader", f"--name={job_name(study)}", "--format=%i %T %M %R"]
        )
    except (LauncherError, subprocess.TimeoutExpired) as e:
        return [f"Slurm jobs: unknown ({e})"]
    lines = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3:
            where = parts[3] if len(parts) == 4 else ""
            lines.append(f"Slurm job {parts[0]}: {parts[1]} for {parts[2]} {where}".rstrip())
    return lines

