"""The CARBS suggest/observe loop and its state.

One suggestion is made in one of three ways, each in a module of its own:

1. *random* (:mod:`~carbs.optimizer.initial_design`): until
   ``num_random_samples`` runs have succeeded, sample around the search
   center, partly around a cheaper version of it;
2. *resample* (:mod:`~carbs.optimizer.resampling`): at a pace set by the
   measured noise, run again the least-sampled member of the Pareto set;
3. *model* (:mod:`~carbs.optimizer.model_suggestion`): fit the surrogates,
   aim at a cost level of the front, draw candidates around the Pareto set
   and return the one maximising ``EI(output over the Pareto front at its
   predicted cost) * search density * P(success)`` among those in the level's
   cost band, under the cost ceilings and above the success floor.

This class keeps the observations and the state and dispatches to those parts.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from threadpoolctl import ThreadpoolController

from carbs._extras import install_command
from carbs._loggers import logger_factory
from carbs.optimizer import resampling, serialization
from carbs.optimizer.candidates import sample_around
from carbs.optimizer.config import CARBSParams
from carbs.optimizer.initial_design import initial_point
from carbs.optimizer.model_suggestion import SuggestionContext, fit_surrogate, suggest_from_model
from carbs.optimizer.pareto import (
    ObservationGroup,
    group_cost,
    group_observations,
    group_output,
    pareto_area,
    pareto_groups,
)
from carbs.optimizer.pending import pending_count_at, pending_inputs
from carbs.optimizer.reference_api import ReferenceAPI
from carbs.optimizer.space import (
    ChoiceSpace,
    Param,
    ParamValue,
    SearchSpace,
    SpaceError,
    _is_number,
)
from carbs.optimizer.surrogate import SurrogateHyperparameters, SurrogateModel
from carbs.optimizer.types import (
    SUGGESTION_ID_DICT_KEY,
    ObservationInBasic,
    ObservationInParam,
    ObserveOutput,
    ParamDictType,
    ParetoPoint,
    SuggestionInBasic,
    SuggestOutput,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BLAS: ThreadpoolController | None = None


def _single_threaded_blas() -> Any:
    """A context in which BLAS runs on one thread.

    The matrices are small (a few hundred rows): multi-threaded BLAS only adds
    contention here, several-fold when the cores are busy. The controller is
    made once: finding the BLAS libraries costs milliseconds, a suggestion's
    worth of work in a batch.
    """
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")



class CARBS(ReferenceAPI):
    """Cost-aware Pareto-region Bayesian search.

    Args:
        config: the optimizer's settings.
        params: the tuned parameters, each with its space and search center.

    ``suggest``, ``suggest_batch`` and ``observe`` are thread-safe. The
    optimizer draws from its own seeded generator and never touches global
    random state: the same seed and the same observations give the same
    suggestions.
    """

    def __init__(self, config: CARBSParams, params: Sequence[Param]) -> None:
        if not isinstance(config, CARBSParams):
            raise TypeError(f"config must be a CARBSParams, got {type(config).__name__}")
        config.validate()
        self.config = config
        self.params = list(params)
        self.search_space = SearchSpace(self.params)
        self.search_radius_in_basic = float(config.initial_search_radius)
        self.search_center_in_basic = np.zeros(self.search_space.dim)
        self.set_search_center({p.name: p.search_center for p in self.params})
        self.success_observations: list[ObservationInBasic] = []
        self.failure_observations: list[ObservationInBasic] = []
        self.outstanding_suggestions: dict[str, SuggestionInBasic] = {}
        self.resample_count = 0
        self.suggestion_count = 0
        self.remaining_cost_budget: float | None = None
        self._lock = threading.RLock()
        self._fit_cache: tuple[tuple[float, ...], SurrogateModel, list[ObservationGroup]] | None = None
        # Pareto groups and the resample frequency, kept while the observations stay the same.
        self._derived_cache: tuple[tuple[Any, ...], dict[tuple[Any, ...], Any]] | None = None
        # Hyperparameters of the last fit: the next fits reuse them until the
        # data grew enough (see carbs.optimizer.surrogate). Studies share them.
        self.surrogate_hyperparameters: SurrogateHyperparameters | None = None
        self._warn_unreachable_integers()
        self._wandb: Any = None
        if config.is_wandb_logging_enabled:
            self._init_wandb()

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------
    @property
    def real_dim(self) -> int:
        """Number of basic-space coordinates."""
        return self.search_space.dim

    @property
    def observation_count(self) -> int:
        """Successful plus failed observations."""
        return len(self.success_observations) + len(self.failure_observations)

    @property
    def complete_observations(self) -> list[ObservationInBasic]:
        """Successful observations of runs that finished (not stopped early, ``is_partial``).

        Only these enter the cost model, the Pareto set and resampling, and
        only these count toward the random phase: a stopped run's cost is not
        what its point costs, and its output is not a finished result.
        """
        return [o for o in self.success_observations if not o.is_partial]

    @property
    def cumulative_cost(self) -> float:
        """Summed cost of successful observations (as the reference counts it)."""
        return float(sum(o.cost for o in self.success_observations))

    @property
    def total_cost(self) -> float:
        """Summed cost of every observation, failures included."""
        return self.cumulative_cost + float(sum(o.cost for o in self.failure_observations))

    def set_search_center(self, input_in_param: ParamDictType) -> None:
        """Move the center the random phase samples around (a full parameter dict)."""
        values = {k: v for k, v in input_in_param.items() if k != SUGGESTION_ID_DICT_KEY}
        self.search_center_in_basic = self.search_space.to_basic(values, what="search center")

    def set_cost_budget(self, remaining: float | None) -> None:
        """Tell the optimizer how much cost budget is left (``None``: no budget).

        Model suggestions are then never predicted (at ``cost_quantile``) to
        cost more than ``max_budget_fraction`` of it. Studies with a cost budget
        call this before every suggestion; it is not part of the saved state.
        """
        if remaining is not None:
            if not _is_number(remaining) or math.isnan(float(remaining)):
                raise ValueError(f"set_cost_budget: remaining must be a number or None, got {remaining!r}")
            remaining = float(remaining)
        with self._lock:
            self.remaining_cost_budget = remaining

    def suggest(
        self, suggestion_id: str | None = None, is_suggestion_remembered: bool = True
    ) -> SuggestOutput:
        """Return the next point to run.

        Args:
            suggestion_id: id to remember the suggestion by (a UUID by default).
            is_suggestion_remembered: keep it as pending until observed, so that
                later suggestions avoid it.

        Returns:
            ``SuggestOutput(suggestion, log)``: ``suggestion`` holds the
            parameter values and, when remembered, ``"suggestion_uuid"``.
        """
        with self._lock:
            return self._suggest_one(suggestion_id, is_suggestion_remembered)

    def fit_surrogates(self) -> None:
        """Fit the surrogate models now (once the random phase is over), so that the
        next ``suggest`` only scores candidates; the fit is kept until the next observation."""
        with self._lock, _single_threaded_blas():
            if len(self.complete_observations) >= self.config.num_random_samples:
                self._fitted_surrogate()

    def suggest_batch(self, n: int) -> list[SuggestOutput]:
        """Return ``n`` different suggestions for ``n`` idle workers, all pending.

        Each one is made knowing the ones before it are pending, and the
        models are fitted once for the whole batch. The output guessed for a
        pending point (a Thompson draw by default) is drawn once per batch,
        given the guesses before it, so that each suggestion after the first
        adds one point to the posterior rather than conditioning it anew.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"suggest_batch: n must be a positive integer, got {n!r}")
        with self._lock, _single_threaded_blas():
            return [self._suggest_one(None, True, in_batch=i > 0) for i in range(n)]

    def observe(self, new_observation_in_param: ObservationInParam) -> ObserveOutput:
        """Record a finished run; its pending suggestion (if any) is forgotten.

        Non-finite outputs are recorded as failures. Raises ``ValueError`` naming
        the field for unknown or missing parameters, out-of-bounds values, and a
        cost that is not finite and > 0.
        """
        with self._lock:
            basic = self._to_basic_observation(new_observation_in_param)
            self.forget_suggestion(new_observation_in_param.input)
            failed = bool(new_observation_in_param.is_failure) or not math.isfinite(basic.output)
            (self.failure_observations if failed else self.success_observations).append(basic)
            logs = self._observation_log(new_observation_in_param, failed)
            if self.config.is_saved_on_every_observation:
                self.save_to_file(
                    Path(self.config.checkpoint_dir) / f"carbs_{self.observation_count}obs.json"
                )
            if self._wandb is not None:
                self._wandb.log_observation(logs)
            return ObserveOutput(logs=logs)

    def forget_suggestion(self, suggestion_to_forget: dict[str, Any]) -> None:
        """Drop a pending suggestion, identified by its ``suggestion_uuid``.

        Unknown ids are logged and ignored; dicts without an id are ignored.
        """
        with self._lock:
            key = suggestion_to_forget.get(SUGGESTION_ID_DICT_KEY)
            if key is None:
                return
            if str(key) in self.outstanding_suggestions:
                del self.outstanding_suggestions[str(key)]
            else:
                logger.warning("forget_suggestion: unknown suggestion_uuid %r (ignored)", key)

    def initialize_from_observations(
        self, observations: Sequence[ObservationInParam], recenter: bool = True
    ) -> ObserveOutput:
        """Add many observations at once and center the search on the best one.

        With ``recenter=False`` the search center stays where it is (a study
        rebuilding its optimizer keeps the user's center).
        """
        with self._lock:
            added: list[ObservationInParam] = []
            for obs in observations:
                basic = self._to_basic_observation(obs)
                failed = bool(obs.is_failure) or not math.isfinite(basic.output)
                (self.failure_observations if failed else self.success_observations).append(basic)
                if not failed and not basic.is_partial:
                    added.append(obs)
            # Resampling is paced by new observations: a bulk load must not be
            # followed by a long run of back-to-back resamples catching up.
            freq = self.config.resample_frequency
            if freq > 0:
                due = len(self.complete_observations) // freq - 1
                self.resample_count = max(self.resample_count, due)
            if recenter and added:
                sign = self.config.better_direction_sign
                best = max(added, key=lambda o: float(o.output) * sign)
                self.set_search_center(best.input)
            elif recenter:
                logger.warning("initialize_from_observations: no successful observation to center on")
            return ObserveOutput(logs={"observation_count": self.observation_count})

    def get_pareto_set(self, is_conservative: bool | None = None) -> list[ParetoPoint]:
        """The current performance-cost Pareto set in parameter space, cheapest first."""
        with self._lock:
            if is_conservative is None:
                is_conservative = self.config.is_pareto_group_selection_conservative
            groups = self._pareto_groups(is_conservative)
            return [
                ParetoPoint(
                    input=self.search_space.from_basic(g[0].real_number_input)[0],
                    output=group_output(g),
                    cost=group_cost(g),
                    sample_count=len(g),
                )
                for g in groups
            ]

    # -- state ---------------------------------------------------------------
    def get_state_dict(self) -> dict[str, Any]:
        """The full state as a JSON-compatible dict (see :mod:`carbs.optimizer.serialization`)."""
        with self._lock:
            to_param = self.search_space.from_basic

            def obs_dict(o: ObservationInBasic) -> dict[str, Any]:
                entry = {
                    "input": to_param(o.real_number_input)[0],
                    "basic": [float(v) for v in o.real_number_input],
                    "output": serialization.encode_float(o.output),
                    "cost": o.cost,
                    "suggestion_id": o.suggestion_id,
                }
                if o.is_partial:  # only when set: states without stopped runs stay version 1
                    entry["is_partial"] = True
                return entry

            state: dict[str, Any] = {
                "format": serialization.FORMAT_NAME,
                "version": serialization.FORMAT_VERSION,
                "config": self.config.to_dict(),
                "params": [p.to_dict() for p in self.params],
                "search_center": {
                    "input": to_param(self.search_center_in_basic)[0],
                    "basic": [float(v) for v in self.search_center_in_basic],
                },
                "search_radius": self.search_radius_in_basic,
                "success_observations": [obs_dict(o) for o in self.success_observations],
                "failure_observations": [obs_dict(o) for o in self.failure_observations],
                # A list: the order of pending points matters to Thompson sampling.
                "outstanding_suggestions": [
                    {
                        "id": k,
                        "input": to_param(s.real_number_input)[0],
                        "basic": [float(v) for v in s.real_number_input],
                        "log_info": s.log_info,
                    }
                    for k, s in self.outstanding_suggestions.items()
                ],
                "resample_count": self.resample_count,
                "suggestion_count": self.suggestion_count,
            }
            state["version"] = serialization.version_to_write(state)
            return state

    @classmethod
    def load_state_dict(cls, state: dict[str, Any]) -> CARBS:
        """Rebuild an optimizer from :meth:`get_state_dict` output (any released version)."""
        state = serialization.upgrade(copy.deepcopy(state))
        try:
            config = CARBSParams.from_dict(dict(state["config"]))
            config.is_wandb_logging_enabled = False
            params = [Param.from_dict(p) for p in state["params"]]
            opt = cls(config, params)
            opt.search_center_in_basic = opt._stored_basic(state["search_center"], "search_center")
            opt.search_radius_in_basic = serialization.decode_float(state["search_radius"], "search_radius")
            for key, failed in (("success_observations", False), ("failure_observations", True)):
                for i, o in enumerate(state[key]):
                    field = f"{key}[{i}]"
                    basic = opt._stored_basic(o, field)
                    output = serialization.decode_float(o["output"], f"{field}.output")
                    cost = serialization.decode_float(o["cost"], f"{field}.cost")
                    if not (math.isfinite(cost) and (cost > 0 or (failed and cost == 0)) and (failed or math.isfinite(output))):
                        raise serialization.StateError(f"state field {field!r}: bad output {output!r} or cost {cost!r}")
                    partial = o.get("is_partial", False)
                    if not isinstance(partial, bool) or (partial and failed):
                        raise serialization.StateError(f"state field {field!r}: bad is_partial {partial!r}")
                    target = opt.failure_observations if failed else opt.success_observations
                    target.append(ObservationInBasic(basic, output, cost, o.get("suggestion_id"), partial))
            for i, s in enumerate(state["outstanding_suggestions"]):
                basic = opt._stored_basic(s, f"outstanding_suggestions[{i}]")
                opt.outstanding_suggestions[str(s["id"])] = SuggestionInBasic(basic, dict(s.get("log_info", {})))
            opt.resample_count = int(state["resample_count"])
            opt.suggestion_count = int(state["suggestion_count"])
            if not (0 < opt.search_radius_in_basic <= 1e6 and opt.resample_count >= 0 and opt.suggestion_count >= 0):
                raise serialization.StateError("CARBS state has a bad search_radius, resample_count or suggestion_count")
        except serialization.StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise serialization.StateError(f"CARBS state is malformed: {type(e).__name__}: {e}") from None
        return opt

    def _stored_basic(self, entry: dict[str, Any], field: str) -> np.ndarray:
        """The basic row of a stored point: the exact one saved, checked against its input.

        Parameter values do not map back to basic space bit for bit, and the
        models would then differ in the last digits; the saved row avoids that.
        """
        from_input = self.search_space.to_basic(entry["input"], what=field)
        if "basic" not in entry:
            return from_input
        row = np.asarray(entry["basic"], dtype=float)
        if row.shape != from_input.shape or not np.allclose(row, from_input, rtol=1e-9, atol=1e-9):
            raise serialization.StateError(f"state field {field!r}: 'basic' does not match 'input'")
        return row

    def save_to_file(self, path: str | Path) -> None:
        """Write the state as JSON to ``path`` (atomically)."""
        serialization.write_atomic(path, self.serialize())

    @staticmethod
    def load_from_file(path: str | Path) -> CARBS:
        """Load an optimizer saved with :meth:`save_to_file`."""
        return CARBS.load_state_dict(serialization.loads(Path(path).read_bytes()))

    def serialize(self) -> str:
        """The state as a JSON string."""
        return serialization.dumps(self.get_state_dict())

    @classmethod
    def load_from_string(cls, state: str) -> CARBS:
        """Load an optimizer from :meth:`serialize` output."""
        return cls.load_state_dict(serialization.loads(state))

    def warm_start(
        self,
        filename: str | Path,
        is_prior_observation_valid: bool = False,
        added_parameters: ParamDictType | None = None,
    ) -> None:
        """Start from an earlier run saved with :meth:`save_to_file`.

        With ``is_prior_observation_valid`` the earlier observations are added
        (those outside the current space are skipped with a warning);
        ``added_parameters`` gives the value the earlier run implicitly used for
        parameters it did not have. Otherwise only the search center moves to the
        earlier run's best point. Added parameters also set the search center.
        """
        prior = CARBS.load_from_file(filename)
        added = dict(added_parameters or {})
        prior_keys, current_keys = set(prior.search_space.names), set(self.search_space.names)
        with self._lock:
            if is_prior_observation_valid:
                if prior_keys - current_keys:
                    raise ValueError(
                        f"warm_start: the earlier run has parameters {sorted(prior_keys - current_keys)} "
                        "that this search does not"
                    )
                if current_keys - prior_keys - set(added):
                    raise ValueError(
                        f"warm_start: pass added_parameters for {sorted(current_keys - prior_keys - set(added))}"
                    )
                if set(added) & prior_keys:
                    raise ValueError(
                        f"warm_start: added_parameters {sorted(set(added) & prior_keys)} already exist in the earlier run"
                    )
                for obs, failed in [(o, False) for o in prior.success_observations] + [
                    (o, True) for o in prior.failure_observations
                ]:
                    values = prior.search_space.from_basic(obs.real_number_input)[0]
                    values.update(added)
                    try:
                        basic = self._to_basic_observation(
                            ObservationInParam(values, obs.output, obs.cost, failed, obs.is_partial)
                        )
                    except ValueError as e:
                        logger.warning("warm_start: skipping observation %s: %s", values, e)
                        continue
                    (self.failure_observations if failed else self.success_observations).append(basic)
                self.resample_count = prior.resample_count
            elif prior.complete_observations:
                sign = self.config.better_direction_sign
                best = max(prior.complete_observations, key=lambda o: o.output * sign)
                center = self.search_space.from_basic(self.search_center_in_basic)[0]
                best_values = prior.search_space.from_basic(best.real_number_input)[0]
                center.update({k: v for k, v in best_values.items() if k in current_keys})
                try:
                    self.set_search_center(center)
                except SpaceError as e:
                    logger.warning("warm_start: earlier best point not usable as center: %s", e)
            if added:
                center = self.search_space.from_basic(self.search_center_in_basic)[0]
                center.update({k: v for k, v in added.items() if k in current_keys})
                self.set_search_center(center)

    # ------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------
    def _to_basic_observation(self, obs: ObservationInParam) -> ObservationInBasic:
        if not isinstance(obs, ObservationInParam):
            raise TypeError(f"expected an ObservationInParam, got {type(obs).__name__}")
        if not isinstance(obs.input, dict):
            raise ValueError(f"observation.input must be a dict of parameter values, got {obs.input!r}")
        values = {k: v for k, v in obs.input.items() if k != SUGGESTION_ID_DICT_KEY}
        basic = self.search_space.to_basic(values, what="observation.input")
        if not isinstance(obs.is_failure, (bool, np.bool_)):
            raise ValueError(f"observation.is_failure must be a bool, got {obs.is_failure!r}")
        if not isinstance(obs.is_partial, (bool, np.bool_)):
            raise ValueError(f"observation.is_partial must be a bool, got {obs.is_partial!r}")
        if obs.is_partial and obs.is_failure:
            raise ValueError("observation.is_partial and is_failure cannot both be set: a failure has no output")
        output, cost = obs.output, obs.cost
        if not _is_number(output):  # also rejects ints beyond float range
            if not (obs.is_failure and output is None):
                raise ValueError(f"observation.output must be a number, got {output!r}")
            output = math.nan
        if not _is_number(cost):
            raise ValueError(f"observation.cost must be a number, got {cost!r}")
        if not (math.isfinite(float(cost)) and (float(cost) > 0 or (obs.is_failure and float(cost) == 0))):
            raise ValueError(f"observation.cost must be finite and > 0 (or 0 for a failure), got {cost!r}")
        uid = obs.input.get(SUGGESTION_ID_DICT_KEY)
        return ObservationInBasic(
            basic, float(output), float(cost), None if uid is None else str(uid), bool(obs.is_partial)
        )

    def _next_rng(self) -> np.random.Generator:
        seq = [self.config.seed, self.suggestion_count, len(self.success_observations), len(self.failure_observations)]
        self.suggestion_count += 1
        return np.random.default_rng(seq)

    def _observations_fingerprint(self) -> tuple[float, ...]:
        """Counts and sums that tell the observations apart from any other set of them.

        Clients may pop observations and add others (as wandb-carbs does after
        a failed suggest): the sums tell such a change from the same data.
        """
        return (
            len(self.success_observations),
            len(self.failure_observations),
            sum(o.is_partial for o in self.success_observations),
            sum(o.cost for o in self.success_observations),
            sum(o.output for o in self.success_observations),
            sum(o.cost for o in self.failure_observations),
        )

    def _cached(self, what: tuple[Any, ...], make: Callable[[], T]) -> T:
        """``make()``, kept until the observations or the settings change (a batch
        of suggestions needs the same Pareto groups for each of them)."""
        config = self.config
        key = (
            self._observations_fingerprint(),
            config.min_pareto_cost_fraction,
            config.better_direction_sign,
            config.is_pareto_cheap_grouping_within_noise,
            config.resample_frequency,
            config.resampling,
            config.is_pareto_group_selection_conservative,
        )
        if self._derived_cache is None or self._derived_cache[0] != key:
            self._derived_cache = (key, {})
        store = self._derived_cache[1]
        if what not in store:
            store[what] = make()
        return cast(T, store[what])

    def _pareto_groups(self, is_conservative: bool) -> list[ObservationGroup]:
        def make() -> list[ObservationGroup]:
            groups = group_observations(self.complete_observations)
            tolerance = None
            if self.config.is_pareto_cheap_grouping_within_noise:
                tolerance = resampling.pooled_noise(groups) or 0.0
            return pareto_groups(
                groups,
                self.config.min_pareto_cost_fraction,
                self.config.better_direction_sign,
                is_conservative,
                tolerance,
            )

        return list(self._cached(("pareto", is_conservative), make))

    def _is_resample_due(self) -> bool:
        if self.config.resample_frequency == 0:
            return False

        def frequency() -> int:
            groups = group_observations(self.complete_observations)
            pareto = self._pareto_groups(self.config.is_pareto_group_selection_conservative)
            return resampling.resample_frequency(self.config, groups, pareto)

        complete = len(self.complete_observations)
        return resampling.is_resample_due(complete, self.resample_count, self._cached(("frequency",), frequency))

    def _resample_point(self) -> np.ndarray | None:
        """The Pareto point to run again when a resample is due, else ``None``.

        A point already pending is not resampled: running it twice at once
        would hand out the same point to two workers, and its pending run will
        average its noise as well; the models suggest instead, and the
        resample stays due.
        """
        if not self._is_resample_due():
            return None
        pending = list(pending_inputs(self.outstanding_suggestions, self.real_dim))
        point = resampling.resample_point(
            self._pareto_groups(is_conservative=False), pending, self.config.better_direction_sign
        )
        if pending_count_at(pending, point) > 0:
            return None
        return point

    def _suggest_one(self, suggestion_id: str | None, remember: bool, in_batch: bool = False) -> SuggestOutput:
        # Drives the cost levels. The observation count stands in for callers
        # who rebuild the optimizer for every suggestion (the Optuna sampler),
        # so that they still walk through the levels.
        index = max(self.suggestion_count, self.observation_count)
        rng = self._next_rng()
        log_info: dict[str, float] = {}
        if len(self.complete_observations) < self.config.num_random_samples:
            point, kind = initial_point(
                self.search_space,
                self.search_center_in_basic,
                self.search_radius_in_basic,
                self.complete_observations,  # log cost is fitted on these
                self.config,
                rng,
            )
        elif (resample := self._resample_point()) is not None:
            kind, point = "resample", resample
            self.resample_count += 1
        else:
            kind = "model"
            try:
                with _single_threaded_blas():
                    model, groups = self._fitted_surrogate()
                    ctx = SuggestionContext(
                        space=self.search_space,
                        pareto=groups,
                        pending=pending_inputs(self.outstanding_suggestions, self.real_dim),
                        radius=self.search_radius_in_basic,
                        index=index,
                        remaining_budget=self.remaining_cost_budget,
                        success_costs=np.array([o.cost for o in self.complete_observations]),
                        # After the first of a batch, the pending points grow by one each time.
                        keeps_pending_guesses=in_batch,
                    )
                    point, log_info = suggest_from_model(model, ctx, self.config, rng)
            except Exception as e:  # any model failure: keep the sweep going
                logger.warning("surrogate models could not be used (%s: %s); sampling around the Pareto set", type(e).__name__, e)
                kind = "fallback"
                origins = np.stack([g[0].real_number_input for g in self._pareto_groups(True)])
                point = sample_around(self.search_space, origins, 1, self.search_radius_in_basic, rng)[0][0]
        suggestion = self.search_space.from_basic(point)[0]
        out: dict[str, Any] = dict(suggestion)
        if remember:
            sid = suggestion_id if suggestion_id is not None else str(uuid.uuid4())
            out[SUGGESTION_ID_DICT_KEY] = sid
            self.outstanding_suggestions[sid] = SuggestionInBasic(point, log_info)
        log = self._suggestion_log(suggestion, kind, log_info)
        if self._wandb is not None:
            self._wandb.log_suggestion(log)
        return SuggestOutput(suggestion=out, log=log)

    def _fitted_surrogate(self) -> tuple[SurrogateModel, list[ObservationGroup]]:
        """Surrogates fitted on the observations, cached until the next observation.

        Fitting draws from a generator seeded by the observation counts only,
        so a cached fit and a fresh one are identical.
        """
        fingerprint = self._observations_fingerprint()
        key = [int(v) for v in fingerprint[:3]]  # the counts
        if self._fit_cache is not None and self._fit_cache[0] == fingerprint:
            return self._fit_cache[1], self._fit_cache[2]
        fit_rng = np.random.default_rng([self.config.seed, *key, 7])
        groups = self._pareto_groups(self.config.is_pareto_group_selection_conservative)
        model = fit_surrogate(
            self.success_observations, self.failure_observations, groups, self.config, self.real_dim, fit_rng,
            previous=self.surrogate_hyperparameters,
        )
        self.surrogate_hyperparameters = model.hyperparameters
        self._fit_cache = (fingerprint, model, groups)
        return model, groups

    def _base_log(self) -> dict[str, Any]:
        return {
            "observation_count": self.observation_count,
            "cumulative_cost": self.cumulative_cost,
            "failed_observation_count": len(self.failure_observations),
        }

    def _suggestion_log(self, suggestion: dict[str, ParamValue], kind: str, info: dict[str, float]) -> dict[str, Any]:
        log = self._base_log()
        log["suggestion_kind"] = kind
        log.update({f"suggestion/{k}": v for k, v in suggestion.items()})
        log.update({f"suggestion_meta/{k}": v for k, v in info.items()})
        return log

    def _observation_log(self, obs: ObservationInParam, failed: bool) -> dict[str, Any]:
        log = self._base_log()
        log.update({f"observation/{k}": v for k, v in obs.input.items() if k != SUGGESTION_ID_DICT_KEY})
        log["observation/is_failure"] = int(failed)
        if not failed:
            log["observation/output"] = float(obs.output)
            log["observation/cost"] = float(obs.cost)
        if self.complete_observations:
            sign = self.config.better_direction_sign
            best = max(self.complete_observations, key=lambda o: o.output * sign)
            best_values = self.search_space.from_basic(best.real_number_input)[0]
            log.update({f"best_observation/{k}": v for k, v in best_values.items()})
            log["best_observation/output"] = best.output
            log["best_observation/cost"] = best.cost
            groups = self._pareto_groups(self.config.is_pareto_group_selection_conservative)
            log["pareto_group_count"] = len(groups)
            log["pareto_area"] = pareto_area(groups)
        return log

    def _warn_unreachable_integers(self) -> None:
        """Warn when the search radius can hardly reach an integer's neighbour."""
        r = self.search_radius_in_basic
        for p, s in zip(self.params, self.search_space.slices):
            space = p.space
            if isinstance(space, ChoiceSpace) or not space.is_integer:
                continue
            here = self.search_center_in_basic[s.start]
            value = float(space.from_basic(np.array([here]))[0])
            step = abs(float(space.to_basic(np.array([value + space.rounding_factor]))[0]) - here)
            # Reaching the neighbour needs a move of half a step: under 5% chance beyond 2 radii.
            if step / 2 > 2 * r:
                logger.warning(
                    "parameter %r: one integer step (%g) is %.2f basic units, far beyond the search "
                    "radius %.2f, so neighbouring values will rarely be tried; lower its scale",
                    p.name,
                    space.rounding_factor,
                    step,
                    r,
                )

    def _init_wandb(self) -> None:
        try:
            factory = logger_factory("wandb")
        except ImportError as e:
            raise ImportError(
                f"is_wandb_logging_enabled=True needs Weights & Biases: {install_command('wandb')}"
            ) from e
        run_config = {**self.config.to_dict(), "params": [p.to_dict() for p in self.params]}
        self._wandb = factory(self.config.wandb_params, run_config)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_fit_cache"] = None
        state["_derived_cache"] = None
        state["_wandb"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
