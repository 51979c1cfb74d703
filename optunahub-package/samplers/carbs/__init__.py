"""CARBS on OptunaHub: ``optunahub.load_module("samplers/carbs").CARBSSampler``.

The sampler is maintained in the ``carbs-tuner`` distribution (installed by
this package's requirements.txt); this module re-exports it with the names
needed to describe a search space natively.
"""

from __future__ import annotations

from carbs import CARBSParams, ChoiceSpace, LinearSpace, LogitSpace, LogSpace, Param
from carbs.integrations.optuna import CARBSSampler, suggest_params

__all__ = [
    "CARBSParams",
    "CARBSSampler",
    "ChoiceSpace",
    "LinearSpace",
    "LogSpace",
    "LogitSpace",
    "Param",
    "suggest_params",
]
