"""Logging a CARBS search to Weights & Biases.

``CARBSParams(is_wandb_logging_enabled=True)`` makes the optimizer log every
suggestion and observation itself (rows with the parameters, the output, the
cost, the best output so far), and a performance-cost plot every
``pareto_plot_every`` successful runs. At the end the Pareto set CARBS
chose is plotted once more.

Runs offline unless ``--online`` is given (then ``wandb login`` first)::

    pip install 'carbs-tuner[wandb,plot]'
    python examples/wandb/wandb_carbs.py --runs 30
    wandb sync wandb/offline-run-*      # upload later, if wanted
"""

from __future__ import annotations

import argparse
import math
import os
import random

from carbs import (
    CARBS,
    CARBSParams,
    LogSpace,
    ObservationInParam,
    Param,
    WandbLoggingParams,
)
from carbs.integrations.wandb import WandbLogger

PARAMS = [
    Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), search_center=1e-3),
    Param("width", LogSpace(min=8, max=1024, is_integer=True, scale=0.5), search_center=64),
]


def train(lr: float, width: int, noise: random.Random) -> tuple[float, float]:
    """A stand-in for a training run: (loss, seconds)."""
    best_log_lr = -2.0 - 0.3 * math.log10(width / 64)
    loss = 2.0 / math.sqrt(width) + 0.2 * (math.log10(lr) - best_log_lr) ** 2
    return loss + 0.005 * noise.gauss(0, 1), 0.01 * width


def main(runs: int = 30, root_dir: str = ".", online: bool = False) -> CARBS:
    """Run the search, logging to a W&B run under ``root_dir``."""
    if not online:
        os.environ.setdefault("WANDB_MODE", "offline")
    config = CARBSParams(
        better_direction_sign=-1,
        seed=0,
        is_wandb_logging_enabled=True,
        wandb_params=WandbLoggingParams(project_name="carbs-example", root_dir=root_dir),
    )
    opt = CARBS(config, PARAMS)
    noise = random.Random(0)
    for _ in range(runs):
        s = opt.suggest().suggestion
        loss, seconds = train(s["lr"], s["width"], noise)
        opt.observe(ObservationInParam(input=s, output=loss, cost=seconds))
    logger = WandbLogger.for_optimizer(opt)
    logger.log_pareto_plot(opt.get_pareto_set())
    logger.finish()
    print(f"logged {opt.observation_count} runs to {logger.run.dir}")
    return opt


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--root-dir", default=".", help="where W&B writes its wandb/ folder")
    parser.add_argument("--online", action="store_true", help="log to the W&B server")
    args = parser.parse_args()
    main(args.runs, args.root_dir, args.online)
