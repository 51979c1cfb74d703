"""Where trials run: local processes, tasks on a Ray cluster, or Slurm jobs.

Every launcher drives the same study in the same database; they differ in
where the trial program runs and in who writes to the database:

* ``local`` (:mod:`carbs.launchers.local`): ``workers`` threads of this
  process run the command as subprocesses and record the results.
* ``ray`` (:mod:`carbs.launchers.ray`): this process (the driver) asks the
  study for trials and records them; the program runs as a Ray task on a node
  of the cluster, with the resources the sweep asks for.
* ``slurm`` (:mod:`carbs.launchers.slurm`): this process submits and watches
  Slurm jobs; each job is a worker that asks the study for trials, runs them
  and records them itself, so the database must be reachable from the nodes.

:func:`check` finds at load time what a launcher cannot do; :func:`make_runner`
returns an object with ``run() -> RunSummary`` and ``interrupt()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from carbs.launchers.base import LauncherError, Runner

if TYPE_CHECKING:  # pragma: no cover
    from carbs.runner.worker import RunSpec
    from carbs.study import Study
    from carbs.sweep_config import LauncherConfig

__all__ = ["LauncherError", "Runner", "check", "make_runner"]


def check(launcher: LauncherConfig, spec: RunSpec, storage_url: str, workers: int) -> list[str]:
    """Problems found before anything runs: raises ``LauncherError``, returns warnings.

    May fill in ``spec.gpus`` (the local launcher finds the machine's GPUs).
    """
    if launcher.type == "ray":
        from carbs.launchers.ray import check_ray

        return check_ray(launcher, spec, storage_url)
    if launcher.type == "slurm":
        from carbs.launchers.slurm import check_slurm

        return check_slurm(launcher, spec, storage_url)
    from carbs.launchers.local import check_local

    return check_local(spec, workers)


def make_runner(
    launcher: LauncherConfig,
    study: Study,
    spec: RunSpec,
    workers: int,
    *,
    on_trial_end: Callable[[Any, Any], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> Runner:
    """The runner of ``launcher`` for this study; ``say`` prints progress lines."""
    if launcher.type == "ray":
        from carbs.launchers.ray import RaySweepRunner

        return RaySweepRunner(study, spec, workers, launcher, on_trial_end=on_trial_end)
    if launcher.type == "slurm":
        from carbs.launchers.slurm import SlurmDriver

        return SlurmDriver(study, spec, workers, launcher, on_trial_end=on_trial_end, say=say)
    from carbs.runner.worker import SweepRunner

    return SweepRunner(study, spec, workers, on_trial_end=on_trial_end)
