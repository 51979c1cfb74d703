"""Adapters that run CARBS inside other tools.

Each submodule needs its own optional extra and imports it only when the
submodule itself is imported, so ``import carbs`` (and this package) never
pulls in Ray, Optuna or Weights & Biases:

* :mod:`carbs.integrations.ray` -- ``CARBSSearcher`` for Ray Tune (``carbs-tuner[ray]``)
* :mod:`carbs.integrations.optuna` -- ``CARBSSampler`` for Optuna (``carbs-tuner[optuna]``)
* :mod:`carbs.integrations.wandb` -- ``WandbLogger`` for Weights & Biases (``carbs-tuner[wandb]``)
"""
