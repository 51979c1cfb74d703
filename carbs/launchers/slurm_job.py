"""The worker inside one Slurm job: ``python -m carbs.launchers.slurm_job --study NAME``.

It opens the storage named by ``$CARBS_STORAGE``, runs up to ``--trials``
trials of the study with the command, budget and retry policy stored by
``carbs run``, and exits. A SIGTERM from Slurm (``scancel``, pre-emption, the
time limit) stops the running program and marks its trial FAILED(interrupted).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

logger = logging.getLogger(__name__)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run this job's trials; the exit code is 0 unless the storage failed."""
    parser = argparse.ArgumentParser(prog="carbs.launchers.slurm_job")
    parser.add_argument("--study", required=True)
    parser.add_argument("--trials", type=int, default=1, help="trials this job runs at most")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _raise_interrupt)

    from carbs.runner.worker import RunSpec, SweepRunner
    from carbs.study import load_study
    from carbs.sweep_config import Budget

    study = load_study(args.study)
    spec = RunSpec.from_study(study)
    # The sweep's time budget is the driver's: it stops submitting jobs then.
    spec.budget = Budget(spec.budget.max_trials, spec.budget.max_cost, None)
    spec.job = f"slurm:{os.environ.get('SLURM_JOB_ID', '?')}"
    spec.max_trials_here = args.trials
    summary = SweepRunner(study, spec, 1).run()
    logger.info(
        "job %s: %d trial(s) completed, %d failed; %s",
        spec.job,
        summary.completed,
        summary.failed,
        summary.stop_reason or "done",
    )
    if summary.error is not None:
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - run inside Slurm jobs
    sys.exit(main())
