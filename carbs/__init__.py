"""CARBS: cost-aware Pareto-region Bayesian search for hyperparameters.

The optimizer (``CARBS``) and its records are imported eagerly and need only
numpy, scipy and scikit-learn; the sweep layer (studies, storage, the runner)
loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carbs.optimizer.config import (
    CARBSParams,
    OutstandingSuggestionEstimatorEnum,
    WandbLoggingParams,
)
from carbs.optimizer.loop import CARBS
from carbs.optimizer.serialization import StateError
from carbs.optimizer.space import (
    ChoiceSpace,
    LinearSpace,
    LogitSpace,
    LogSpace,
    Param,
    RealNumberSpace,
    SearchSpace,
    SpaceError,
)
from carbs.optimizer.types import (
    SUGGESTION_ID_DICT_KEY,
    ObservationInBasic,
    ObservationInParam,
    ObserveOutput,
    ParetoPoint,
    SuggestionInBasic,
    SuggestOutput,
)

__version__ = "0.1.0"

__all__ = [
    "CARBS",
    "SUGGESTION_ID_DICT_KEY",
    "CARBSParams",
    "ChoiceSpace",
    "LinearSpace",
    "LogSpace",
    "LogitSpace",
    "ObservationInBasic",
    "ObservationInParam",
    "ObserveOutput",
    "OutstandingSuggestionEstimatorEnum",
    "Param",
    "ParetoPoint",
    "RealNumberSpace",
    "SearchSpace",
    "SpaceError",
    "StateError",
    "SuggestOutput",
    "SuggestionInBasic",
    "WandbLoggingParams",
    "__version__",
]

# Names served lazily so that `import carbs` does not import SQLAlchemy.
_LAZY = {
    "create_study": "carbs.study",
    "load_study": "carbs.study",
    "Study": "carbs.study",
    "report": "carbs.reporting",
}

if TYPE_CHECKING:  # pragma: no cover
    pass


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carbs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
