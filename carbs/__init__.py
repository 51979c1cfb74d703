"""CARBS: cost-aware Pareto-region Bayesian search for hyperparameters.

Every public name is served on first use (module ``__getattr__``), so
``import carbs`` and ``carbs --help`` load neither numpy, scipy and
scikit-learn (the optimizer) nor SQLAlchemy (studies and storage); a trial
program that only calls ``carbs.report`` stays light too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from carbs._loggers import register_logger_factory

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "CARBS": "carbs.optimizer.loop",
    "CARBSParams": "carbs.optimizer.config",
    "OutstandingSuggestionEstimatorEnum": "carbs.optimizer.config",
    "WandbLoggingParams": "carbs.optimizer.config",
    "StateError": "carbs.optimizer.serialization",
    "ChoiceSpace": "carbs.optimizer.space",
    "LinearSpace": "carbs.optimizer.space",
    "LogitSpace": "carbs.optimizer.space",
    "LogSpace": "carbs.optimizer.space",
    "Param": "carbs.optimizer.space",
    "RealNumberSpace": "carbs.optimizer.space",
    "SearchSpace": "carbs.optimizer.space",
    "SpaceError": "carbs.optimizer.space",
    "SUGGESTION_ID_DICT_KEY": "carbs.optimizer.types",
    "ObservationInBasic": "carbs.optimizer.types",
    "ObservationInParam": "carbs.optimizer.types",
    "ObserveOutput": "carbs.optimizer.types",
    "ParetoPoint": "carbs.optimizer.types",
    "SuggestionInBasic": "carbs.optimizer.types",
    "SuggestOutput": "carbs.optimizer.types",
    "create_study": "carbs.study",
    "load_study": "carbs.study",
    "Study": "carbs.study",
    "report": "carbs.reporting",
    "current_trial": "carbs.study",
    "Trial": "carbs.study",
    "TrialPruned": "carbs.study",
    "EarlyStopping": "carbs.stopping",
}

__all__ = [
    "CARBS",
    "SUGGESTION_ID_DICT_KEY",
    "CARBSParams",
    "ChoiceSpace",
    "EarlyStopping",
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
    "Study",
    "SuggestOutput",
    "SuggestionInBasic",
    "Trial",
    "TrialPruned",
    "WandbLoggingParams",
    "__version__",
    "create_study",
    "current_trial",
    "load_study",
    "report",
]

# The rest of the reference implementation's public names (``from carbs import
# ParamDictType`` ...), served from its compatibility module ``carbs.utils``.
__all__ += [
    "CARBS_CHECKPOINT_PREFIX",
    "CARBS_CHECKPOINT_SUFFIX",
    "CategoricalTuple",
    "ObservationGroup",
    "ParamDictType",
    "ParamSpace",
    "ParamType",
    "SuggestionRedistributionMethodEnum",
    "SurrogateModelParams",
    "add_dict_key_prefix",
    "aggregate_logical_and_across_dim",
    "assert_empty",
    "expected_improvement",
    "get_checkpoint_obs_count",
    "get_pareto_curve_plot",
    "get_pareto_groups",
    "get_pareto_groups_conservative",
    "group_observations",
    "load_checkpoint_from_wandb_run",
    "load_latest_checkpoint_from_wandb_run",
    "load_observations_from_wandb_run",
    "log_norm_cdf",
    "observation_group_cost",
    "observation_group_output",
    "ordered_dict_index",
    "pareto_area_from_groups",
    "probability_of_improvement",
]
_LAZY.update({name: "carbs.utils" for name in __all__ if name not in _LAZY and name != "__version__"})

# CARBSParams(is_wandb_logging_enabled=True) opens this logger on demand; the
# optimizer layer knows only the registry, never the integration.
register_logger_factory("wandb", "carbs.integrations.wandb:WandbLogger.from_params")

if TYPE_CHECKING:  # pragma: no cover - the same names, for type checkers
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
    from carbs.reporting import report
    from carbs.stopping import EarlyStopping
    from carbs.study import Study, Trial, TrialPruned, create_study, current_trial, load_study
    from carbs.utils import (
        CARBS_CHECKPOINT_PREFIX,
        CARBS_CHECKPOINT_SUFFIX,
        CategoricalTuple,
        ObservationGroup,
        ParamDictType,
        ParamSpace,
        ParamType,
        SuggestionRedistributionMethodEnum,
        SurrogateModelParams,
        add_dict_key_prefix,
        aggregate_logical_and_across_dim,
        assert_empty,
        expected_improvement,
        get_checkpoint_obs_count,
        get_pareto_curve_plot,
        get_pareto_groups,
        get_pareto_groups_conservative,
        group_observations,
        load_checkpoint_from_wandb_run,
        load_latest_checkpoint_from_wandb_run,
        load_observations_from_wandb_run,
        log_norm_cdf,
        observation_group_cost,
        observation_group_output,
        ordered_dict_index,
        pareto_area_from_groups,
        probability_of_improvement,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carbs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
