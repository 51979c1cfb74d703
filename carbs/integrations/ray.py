"""CARBS as a Ray Tune searcher (``pip install 'carbs-tuner[ray]'``).

Example::

    from ray import tune
    from carbs import LogSpace, Param
    from carbs.integrations.ray import CARBSSearcher

    params = [Param("lr", LogSpace(min=1e-5, max=1e-1, scale=0.5), search_center=1e-3)]
    searcher = CARBSSearcher(params, metric="loss", mode="min")
    tuner = tune.Tuner(train, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=50))

Every trial is one CARBS suggestion, identified by its Tune trial id, so
concurrent trials are CARBS's pending suggestions and later suggestions steer
away from them. A trial that errors, or finishes without reporting the metric,
is recorded as a failure. Its cost is the reported ``cost_metric`` if given,
else Tune's ``time_total_s``. Under an early-stopping scheduler (ASHA,
Hyperband) give the searcher the scheduler's ``time_attr`` and ``max_t``: a
trial the scheduler stopped short of ``max_t`` is then told to CARBS as
stopped early (a partial run), not as a finished run of that config.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from carbs.integrations._extras import missing_extra

try:
    from ray.tune.search import UNDEFINED_METRIC_MODE, UNDEFINED_SEARCH_SPACE, Searcher
    from ray.tune.search.variant_generator import parse_spec_vars
except ImportError as e:
    raise missing_extra("ray", "Ray Tune", e) from e

from carbs.integrations._convert import (
    DEFAULT_BASIC_SPAN,
    IDENTITY,
    ConversionError,
    ValueCodec,
    positive_cost,
)
from carbs.integrations._ray_space import PATH_DELIMITER, convert_ray_search_space
from carbs.optimizer import serialization
from carbs.optimizer.config import CARBSParams
from carbs.optimizer.loop import CARBS
from carbs.optimizer.space import Param, SearchSpace, SpaceError
from carbs.optimizer.types import SUGGESTION_ID_DICT_KEY, ObservationInParam, SuggestionInBasic

logger = logging.getLogger(__name__)

__all__ = ["CARBSSearcher", "ConversionError", "convert_ray_search_space"]

_STATE_FORMAT = "carbs.ray_searcher"
_STATE_VERSION = 1
# Tune's own measure of a trial's wall-clock time.
_TIME_KEY = "time_total_s"
# A cost must be > 0; trials that report no time at all get this floor.
_MIN_COST = 1e-6


class CARBSSearcher(Searcher):
    """A Ray Tune ``Searcher`` that asks CARBS for every trial's config.

    Args:
        params: the search space as carbs ``Param`` objects (recommended: they
            carry a deliberate scale and search center). A name containing
            ``/`` addresses a nested config key (``"optim/lr"``). Leave out to
            convert the Tuner's ``param_space`` (``tune.uniform`` etc.) instead.
        metric: the reported metric to optimise (or set it in ``TuneConfig``).
        mode: ``"min"`` or ``"max"`` (or set it in ``TuneConfig``).
        cost_metric: reported key holding each trial's cost (for example the
            number of tokens or GPU-hours); by default the trial's
            ``time_total_s``.
        carbs_params: optimizer settings; ``better_direction_sign`` follows ``mode``.
        search_center: for a converted ``param_space``, where the search
            starts (by parameter name or as a nested dict); by default the
            middle of each range.
        basic_span: for a converted ``param_space``, how many basic units a
            range spans (larger = smaller steps).
        points_to_evaluate: configs to run first, before CARBS's own
            suggestions, as Tune hands them to trials (nested dicts, or flat
            ``"optim/lr"`` names). Parameters a point leaves out take their
            search center; values are rounded to the parameter's grid.
        evaluated_rewards: the metric values the ``points_to_evaluate``
            already obtained, one per point: they are then recorded as
            observations instead of being run. A number has no cost, and
            counts as cost 1 (with a warning); a result dict such as
            ``{"loss": 0.3, "time_total_s": 41.0}`` gives the cost as a
            finished trial's result does. Other points to add at any time:
            :meth:`add_evaluated_point`.
        time_attr: the result key that measures a trial's progress, as given
            to the scheduler (ASHA's ``time_attr``).
        max_t: the progress of a full run, as given to the scheduler (ASHA's
            ``max_t``). A trial that Tune stopped (its scheduler or a stopper
            ended it, it did not return by itself) with ``time_attr`` below
            ``max_t`` is observed as stopped early: its last value is a
            pessimistic output for its config and its cost is left out of the
            cost model. ``None``: every trial's last result counts as a
            finished run.
    """

    def __init__(
        self,
        params: Sequence[Param] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        *,
        cost_metric: str | None = None,
        carbs_params: CARBSParams | None = None,
        search_center: Mapping[str, Any] | None = None,
        basic_span: float = DEFAULT_BASIC_SPAN,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        evaluated_rewards: Sequence[Any] | None = None,
        time_attr: str = "training_iteration",
        max_t: float | None = None,
    ) -> None:
        _check_metric_mode(metric, mode)
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"time_attr must be a non-empty string, got {time_attr!r}")
        if max_t is not None and (isinstance(max_t, bool) or not isinstance(max_t, (int, float))
                                  or not math.isfinite(max_t) or max_t <= 0):
            raise ValueError(f"max_t must be a number > 0 or None, got {max_t!r}")
        points = _check_points(points_to_evaluate, evaluated_rewards)
        if cost_metric is not None and (not isinstance(cost_metric, str) or not cost_metric):
            raise ValueError(f"cost_metric must be a non-empty string or None, got {cost_metric!r}")
        if carbs_params is not None and not isinstance(carbs_params, CARBSParams):
            raise TypeError(f"carbs_params must be a CARBSParams, got {type(carbs_params).__name__}")
        if params is not None:
            params = list(params)
            for p in params:
                if not isinstance(p, Param):
                    raise TypeError(f"params must hold carbs Param objects, got {p!r}")
            if search_center is not None:
                raise ValueError(
                    "search_center applies to a converted param_space only; native Params carry "
                    "their own search_center"
                )
        super().__init__(metric=metric, mode=mode)
        self._cost_metric = cost_metric
        self._time_attr = time_attr
        self._max_t = None if max_t is None else float(max_t)
        self._carbs_params = carbs_params or CARBSParams()
        self._search_center = dict(search_center or {})
        self._basic_span = basic_span
        self._params: list[Param] | None = params
        # True once the space was converted from a Tune param_space.
        self._space_from_tune = False
        self._codecs: dict[str, ValueCodec] = {p.name: IDENTITY for p in params or []}
        self._carbs: CARBS | None = None
        # Tune trial id -> {"input": CARBS values, "started": epoch seconds,
        # "seen": the last ``time_attr`` Tune passed to on_trial_result}.
        self._live: dict[str, dict[str, Any]] = {}
        self._warned_cost_metric = False
        # Points not yet handed to the optimizer: with rewards they become
        # observations, without they are the first suggestions.
        self._points: list[dict[str, Any]] = points
        self._rewards: list[Any] | None = None if evaluated_rewards is None else list(evaluated_rewards)
        self._check_points_fit()

    # -- the optimizer ---------------------------------------------------------
    @property
    def carbs(self) -> CARBS | None:
        """The underlying optimizer, once the search space and mode are known."""
        return self._carbs

    def _optimizer(self) -> CARBS:
        if self._carbs is None:
            if self._params is None:
                raise RuntimeError(
                    UNDEFINED_SEARCH_SPACE.format(cls=type(self).__name__, space="params")
                )
            if not self._metric or not self._mode:
                # Tune hands TuneConfig's metric and mode to a searcher only
                # together with a non-empty param_space.
                raise RuntimeError(
                    UNDEFINED_METRIC_MODE.format(
                        cls=type(self).__name__, metric=self._metric, mode=self._mode
                    )
                    + " Without a param_space, Tune does not pass TuneConfig's metric and mode "
                    "on: give them to CARBSSearcher(metric=..., mode=...)."
                )
            sign = -1 if self._mode == "min" else 1
            if self._carbs_params.better_direction_sign != sign and sign == 1:
                logger.warning(
                    "carbs_params.better_direction_sign=-1 is overridden by mode='max'"
                )
            config = replace(self._carbs_params, better_direction_sign=sign)
            self._carbs = CARBS(config, self._params)
            if self._rewards is not None:
                points, rewards = self._points, self._rewards
                self._points, self._rewards = [], None
                for point, reward in zip(points, rewards):
                    result = dict(reward) if isinstance(reward, Mapping) else {self._metric: reward}
                    cost = self._result_cost(result)
                    if cost is None and not isinstance(reward, Mapping):
                        logger.warning(
                            "evaluated_rewards give no cost; the point %s counts as cost 1 (pass "
                            "result dicts with %r to give one)",
                            point,
                            self._cost_metric or _TIME_KEY,
                        )
                    self._observe_evaluated(point, result, cost or 1.0, error=False)
        return self._carbs

    # -- Searcher interface ------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Take metric, mode and (without native params) the search space from Tune."""
        _check_metric_mode(metric, mode)
        if self._carbs is not None:
            new_mode = mode or self._mode
            if new_mode != self._mode or (metric and metric != self._metric):
                raise ValueError(
                    f"CARBSSearcher already optimises {self._metric!r} ({self._mode}); it cannot "
                    f"switch to {metric!r} ({mode})"
                )
        _, domain_vars, grid_vars = parse_spec_vars(config or {})
        if domain_vars or grid_vars:
            params, codecs = convert_ray_search_space(
                config, self._search_center, self._basic_span
            )
            if self._params is None:
                self._params, self._codecs, self._space_from_tune = params, codecs, True
                self._check_points_fit()
            elif not self._space_from_tune:
                # Native params and a param_space: Tune reports the space was given twice.
                return False
            else:
                # A restored searcher given its param_space again (for the constants):
                # the saved space, with its scales and centers, stays.
                self._check_same_names([p.name for p in params])
        elif self._params is None:
            return False
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    def _check_same_names(self, names: list[str]) -> None:
        known = [p.name for p in self._params or []]
        if sorted(names) != sorted(known):
            raise ValueError(
                f"param_space searches {sorted(names)}, but this searcher (restored?) searches "
                f"{sorted(known)}; give the param_space it was saved with, or a new CARBSSearcher"
            )

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """A new config for ``trial_id``, remembered as pending until it completes.

        The ``points_to_evaluate`` come first, in order.
        """
        opt = self._optimizer()
        if self._points:
            values = self._carbs_values(self._points[0], "points_to_evaluate[0]")
            row = opt._param_space_real_to_basic_space_real(values)
            values = opt._basic_space_to_param_space(row)  # rounded as CARBS models it
            opt._remember_suggestion(dict(values), SuggestionInBasic(row), trial_id)
            self._points.pop(0)
        else:
            suggestion = opt.suggest(suggestion_id=trial_id).suggestion
            values = {k: v for k, v in suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
        self._live[trial_id] = {"input": values, "started": time.time()}
        flat = {name: self._codecs.get(name, IDENTITY).from_carbs(v) for name, v in values.items()}
        return _unflatten(flat)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Remember how far the trial got (Tune calls this for every result it lets continue)."""
        live = self._live.get(trial_id)
        if live is not None:
            live["seen"] = _finite_number(result.get(self._time_attr))

    def _stopped_early(self, live: Mapping[str, Any], result: Mapping[str, Any] | None) -> bool:
        """Whether Tune stopped the trial short of ``max_t``.

        Tune passes every result it lets continue to :meth:`on_trial_result`,
        but not the one on which its scheduler or a stopper ends the trial.
        A trial that returned by itself ends on a repeat of a result already
        seen. So a last result newer than the last one seen, below ``max_t``,
        is a trial that was cut short.
        """
        if self._max_t is None or not result:
            return False
        progress = _finite_number(result.get(self._time_attr))
        return progress is not None and progress < self._max_t and progress != live.get("seen")

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Report the trial's metric and cost to CARBS (a failure if it errored).

        A trial the scheduler stopped short of ``max_t`` is reported as stopped
        early (see ``max_t``).
        """
        live = self._live.pop(trial_id, None)
        if live is None:
            logger.warning("CARBSSearcher: completion of unknown trial %r ignored", trial_id)
            return
        opt = self._optimizer()
        output = (result or {}).get(self._metric) if self._metric else None
        value = _finite_number(output)
        failed = bool(error) or value is None
        if value is None and not error:
            logger.warning(
                "trial %s finished without a numeric %r (got %r); recorded as a failure",
                trial_id,
                self._metric,
                output,
            )
        observation = ObservationInParam(
            input={**live["input"], SUGGESTION_ID_DICT_KEY: trial_id},
            output=math.nan if value is None else value,
            cost=self._cost(trial_id, result, live["started"]),
            is_failure=failed,
            is_partial=not failed and self._stopped_early(live, result),
        )
        opt.observe(observation)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
        *,
        cost: float | None = None,
    ) -> None:
        """Record a config evaluated outside this search (Ray's ``Searcher`` method).

        ``parameters`` is a config as Tune hands it to a trial; parameters it
        leaves out take their search center. ``error`` records a failure. A
        ``pruned`` point is a partial observation at ``value`` (a run stopped
        early: the output model uses its value, the cost model and the Pareto
        set leave it out, see docs/curves.md); ``intermediate_values`` are not
        used. ``cost`` (a number > 0) is what the run cost, in the unit of the
        other trials' costs; 1 if not given.
        """
        self._optimizer()
        if cost is not None and positive_cost(cost) is None:
            raise ValueError(f"add_evaluated_point: cost must be a number > 0, got {cost!r}")
        self._observe_evaluated(
            dict(parameters), {str(self._metric): value}, cost or 1.0, error, pruned=bool(pruned)
        )

    def _observe_evaluated(
        self,
        point: dict[str, Any],
        result: dict[str, Any],
        cost: float,
        error: bool,
        pruned: bool = False,
    ) -> None:
        opt = self._optimizer()
        values = self._carbs_values(point, "evaluated point")
        value = _finite_number(result.get(self._metric)) if self._metric else None
        opt.observe(
            ObservationInParam(
                input=values,
                output=math.nan if value is None else value,
                cost=cost,
                is_failure=bool(error) or value is None,
                is_partial=pruned and not error and value is not None,
            )
        )

    def _check_points_fit(self) -> None:
        """Once the space is known, raise now for a point that does not fit it (not mid-run)."""
        if self._params is None:
            return
        space = SearchSpace(self._params)
        for i, point in enumerate(self._points):
            what = f"points_to_evaluate[{i}]"
            try:
                space.to_basic(self._carbs_values(point, what), what=what)
            except SpaceError as e:
                raise ValueError(f"{what}: {e}") from None

    def _carbs_values(self, config: Mapping[str, Any], what: str) -> dict[str, Any]:
        """A Tune config (nested or with flat ``a/b`` names) as CARBS values, centers filling gaps."""
        params = self._params or []
        names = {p.name for p in params}
        flat: dict[str, Any] = {}
        unknown: list[str] = []

        def walk(node: Mapping[str, Any], prefix: str) -> None:
            for key, value in node.items():
                path = f"{prefix}{key}"
                if path in names:
                    flat[path] = value
                elif isinstance(value, Mapping):
                    walk(value, path + PATH_DELIMITER)
                else:
                    unknown.append(path)

        if not isinstance(config, Mapping):
            raise ValueError(f"{what} must be a dict of parameter values, got {config!r}")
        walk(config, "")
        if unknown:
            raise ValueError(
                f"{what} names unknown parameter(s) {sorted(unknown)}; the searched parameters "
                f"are {sorted(names)}"
            )
        values: dict[str, Any] = {}
        for p in params:
            if p.name not in flat:
                values[p.name] = p.search_center
                continue
            try:
                values[p.name] = self._codecs.get(p.name, IDENTITY).to_carbs(flat[p.name])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{what}: parameter {p.name!r}: {e}") from None
        return values

    def forget_pending_trials(self) -> list[str]:
        """Drop every trial still running when the state was saved; returns their ids.

        ``Tuner.restore`` resumes those trials under their old ids, so keep
        them then. A searcher restored with :meth:`restore_from_dir` into a
        new ``Tuner`` never hears of them again: call this after restoring,
        or CARBS keeps steering away from points that will never report.
        """
        dropped = list(self._live)
        if self._carbs is not None:
            for trial_id in dropped:
                self._carbs.forget_suggestion({SUGGESTION_ID_DICT_KEY: trial_id})
        self._live.clear()
        return dropped

    def _cost(self, trial_id: str, result: dict[str, Any] | None, started: float) -> float:
        result = result or {}
        cost = self._result_cost(result)
        if cost is not None:
            return cost
        return max(time.time() - started, _MIN_COST)

    def _result_cost(self, result: Mapping[str, Any]) -> float | None:
        """The cost a result reports: ``cost_metric``, else ``time_total_s``, else ``None``."""
        if self._cost_metric is not None:
            cost = positive_cost(result.get(self._cost_metric))
            if cost is not None:
                return cost
            if not self._warned_cost_metric:
                self._warned_cost_metric = True
                logger.warning(
                    "a result without a positive %r; using its %s as the cost instead",
                    self._cost_metric,
                    _TIME_KEY,
                )
        return positive_cost(result.get(_TIME_KEY))

    # -- persistence ---------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The searcher's state as a JSON-compatible dict (the optimizer's included)."""
        return {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            "metric": self._metric,
            "mode": self._mode,
            "cost_metric": self._cost_metric,
            "time_attr": self._time_attr,
            "max_t": self._max_t,
            "carbs_params": self._carbs_params.to_dict(),
            "params": None if self._params is None else [p.to_dict() for p in self._params],
            "space_from_tune": self._space_from_tune,
            "codecs": {name: codec.kind for name, codec in self._codecs.items()},
            "carbs": None if self._carbs is None else self._carbs.get_state_dict(),
            "live_trials": self._live,
            "points_to_evaluate": self._points,
            "evaluated_rewards": self._rewards,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise serialization.StateError(
                f"not a CARBSSearcher state (format {state.get('format') if isinstance(state, dict) else None!r})"
            )
        if state.get("version") != _STATE_VERSION:
            raise serialization.StateError(
                f"CARBSSearcher state version {state.get('version')!r} is not supported "
                f"(expected {_STATE_VERSION})"
            )
        try:
            self._metric = state["metric"]
            self._mode = state["mode"]
            self._cost_metric = state["cost_metric"]
            self._time_attr = str(state.get("time_attr", "training_iteration"))
            max_t = state.get("max_t")
            self._max_t = None if max_t is None else float(max_t)
            self._carbs_params = CARBSParams.from_dict(dict(state["carbs_params"]))
            params = state["params"]
            self._params = None if params is None else [Param.from_dict(p) for p in params]
            self._space_from_tune = bool(state.get("space_from_tune", False))
            self._codecs = {name: ValueCodec(kind) for name, kind in state["codecs"].items()}
            carbs_state = state["carbs"]
            self._carbs = None if carbs_state is None else CARBS.load_state_dict(carbs_state)
            self._live = {str(k): dict(v) for k, v in state["live_trials"].items()}
            self._points = [dict(p) for p in state.get("points_to_evaluate", [])]
            rewards = state.get("evaluated_rewards")
            self._rewards = None if rewards is None else list(rewards)
        except (KeyError, TypeError, AttributeError) as e:
            raise serialization.StateError(
                f"CARBSSearcher state is malformed: {type(e).__name__}: {e}"
            ) from None

    def save(self, checkpoint_path: str) -> None:
        """Write the state as JSON to ``checkpoint_path`` (Tune calls this on every checkpoint)."""
        serialization.write_atomic(checkpoint_path, json.dumps(self.get_state(), allow_nan=False))

    def restore(self, checkpoint_path: str) -> None:
        """Load a state written by :meth:`save`."""
        text = Path(checkpoint_path).read_bytes()
        try:
            state = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise serialization.StateError(
                f"{checkpoint_path}: not a CARBSSearcher state file ({e})"
            ) from None
        self.set_state(state)


def _finite_number(value: Any) -> float | None:
    """A finite float from a reported metric, or ``None`` if it is missing or not finite."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _check_points(points: Any, rewards: Any) -> list[dict[str, Any]]:
    """Validate ``points_to_evaluate`` / ``evaluated_rewards``; return the points as dicts."""
    if points is None:
        if rewards is not None:
            raise ValueError("evaluated_rewards needs points_to_evaluate: the points they were obtained at")
        return []
    if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Sequence):
        raise ValueError(f"points_to_evaluate must be a list of config dicts, got {points!r}")
    for i, p in enumerate(points):
        if not isinstance(p, Mapping):
            raise ValueError(f"points_to_evaluate[{i}] must be a config dict, got {p!r}")
    if rewards is not None:
        if isinstance(rewards, (str, bytes, Mapping)) or not isinstance(rewards, Sequence):
            raise ValueError(f"evaluated_rewards must be a list, got {rewards!r}")
        if len(rewards) != len(points):
            raise ValueError(
                f"evaluated_rewards has {len(rewards)} values for {len(points)} points_to_evaluate; "
                "give one per point"
            )
    return [dict(p) for p in points]


def _check_metric_mode(metric: Any, mode: Any) -> None:
    if metric is not None and not isinstance(metric, str):
        raise ValueError(f"CARBSSearcher optimises one metric; metric must be a string, got {metric!r}")
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(PATH_DELIMITER)
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out
