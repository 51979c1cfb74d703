"""Every public name of the reference implementation's ``carbs.utils``, for code written against it.

``from carbs.utils import CARBSParams, LinearSpace, LogSpace, Param`` and the
rest work as they do with the reference (imbue-ai/carbs), and ``carbs``
re-exports them all. The differences follow from this implementation
having no torch: basic-space rows and model outputs are numpy arrays (any
array-like input, CPU tensors included, is accepted), and checkpoints are
versioned JSON files (``carbs_<n>obs.json``) instead of pickles.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence, Sized
from enum import Enum
from pathlib import Path
from typing import Any, Union

import numpy as np
from scipy.special import log_ndtr, ndtr

from carbs._extras import require
from carbs.optimizer.acquisition import log_expected_improvement
from carbs.optimizer.config import (
    CARBSParams,
    OutstandingSuggestionEstimatorEnum,
    WandbLoggingParams,
)
from carbs.optimizer.pareto import (
    ObservationGroup,
    group_cost,
    group_output,
    pareto_area,
    pareto_groups,
)
from carbs.optimizer.pareto import group_observations as _group_observations
from carbs.optimizer.reference_api import SurrogateModelParams
from carbs.optimizer.space import (
    LinearSpace,
    LogitSpace,
    LogSpace,
    Param,
    ParamSpace,
    RealNumberSpace,
)
from carbs.optimizer.types import (
    SUGGESTION_ID_DICT_KEY,
    ObservationInBasic,
    ObservationInParam,
    ObserveOutput,
    SuggestionInBasic,
    SuggestOutput,
)

__all__ = [
    "CARBS_CHECKPOINT_PREFIX",
    "CARBS_CHECKPOINT_SUFFIX",
    "SUGGESTION_ID_DICT_KEY",
    "CARBSParams",
    "CategoricalTuple",
    "LinearSpace",
    "LogSpace",
    "LogitSpace",
    "ObservationGroup",
    "ObservationInBasic",
    "ObservationInParam",
    "ObserveOutput",
    "OutstandingSuggestionEstimatorEnum",
    "Param",
    "ParamDictType",
    "ParamSpace",
    "ParamType",
    "RealNumberSpace",
    "SuggestOutput",
    "SuggestionInBasic",
    "SuggestionRedistributionMethodEnum",
    "SurrogateModelParams",
    "WandbLoggingParams",
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

# A parameter value, and a point as a dict of them (the reference also allows
# Enum members; categories here are ChoiceSpace values: str, int, float, bool).
ParamType = Union[int, float, str, bool, Enum]
ParamDictType = dict[str, ParamType]
CategoricalTuple = tuple[int, ...]

# Checkpoints written by ``CARBS.observe`` when ``is_saved_on_every_observation``.
CARBS_CHECKPOINT_PREFIX = "carbs_"
CARBS_CHECKPOINT_SUFFIX = "obs.json"


class SuggestionRedistributionMethodEnum(Enum):
    """Declared by the reference and used by none of its code paths; kept for imports."""

    NONE = "NONE"
    LOG_COST_CLAMPING = "LOG_COST_CLAMPING"


# -- acquisition helpers --------------------------------------------------------------
def log_norm_cdf(z: Any) -> np.ndarray:
    """log Phi(z) of the standard normal, accurate far into the lower tail."""
    return np.asarray(log_ndtr(np.asarray(z, dtype=float)))


def expected_improvement(
    mu: Any, variance: Any, best_mu: Any, exploration_bias: float = 0.5
) -> np.ndarray:
    """E[max(f - best_mu - exploration_bias, 0)] for ``f ~ N(mu, variance)``, elementwise (larger is better)."""
    mu_a = np.asarray(mu, dtype=float)
    var = np.broadcast_to(np.asarray(variance, dtype=float), mu_a.shape)
    best = np.broadcast_to(np.asarray(best_mu, dtype=float), mu_a.shape)
    flat = log_expected_improvement(mu_a.ravel(), var.ravel(), best.ravel(), exploration_bias)
    return np.exp(flat).reshape(mu_a.shape)


def probability_of_improvement(
    mu: Any,
    variance: Any,
    best_mu: Any,
    better_direction_sign: int,
    exploration_bias: float = 0.0,
) -> np.ndarray:
    """P(f improves on best_mu by more than exploration_bias) for ``f ~ N(mu, variance)``."""
    gain = (np.asarray(mu, dtype=float) - np.asarray(best_mu, dtype=float)) * better_direction_sign
    return np.asarray(ndtr((gain - exploration_bias) / np.sqrt(np.asarray(variance, dtype=float))))


def aggregate_logical_and_across_dim(x: Any, dim: int = -1) -> np.ndarray:
    """True where every element along ``dim`` is true."""
    return np.all(np.asarray(x, dtype=bool), axis=dim)


def add_dict_key_prefix(input_dict: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of ``input_dict`` with ``prefix`` before every key."""
    return {f"{prefix}{k}": v for k, v in input_dict.items()}


# -- small checks -------------------------------------------------------------------------
def assert_empty(x: Sized, message: str = "unexpected elements") -> None:
    """Raise ``AssertionError`` (even under ``python -O``) unless ``x`` is empty."""
    if len(x) != 0:
        raise AssertionError(f"{message}: {x}")


def ordered_dict_index(od: OrderedDict[Any, Any], value: Any) -> int:
    """Position of key ``value`` in ``od``; ``KeyError`` if absent."""
    for i, key in enumerate(od):
        if key == value:
            return i
    raise KeyError(f"{value} not found in {od}")


# -- Pareto groups --------------------------------------------------------------------------
def group_observations(observations_in_basic: Sequence[ObservationInBasic]) -> tuple[ObservationGroup, ...]:
    """Observations grouped by equal basic-space input."""
    return tuple(_group_observations(observations_in_basic))


def observation_group_cost(group: Sequence[ObservationInBasic]) -> float:
    """Mean cost of a group."""
    return group_cost(group)


def observation_group_output(group: Sequence[ObservationInBasic]) -> float:
    """Mean output of a group."""
    return group_output(group)


def pareto_area_from_groups(obs_groups: Sequence[ObservationGroup]) -> float:
    """Area under the Pareto staircase of cheapest-first groups (output integrated over cost)."""
    return pareto_area(obs_groups)


def get_pareto_groups(
    grouped_observations: Sequence[ObservationGroup],
    min_pareto_cost_fraction: float,
    better_direction_sign: int,
) -> tuple[ObservationGroup, ...]:
    """Pareto groups, cheapest first: each beats the mean output of every cheaper one."""
    return tuple(
        pareto_groups(grouped_observations, min_pareto_cost_fraction, better_direction_sign, False)
    )


def get_pareto_groups_conservative(
    grouped_observations: Sequence[ObservationGroup],
    min_pareto_cost_fraction: float,
    better_direction_sign: int,
) -> tuple[ObservationGroup, ...]:
    """Like :func:`get_pareto_groups`, but a group seen once must beat the best single sample
    of the previous member, and resampled groups are preferred for the cheapest slot."""
    return tuple(
        pareto_groups(grouped_observations, min_pareto_cost_fraction, better_direction_sign, True)
    )


def get_pareto_curve_plot(
    observations: Sequence[ObservationInBasic],
    pareto_groups: Sequence[ObservationGroup],
    save_dir: str | None = None,
    obs_count: int | None = None,
) -> str | None:
    """Draw observations (colored by order) and the Pareto staircase; cost on a log axis.

    With ``save_dir`` the figure is written to ``<save_dir>/pareto_curve_<obs_count>.png``
    and that path returned; otherwise it stays on matplotlib's current figure
    and ``None`` is returned. Needs matplotlib (``pip install 'carbs-tuner[plot]'``).
    """
    plt: Any = require("matplotlib.pyplot", library="matplotlib", extra="plot", what="get_pareto_curve_plot")
    if obs_count is None:
        obs_count = len(observations)
    plt.clf()
    members = [o for g in pareto_groups for o in g]
    plt.scatter([o.cost for o in members], [o.output for o in members], c="black", s=100)
    plt.plot(
        [group_cost(g) for g in pareto_groups],
        [group_output(g) for g in pareto_groups],
        linewidth=4,
        color="black",
    )
    plt.scatter(
        [o.cost for o in observations],
        [o.output for o in observations],
        c=list(range(len(observations))),
        cmap="plasma",
    )
    plt.xscale("log")
    plt.title(f"Pareto curve at {obs_count} obs")
    plt.xlabel("cost")
    plt.ylabel("performance")
    if save_dir is None:
        return None
    path = Path(save_dir) / f"pareto_curve_{obs_count}.png"
    plt.savefig(path)
    return str(path)


# -- Weights & Biases -------------------------------------------------------------------------
def _wandb_api() -> Any:
    return require("wandb", library="Weights & Biases", extra="wandb", what="loading from a W&B run")


def load_observations_from_wandb_run(
    run_name: str,
    prefix: str = "observation/",
    add_params: ParamDictType | None = None,
) -> list[ObservationInParam]:
    """The observations a run logged as ``<prefix><param>`` and ``<prefix>output`` columns.

    Rows with a missing value in any of those columns are skipped (the
    reference's rule, which drops failures: they log no output). Other
    ``<prefix>`` columns the logger adds (``is_failure``, ``cost``) are not
    parameters and are left out; ``add_params`` fills in parameters the run
    did not have. The cost is the logged ``<prefix>cost`` when present, else 1.
    """
    run = _wandb_api().Api().run(run_name)
    history = run.history()
    columns = [c for c in history.columns if str(c).startswith(prefix)]
    not_params = {f"{prefix}output", f"{prefix}cost", f"{prefix}is_failure"}
    observations: list[ObservationInParam] = []
    for _, row in history[columns].dropna().iterrows():
        values: dict[str, Any] = dict(add_params or {})
        output = math.inf
        cost = 1.0
        for key, value in row.to_dict().items():
            if key == f"{prefix}output":
                output = float(value)
            elif key == f"{prefix}cost":
                cost = float(value)
            elif key not in not_params:
                values[str(key)[len(prefix) :]] = value.item() if isinstance(value, np.generic) else value
        observations.append(ObservationInParam(input=values, output=output, cost=cost))
    return observations


def get_checkpoint_obs_count(checkpoint_name: str) -> int:
    """The observation count in a checkpoint's name (``carbs_12obs.json`` -> 12)."""
    core = checkpoint_name.removeprefix(CARBS_CHECKPOINT_PREFIX).removesuffix(CARBS_CHECKPOINT_SUFFIX)
    try:
        return int(core)
    except ValueError:
        raise ValueError(
            f"checkpoint name {checkpoint_name!r} is not {CARBS_CHECKPOINT_PREFIX}<count>{CARBS_CHECKPOINT_SUFFIX}"
        ) from None


def load_checkpoint_from_wandb_run(
    run_path: str, checkpoint_filename: str, temp_dir: str | None = None
) -> str:
    """Download one file of a W&B run and return its local path (for ``CARBS.load_from_file``)."""
    if temp_dir is None:
        temp_dir = os.path.join("/tmp/carbs", run_path)
    os.makedirs(temp_dir, exist_ok=True)
    handle = _wandb_api().restore(checkpoint_filename, run_path=run_path, replace=True, root=temp_dir)
    if handle is None:
        raise FileNotFoundError(f"W&B run {run_path!r} has no file {checkpoint_filename!r}")
    handle.close()
    return str(handle.name)


def load_latest_checkpoint_from_wandb_run(run_path: str, temp_dir: str | None = None) -> str:
    """Download the checkpoint with the most observations among a run's files; return its path.

    Checkpoints are the ``carbs_<n>obs.json`` files a run saved (``wandb.save``).
    The reference's ``carbs_<n>obs.pt`` pickles cannot be read here: load the
    observations with :func:`load_observations_from_wandb_run` instead.
    """
    run = _wandb_api().Api().run(run_path)
    names = [f.name for f in run.files()]
    ours = [n for n in names if n.startswith(CARBS_CHECKPOINT_PREFIX) and n.endswith(CARBS_CHECKPOINT_SUFFIX)]
    if not ours:
        pickles = [n for n in names if n.startswith(CARBS_CHECKPOINT_PREFIX) and n.endswith("obs.pt")]
        hint = (
            f"; its files {pickles[:3]} are the reference implementation's torch pickles, which "
            "cannot be loaded here: use load_observations_from_wandb_run and "
            "CARBS.initialize_from_observations instead"
            if pickles
            else ""
        )
        raise FileNotFoundError(f"W&B run {run_path!r} has no {CARBS_CHECKPOINT_PREFIX}<n>{CARBS_CHECKPOINT_SUFFIX} checkpoint{hint}")
    latest = max(ours, key=get_checkpoint_obs_count)
    return load_checkpoint_from_wandb_run(run_path, latest, temp_dir)
