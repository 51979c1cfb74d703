"""The optimizer layer: search spaces, surrogate models, Pareto sets, acquisition, the CARBS loop.

Nothing here imports storage, studies, the runner or any integration: data
flows from this layer upwards, never back.
"""

from carbs.optimizer.config import (
    CARBSParams,
    OutstandingSuggestionEstimatorEnum,
    WandbLoggingParams,
)
from carbs.optimizer.loop import CARBS

__all__ = ["CARBS", "CARBSParams", "OutstandingSuggestionEstimatorEnum", "WandbLoggingParams"]
