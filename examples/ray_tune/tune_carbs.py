"""CARBS as the search algorithm of a Ray Tune experiment.

A toy training run: the loss falls with the model width and the number of
epochs, the learning rate has a best value that shrinks as the model grows,
and the cost is ``width * epochs`` (reported by the trainable, as one would
report FLOPs or tokens). Two trials run at a time; CARBS keeps the running
ones as pending suggestions so they are not suggested twice.

Run it (``pip install 'carbs-tuner[ray]'``)::

    python examples/ray_tune/tune_carbs.py --trials 24 --storage ray_results
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import ray
from ray import tune

from carbs import CARBSParams, LogSpace, Param
from carbs.integrations.ray import CARBSSearcher

PARAMS = [
    Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), search_center=1e-3),
    Param("width", LogSpace(min=8, max=1024, is_integer=True, scale=0.5), search_center=64),
    Param("epochs", LogSpace(min=1, max=64, is_integer=True, scale=0.5), search_center=4),
]


def train(config: dict[str, Any]) -> None:
    """A stand-in for a training run: reports the final loss and what it cost."""
    best_log_lr = -2.0 - 0.3 * math.log10(config["width"] / 64)
    loss = (
        2.0 / math.sqrt(config["width"])
        + 1.0 / math.sqrt(config["epochs"])
        + 0.2 * (math.log10(config["lr"]) - best_log_lr) ** 2
    )
    tune.report({"loss": loss, "work": float(config["width"] * config["epochs"])})


def main(trials: int = 24, storage: str = "ray_results", seed: int = 0) -> tune.ResultGrid:
    """Run the experiment; returns Tune's results (the searcher's CARBS is on the side)."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # With the space given as Params (no param_space), Tune does not pass
    # TuneConfig's metric and mode to the searcher: give them here.
    searcher = CARBSSearcher(
        PARAMS, metric="loss", mode="min", cost_metric="work", carbs_params=CARBSParams(seed=seed)
    )
    tuner = tune.Tuner(
        train,
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=searcher,
            num_samples=trials,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="carbs_example",
            storage_path=os.path.abspath(storage),
            verbose=0,
        ),
    )
    results = tuner.fit()
    opt = searcher.carbs
    assert opt is not None
    print(f"{opt.observation_count} trials, {opt.cumulative_cost:.0f} units of work")
    print("Pareto set (cheapest first):")
    for point in opt.get_pareto_set():
        values = ", ".join(f"{k}={v:.3g}" for k, v in point.input.items())
        print(f"  work {point.cost:8.0f}  loss {point.output:.4f}  ({values})")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--storage", default="ray_results", help="Tune's storage_path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        main(args.trials, args.storage, args.seed)
    finally:
        ray.shutdown()
