"""Tune a toy training run with CARBS loaded from OptunaHub.

    python example.py                      # from OptunaHub (needs network)
    python example.py --local REGISTRY     # from a local copy of the registry's package/ folder
"""

from __future__ import annotations

import argparse
import math

import optuna
import optunahub


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    epochs = trial.suggest_int("epochs", 1, 64, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
    # Longer training wants a smaller learning rate; it helps, and it costs.
    loss = (math.log10(lr) + 2 + 0.5 * math.log10(epochs)) ** 2 + 3 / math.sqrt(epochs)
    loss += (dropout - 0.2) ** 2
    trial.set_user_attr("cost", float(epochs))  # what CARBS trades the loss against
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--local", metavar="REGISTRY", help="load from this local registry root")
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    if args.local:
        module = optunahub.load_local_module("samplers/carbs", registry_root=args.local)
    else:
        module = optunahub.load_module("samplers/carbs")
    study = optuna.create_study(direction="minimize", sampler=module.CARBSSampler(seed=0))
    study.optimize(objective, n_trials=args.trials)
    print(f"best loss {study.best_value:.3f} with {study.best_params}")
    for point in study.sampler.pareto_set(study):
        print(f"  cost {point.cost:5.1f}  loss {point.output:.3f}  {point.input}")


if __name__ == "__main__":
    main()
