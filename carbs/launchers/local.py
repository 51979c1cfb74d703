"""The local launcher: ``workers`` trials at once as subprocesses of this machine.

The runner itself is :class:`carbs.runner.worker.SweepRunner`; this module
checks what the machine can give, GPUs above all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carbs.launchers.base import LauncherError

if TYPE_CHECKING:  # pragma: no cover
    from carbs.runner.worker import RunSpec


def check_local(spec: RunSpec, workers: int) -> list[str]:
    """Find the GPUs when trials need some, and refuse a sweep that cannot get them."""
    if not spec.gpus_per_trial:
        return []
    if spec.gpus is None:
        from carbs.runner.gpus import detect_gpus

        found = detect_gpus()
        if not found:
            raise LauncherError(
                f"gpus_per_trial is {spec.gpus_per_trial} but no GPU was found "
                "(CUDA_VISIBLE_DEVICES is unset and nvidia-smi lists none); "
                "list the devices with gpus: [0, 1] in the sweep file or --gpus 0,1"
            )
        spec.gpus = found
    need = workers * spec.gpus_per_trial
    if need > len(spec.gpus):
        raise LauncherError(
            f"workers: {workers} x gpus_per_trial: {spec.gpus_per_trial} need {need} GPUs, "
            f"but {len(spec.gpus)} are available ({','.join(spec.gpus)}); lower workers "
            "or gpus_per_trial"
        )
    return []
