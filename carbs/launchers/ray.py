"""The Ray launcher: each trial runs as a Ray task on an existing cluster.

The driver (``carbs run``) keeps ``workers`` trials in flight: each worker
thread asks the study for a trial, submits a task that runs the command on
whichever node has the requested resources free, and records the result when
the task returns, so a free slot is filled at once. The driver is the only
process that writes to the database; the nodes only run the program (and need
carbs installed and the sweep's ``workdir``).

A task is never retried by Ray itself (``max_retries=0``): when its node or
worker dies the trial is marked FAILED(lost), and the sweep's ``retries``
decide whether its point runs again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbs.runner.results import TrialOutcome
from carbs.runner.worker import RunSpec, SweepRunner, judge_program
from carbs.storage import FailKind
from carbs.storage.engine import is_sqlite
from carbs.sweep_config import GPU_SECONDS

if TYPE_CHECKING:  # pragma: no cover
    from carbs.runner.curves import CurveWatcher
    from carbs.study import Study, Trial
    from carbs.sweep_config import LauncherConfig

logger = logging.getLogger(__name__)

# Seconds between checks for an interruption while a task runs.
_POLL = 0.2
# Task options Ray takes by name; any other resource is a custom one.
_NAMED_RESOURCES = ("num_cpus", "num_gpus", "memory")


def check_ray(launcher: LauncherConfig, spec: RunSpec, storage_url: str) -> list[str]:
    """Ray must be importable (else ``MissingExtraError``, naming the extra to install)."""
    from carbs._extras import require

    require("ray", library="Ray", extra="ray", what="launcher type 'ray'")
    warnings = []
    if is_sqlite(storage_url):
        warnings.append(
            "with launcher 'ray' only this driver writes to the SQLite file, which is fine; "
            "the nodes need the sweep's workdir and carbs installed"
        )
    return warnings


def task_options(launcher: LauncherConfig, gpus_per_trial: int) -> dict[str, Any]:
    """``ray.remote`` options of one trial: its resources, and no retries by Ray."""
    resources = dict(launcher.options.get("resources") or {})
    options: dict[str, Any] = {"max_retries": 0, "num_cpus": resources.pop("num_cpus", 1)}
    if "num_gpus" in resources:
        options["num_gpus"] = resources.pop("num_gpus")
    elif gpus_per_trial:
        options["num_gpus"] = gpus_per_trial
    if "memory" in resources:
        options["memory"] = resources.pop("memory")
    if resources:
        options["resources"] = resources
    return options


def run_on_node(
    spec: RunSpec, study: str, number: int, params: dict[str, Any], extras: Mapping[str, str]
) -> tuple[TrialOutcome, str, str]:
    """Run one trial program on this node (inside a Ray task); returns outcome, stderr tail, node."""
    import ray

    from carbs.runner.command import default_environment, render_command, trial_environment
    from carbs.runner.process import run_process
    from carbs.runner.results import TextValues

    scratch = tempfile.mkdtemp(prefix=f"carbs-trial-{number}-")
    try:
        results_file = os.path.join(scratch, "results.json")
        argv = render_command(
            spec.command, params, trial_number=number, study=study, results_file=results_file
        )
        env = trial_environment(
            default_environment(),
            spec.env,
            params,
            trial_number=number,
            study=study,
            results_file=results_file,
        )
        env.update(extras)
        if extras.get("CARBS_TRIAL_DIR"):
            os.makedirs(extras["CARBS_TRIAL_DIR"], exist_ok=True)
        cost_key = None if spec.cost == GPU_SECONDS else spec.cost
        text = TextValues([spec.metric] + ([cost_key] if cost_key else []), spec.metric, spec.metric_regex)
        result = run_process(
            argv,
            env=env,
            cwd=spec.workdir,
            timeout=spec.trial_timeout,
            kill_grace=spec.kill_grace,
            on_stdout_line=text.feed,
        )
        outcome, tail = judge_program(spec, result, results_file, text)
        return outcome, tail, ray.get_runtime_context().get_node_id()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class RaySweepRunner(SweepRunner):
    """A :class:`SweepRunner` whose trials run as Ray tasks instead of local subprocesses."""

    def __init__(
        self,
        study: Study,
        spec: RunSpec,
        n_workers: int,
        launcher: LauncherConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(study, spec, n_workers, **kwargs)
        self.launcher = launcher
        self._options = task_options(launcher, spec.gpus_per_trial)
        self._remote: Any = None

    def run(self) -> Any:
        """Connect to the cluster, run the sweep, disconnect."""
        import ray

        address = self.launcher.options.get("address", "auto")
        started = not ray.is_initialized()
        if started:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        self._remote = ray.remote(run_on_node).options(**self._options)
        try:
            return super().run()
        finally:
            if started:
                ray.shutdown()

    def _execute(
        self, trial: Trial, scratch: str, watcher: CurveWatcher, extras: Mapping[str, str]
    ) -> tuple[TrialOutcome, str]:
        # The program runs on a node: its reports are not watched live from here
        # (early stopping is refused with this launcher when the file loads).
        import ray
        from ray import exceptions as rex

        ref = self._remote.remote(self.spec, self.study.name, trial.number, dict(trial.params), dict(extras))
        try:
            self.study.storage.set_trial_job(self.study.id, trial.number, f"ray:{ref.task_id().hex()}")
        except Exception as e:  # only a label: the trial runs on without it
            logger.warning("trial %d: could not record its Ray task: %s", trial.number, e)
        while True:
            ready, _ = ray.wait([ref], timeout=_POLL)
            if ready:
                break
            if self._interrupt.is_set():
                ray.cancel(ref, force=True)
                return TrialOutcome(None, 1e-6, FailKind.INTERRUPTED, "interrupted"), ""
        try:
            outcome, tail, node = ray.get(ref)
        except rex.RayTaskError as e:  # carbs' own code failed on the node
            return TrialOutcome(None, 1e-6, FailKind.ERROR, f"Ray task failed: {e}"), ""
        except rex.RayError as e:  # the node, its raylet or the worker process went away
            reason = f"lost on the Ray cluster: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
            return TrialOutcome(None, 1e-6, FailKind.LOST, reason), ""
        outcome.values.setdefault("ray_node_id", node)
        return outcome, tail
