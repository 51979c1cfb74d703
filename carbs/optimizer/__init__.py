"""The optimizer layer: search spaces, surrogate models, Pareto sets, acquisition, the CARBS loop.

Nothing here imports storage, studies, the runner or any integration: data
flows from this layer upwards, never back. ``CARBS`` and the settings are
served lazily, so importing a light module such as ``carbs.optimizer.space``
does not load the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "CARBS": "carbs.optimizer.loop",
    "CARBSParams": "carbs.optimizer.config",
    "OutstandingSuggestionEstimatorEnum": "carbs.optimizer.config",
    "WandbLoggingParams": "carbs.optimizer.config",
}

__all__ = ["CARBS", "CARBSParams", "OutstandingSuggestionEstimatorEnum", "WandbLoggingParams"]

if TYPE_CHECKING:  # pragma: no cover - the same names, for type checkers
    from carbs.optimizer.config import (
        CARBSParams,
        OutstandingSuggestionEstimatorEnum,
        WandbLoggingParams,
    )
    from carbs.optimizer.loop import CARBS


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carbs.optimizer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
