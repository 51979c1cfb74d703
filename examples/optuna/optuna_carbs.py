"""CARBS as an Optuna sampler, on a storage several processes can share.

The objective asks Optuna for its parameters as usual, records what the run
cost with ``trial.set_user_attr("cost", ...)`` and returns the loss. The
sampler rebuilds CARBS from the trials in storage for every new trial, so
more workers can join by running this script again against the same
storage::

    pip install 'carbs-tuner[optuna]'
    python examples/optuna/optuna_carbs.py --storage sqlite:///sweep.db --trials 30 &
    python examples/optuna/optuna_carbs.py --storage sqlite:///sweep.db --trials 30

and the study can be browsed with ``optuna-dashboard sqlite:///sweep.db``.
"""

from __future__ import annotations

import argparse
import math

import optuna

from carbs import CARBSParams, LogSpace, Param
from carbs.integrations.optuna import CARBSSampler, suggest_params

PARAMS = [
    Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), search_center=1e-3),
    Param("width", LogSpace(min=8, max=1024, is_integer=True, scale=0.5), search_center=64),
    Param("epochs", LogSpace(min=1, max=64, is_integer=True, scale=0.5), search_center=4),
]


def objective(trial: optuna.Trial) -> float:
    """A stand-in for a training run: returns the loss and records its cost."""
    p = suggest_params(trial, PARAMS)  # trial.suggest_* with the distributions CARBS searches
    best_log_lr = -2.0 - 0.3 * math.log10(p["width"] / 64)
    loss = (
        2.0 / math.sqrt(p["width"])
        + 1.0 / math.sqrt(p["epochs"])
        + 0.2 * (math.log10(p["lr"]) - best_log_lr) ** 2
    )
    trial.set_user_attr("cost", float(p["width"] * p["epochs"]))
    return loss


def main(storage: str = "sqlite:///sweep.db", trials: int = 30, seed: int | None = None) -> optuna.Study:
    """Add ``trials`` trials to the study ``carbs_example`` in ``storage``."""
    sampler = CARBSSampler(PARAMS, seed=seed, carbs_params=CARBSParams(num_random_samples=4))
    study = optuna.create_study(
        study_name="carbs_example",
        storage=storage,
        direction="minimize",
        sampler=sampler,
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=trials)
    opt = sampler.optimizer_for(study)
    print(f"{len(study.trials)} trials in {storage}; best loss {study.best_value:.4f}")
    print("Pareto set (cheapest first):")
    for point in opt.get_pareto_set():
        values = ", ".join(f"{k}={v:.3g}" for k, v in point.input.items())
        print(f"  cost {point.cost:8.0f}  loss {point.output:.4f}  ({values})")
    return study


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", default="sqlite:///sweep.db", help="an Optuna storage URL")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    main(args.storage, args.trials, args.seed)
