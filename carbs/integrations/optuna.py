"""CARBS as an Optuna sampler (``pip install 'carbs-tuner[optuna]'``).

Example::

    import optuna
    from carbs.integrations.optuna import CARBSSampler

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        width = trial.suggest_int("width", 16, 1024, log=True)
        loss, seconds = train(lr, width)
        trial.set_user_attr("cost", seconds)   # optional: else default_cost (see CARBSSampler)
        return loss

    study = optuna.create_study(direction="minimize", sampler=CARBSSampler(seed=0),
                                storage="sqlite:///sweep.db", study_name="sweep",
                                load_if_exists=True)
    study.optimize(objective, n_trials=100)

The sampler keeps no state of its own between trials: for every new trial it
rebuilds CARBS from the study's trials in storage (complete trials are
observations, pruned ones partial observations at their last intermediate
value, failed ones failures, running ones pending suggestions). So any number of processes can share one RDB storage, and the
study can be inspected with Optuna's own tools and dashboard.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from carbs.integrations._extras import missing_extra

try:
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.samplers import BaseSampler, RandomSampler
    from optuna.search_space import intersection_search_space
    from optuna.study import Study, StudyDirection
    from optuna.trial import BaseTrial, FrozenTrial, TrialState
except ImportError as e:
    raise missing_extra("optuna", "Optuna", e) from e

from carbs.integrations._convert import (
    DEFAULT_BASIC_SPAN,
    IDENTITY,
    ConversionError,
    ValueCodec,
    positive_cost,
)
from carbs.integrations._optuna_space import distribution_from_param, param_from_distribution
from carbs.optimizer.config import CARBSParams
from carbs.optimizer.loop import CARBS
from carbs.optimizer.space import Param, SearchSpace, SpaceError
from carbs.optimizer.types import ObservationInParam, ParetoPoint, SuggestionInBasic

logger = logging.getLogger(__name__)

__all__ = ["CARBSSampler", "ConversionError", "suggest_params"]

# A cost must be > 0; trials without timestamps get this floor.
_MIN_COST = 1e-6


class CARBSSampler(BaseSampler):
    """An Optuna sampler that asks CARBS for each trial's parameters.

    Args:
        params: a fixed search space as carbs ``Param`` objects (recommended:
            deliberate scales and centers, and CARBS guides the search from the
            very first trial). The objective must ask for each with the matching
            ``suggest_*`` call; :func:`suggest_params` does that. Leave out to
            infer the space from the distributions the objective uses (the first
            trial is then sampled at random).
        search_center: with an inferred space, where the search starts, by
            parameter name; by default the middle of each range.
        carbs_params: optimizer settings (``better_direction_sign`` follows the
            study's direction; ``seed`` is replaced per trial).
        cost_attr: the trial user attribute holding its cost (a number > 0).
        default_cost: the cost of a trial without ``cost_attr``: ``"duration"``
            (its wall-clock seconds) or a number > 0. By default ``"duration"``,
            and ``1.0`` when ``seed`` is given: durations differ from run to
            run, and a seeded sampler promises to repeat itself.
        seed: base seed. With the same seed and the same trials in storage the
            same parameters are suggested, in this process or another, so a
            seeded study repeats itself run after run as long as its costs do
            (a ``cost_attr`` computed from the parameters, or ``default_cost``).
            Random by default.
        independent_sampler: samples the parameters CARBS does not handle
            (by default ``RandomSampler``).
        basic_span: with an inferred space, how many basic units a range spans.
        warn_independent_sampling: log a warning (once per parameter) when a
            parameter is sampled by ``independent_sampler`` instead of CARBS.
    """

    def __init__(
        self,
        params: Sequence[Param] | None = None,
        *,
        search_center: Mapping[str, Any] | None = None,
        carbs_params: CARBSParams | None = None,
        cost_attr: str = "cost",
        default_cost: float | str | None = None,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        basic_span: float = DEFAULT_BASIC_SPAN,
        warn_independent_sampling: bool = True,
    ) -> None:
        if carbs_params is not None and not isinstance(carbs_params, CARBSParams):
            raise TypeError(f"carbs_params must be a CARBSParams, got {type(carbs_params).__name__}")
        if not isinstance(cost_attr, str) or not cost_attr:
            raise ValueError(f"cost_attr must be a non-empty string, got {cost_attr!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        if default_cost is None:
            default_cost = "duration" if seed is None else 1.0
        if default_cost != "duration" and positive_cost(default_cost) is None:
            raise ValueError(f"default_cost must be 'duration' or a number > 0, got {default_cost!r}")
        self._fixed: list[Param] | None = None
        self._fixed_space: dict[str, BaseDistribution] = {}
        if params is not None:
            if search_center is not None:
                raise ValueError(
                    "search_center applies to an inferred space only; Params carry their own"
                )
            self._fixed = list(params)
            SearchSpace(self._fixed)  # validates names once, up front
            self._fixed_space = {p.name: distribution_from_param(p) for p in self._fixed}
        self._search_center = dict(search_center or {})
        self._carbs_params = carbs_params or CARBSParams()
        self._cost_attr = cost_attr
        self._default_cost = default_cost
        self._seed = seed if seed is not None else secrets.randbelow(2**31)
        self._independent = independent_sampler or RandomSampler(seed=seed)
        self._basic_span = basic_span
        self._warn_independent = warn_independent_sampling
        # (name, repr(distribution)) -> converted parameter, or the reason it cannot be.
        self._conversions: dict[tuple[str, str], tuple[Param, ValueCodec] | str] = {}
        self._warned: set[str] = set()

    # -- BaseSampler interface -------------------------------------------------------
    def reseed_rng(self) -> None:
        """Draw a new base seed (Optuna calls this in each thread of ``optimize(n_jobs>1)``)."""
        self._seed = secrets.randbelow(2**31)
        self._independent.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The fixed space, or the distributions every finished trial used that CARBS can model."""
        _check_single_objective(study)
        if self._fixed is not None:
            return dict(self._fixed_space)
        return self._inferred_space(study)

    def _inferred_space(self, study: Study) -> dict[str, BaseDistribution]:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        space: dict[str, BaseDistribution] = {}
        for name, dist in intersection_search_space(trials, include_pruned=True).items():
            if dist.single():
                continue
            converted = self._convert(name, dist)
            if isinstance(converted, str):
                self._warn_once(name, f"parameter {name!r} is sampled by the independent sampler: {converted}")
                continue
            space[name] = dist
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """CARBS's suggestion for ``trial``, rebuilt from every trial in storage.

        Parameters CARBS cannot model are left out, for Optuna to draw from
        the independent sampler.
        """
        _check_single_objective(study)
        params, codecs = self._params_for(search_space)
        if not params:
            return {}
        opt = self._rebuild(study, params, codecs, current=trial.number)
        suggestion = opt.suggest(is_suggestion_remembered=False).suggestion
        return {p.name: codecs[p.name].from_carbs(suggestion[p.name]) for p in params}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Parameters outside the CARBS space go to the independent sampler."""
        _check_single_objective(study)
        known = self._fixed is not None or any(
            t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
        )
        if known:
            self._warn_once(
                param_name,
                f"parameter {param_name!r} (trial {trial.number}) is sampled by the independent "
                "sampler: it is not in the CARBS search space, or its distribution differs from "
                "the one CARBS searches",
            )
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    # -- rebuilding the optimizer ---------------------------------------------------------
    def _convert(self, name: str, dist: BaseDistribution) -> tuple[Param, ValueCodec] | str:
        key = (name, repr(dist))
        if key not in self._conversions:
            try:
                self._conversions[key] = param_from_distribution(
                    name, dist, self._search_center, self._basic_span
                )
            except (ConversionError, SpaceError) as e:
                self._conversions[key] = str(e)
        return self._conversions[key]

    def _params_for(
        self, search_space: dict[str, BaseDistribution]
    ) -> tuple[list[Param], dict[str, ValueCodec]]:
        if self._fixed is not None:
            return self._fixed, {p.name: IDENTITY for p in self._fixed}
        params: list[Param] = []
        codecs: dict[str, ValueCodec] = {}
        for name, dist in search_space.items():
            converted = self._convert(name, dist) if not dist.single() else "it has a single value"
            if isinstance(converted, str):  # a space given by the caller, not inferred here
                self._warn_once(name, f"parameter {name!r} is sampled by the independent sampler: {converted}")
                continue
            params.append(converted[0])
            codecs[name] = converted[1]
        return params, codecs

    def optimizer_for(self, study: Study) -> CARBS:
        """CARBS rebuilt from every trial of ``study``, to inspect (``get_pareto_set()`` ...).

        Raises ``ValueError`` if the search space is not known yet (no finished trial).
        """
        _check_single_objective(study)
        trial_count = len(study.get_trials(deepcopy=False))
        if self._fixed is not None:
            params, codecs = self._params_for(self._fixed_space)
        else:
            space = self._inferred_space(study)
            if not space:
                raise ValueError(
                    f"study {study.study_name!r} has no finished trial to infer the search space from"
                )
            params, codecs = self._params_for(space)
        return self._rebuild(study, params, codecs, current=trial_count)

    def pareto_set(self, study: Study) -> list[ParetoPoint]:
        """The study's performance-cost Pareto set, cheapest first, in the objective's own values.

        Unlike ``optimizer_for(study).get_pareto_set()``, whose inputs are
        CARBS's (a stepped range such as ``step=0.05`` is searched by its
        position on the grid), the inputs here are what the trials received.
        """
        opt = self.optimizer_for(study)
        space = self._fixed_space if self._fixed is not None else self._inferred_space(study)
        _, codecs = self._params_for(space)
        return [
            replace(point, input={k: codecs[k].from_carbs(v) for k, v in point.input.items()})
            for point in opt.get_pareto_set()
        ]

    def _rebuild(
        self,
        study: Study,
        params: list[Param],
        codecs: dict[str, ValueCodec],
        current: int,
    ) -> CARBS:
        """CARBS holding every trial except number ``current``, seeded for that trial."""
        sign = 1 if study.direction == StudyDirection.MAXIMIZE else -1
        seed = int(np.random.SeedSequence([self._seed, current]).generate_state(1)[0])
        config = replace(
            self._carbs_params,
            better_direction_sign=sign,
            seed=seed,
            # The optimizer is rebuilt per trial: it must not open runs or write files.
            is_wandb_logging_enabled=False,
            is_saved_on_every_observation=False,
        )
        opt = CARBS(config, params)
        observations: list[ObservationInParam] = []
        seen: set[bytes] = set()
        repeats = 0
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.number == current or t.state == TrialState.WAITING:
                continue
            values = _carbs_values(t, params, codecs, opt.search_space)
            if values is None:
                continue
            basic = opt.search_space.to_basic(values)
            # A repeated point is CARBS re-running a Pareto member: count them so that
            # resampling keeps its pace although the optimizer is rebuilt every time.
            # Compared in basic space, rounded, as values make a float round trip.
            key = np.round(basic, 8).tobytes()
            repeats += key in seen
            seen.add(key)
            if t.state == TrialState.RUNNING:
                opt.outstanding_suggestions[f"optuna-trial-{t.number}"] = SuggestionInBasic(basic)
            elif t.state == TrialState.COMPLETE and t.value is not None:
                observations.append(ObservationInParam(values, float(t.value), self._cost(t)))
            elif t.state == TrialState.PRUNED and (last := _last_intermediate(t)) is not None:
                # As in carbs studies: its last reported value at its point, a pessimistic
                # stand-in for the final one; its cost is kept from the cost model.
                observations.append(ObservationInParam(values, last, self._cost(t), is_partial=True))
            elif t.state in (TrialState.FAIL, TrialState.PRUNED):
                observations.append(ObservationInParam(values, math.nan, self._cost(t), True))
        if observations:
            # Keep sampling around the user's center until the models take over,
            # as a sequential run would.
            opt.initialize_from_observations(observations, recenter=False)
        opt.resample_count = repeats
        return opt

    def _cost(self, trial: FrozenTrial) -> float:
        cost = positive_cost(trial.user_attrs.get(self._cost_attr))
        if cost is not None:
            return cost
        if self._default_cost != "duration":
            return float(self._default_cost)
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
            return max(seconds, _MIN_COST)
        return _MIN_COST

    def _warn_once(self, name: str, message: str) -> None:
        if self._warn_independent and name not in self._warned:
            self._warned.add(name)
            logger.warning("CARBSSampler: %s", message)


def suggest_params(trial: BaseTrial, params: Sequence[Param]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter, with the distribution ``CARBSSampler(params)`` declares."""
    values: dict[str, Any] = {}
    for p in params:
        dist = distribution_from_param(p)
        if isinstance(dist, CategoricalDistribution):
            values[p.name] = trial.suggest_categorical(p.name, list(dist.choices))
        elif isinstance(dist, IntDistribution):
            values[p.name] = trial.suggest_int(p.name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, FloatDistribution):
            values[p.name] = trial.suggest_float(p.name, dist.low, dist.high, log=dist.log)
    return values


def _check_single_objective(study: Study) -> None:
    if len(study.directions) > 1:
        raise ValueError(
            f"CARBSSampler optimises one objective, but study {study.study_name!r} has "
            f"{len(study.directions)}; CARBS already trades the objective against cost, so return "
            "the metric and record the cost with trial.set_user_attr"
        )


def _carbs_values(
    trial: FrozenTrial,
    params: list[Param],
    codecs: dict[str, ValueCodec],
    space: SearchSpace,
) -> dict[str, Any] | None:
    """The trial's parameters as CARBS values, or ``None`` if it lacks one or leaves the space."""
    try:
        values = {p.name: codecs[p.name].to_carbs(trial.params[p.name]) for p in params}
        space.to_basic(values)
    except (KeyError, SpaceError, TypeError, ValueError):
        return None
    return values


def _last_intermediate(trial: FrozenTrial) -> float | None:
    """The value a pruned trial reported at its last step (``None`` without a finite one)."""
    if not trial.intermediate_values:
        return None
    value = trial.intermediate_values[max(trial.intermediate_values)]
    return float(value) if value is not None and math.isfinite(value) else None
