"""Private names of the reference implementation that its clients call on a ``CARBS``.

Code written for the reference (imbue-ai/carbs) reaches past its public API:
``wandb-carbs``, which drives it from W&B sweeps, reseeds the optimizer with
``_set_seed``, registers the runs of other sweep agents as pending with
``_remember_suggestion`` and ``_param_space_real_to_basic_space_real``, and
reads ``params``. ``CARBS`` inherits this mixin so that such code keeps
working, with the meaning each name has there, in this implementation's
terms (numpy rows instead of torch tensors). ``docs/concepts.md`` lists
them as a kept promise.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from carbs.optimizer.config import CARBSParams, OutstandingSuggestionEstimatorEnum
from carbs.optimizer.pareto import ObservationGroup, group_observations, pareto_groups
from carbs.optimizer.space import Param, ParamSpace, SearchSpace
from carbs.optimizer.surrogate import SurrogateModel as _Surrogate
from carbs.optimizer.types import (
    SUGGESTION_ID_DICT_KEY,
    ObservationInBasic,
    ParamDictType,
    SuggestionInBasic,
)


@dataclass
class SurrogateModelParams:
    """Settings of a stand-alone :class:`SurrogateModel` (the reference's names and defaults).

    ``device`` and ``min_category_observations`` are accepted and unused: the
    models run on the CPU with numpy, and categories are one-hot coordinates.
    """

    real_dims: int
    better_direction_sign: int
    device: str = "cpu"
    min_category_observations: int = 3
    scale_length: float = 1.0
    outstanding_suggestion_estimator: OutstandingSuggestionEstimatorEnum = (
        OutstandingSuggestionEstimatorEnum.MEAN
    )
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.real_dims, int) or isinstance(self.real_dims, bool) or self.real_dims < 1:
            raise ValueError(f"SurrogateModelParams.real_dims must be a positive integer, got {self.real_dims!r}")
        if self.better_direction_sign not in (1, -1) or isinstance(self.better_direction_sign, bool):
            raise ValueError(
                "SurrogateModelParams.better_direction_sign must be 1 (maximise) or -1 (minimise), "
                f"got {self.better_direction_sign!r}"
            )


@dataclass
class SurrogateObservationOutputs:
    """Predictions of every model at ``m`` points (arrays ``(m,)``; Pareto ones ``None`` before ``fit_pareto_set``)."""

    surrogate_output: np.ndarray
    surrogate_var: np.ndarray
    cost_estimate: np.ndarray
    target_estimate: np.ndarray
    target_var: np.ndarray
    success_probability: np.ndarray
    pareto_surrogate: np.ndarray | None
    pareto_estimate: np.ndarray | None


class SurrogateModel:
    """The surrogate models behind a suggestion, fitted from basic-space records.

    The reference's interface over this implementation's models: fit
    ``fit_observations`` first, then optionally ``fit_suggestions``,
    ``fit_failures`` and ``fit_pareto_set``, and read predictions with
    ``observe_surrogate``. Inputs are basic-space rows (numpy arrays, or
    anything ``np.asarray`` accepts, such as CPU tensors).
    """

    def __init__(self, params: SurrogateModelParams) -> None:
        self.params = params
        self._model = _Surrogate(params.better_direction_sign, np.random.default_rng(params.seed))
        self._pareto_fitted = False

    def _rows(self, records: Sequence[Any], what: str) -> np.ndarray:
        if len(records) == 0:
            return np.empty((0, self.params.real_dims))
        X = np.stack([np.asarray(r.real_number_input, dtype=float) for r in records])
        if X.shape[1] != self.params.real_dims:
            raise ValueError(
                f"{what}: rows have {X.shape[1]} coordinates, but real_dims is {self.params.real_dims}"
            )
        return X

    def fit_observations(self, success_observations: Sequence[ObservationInBasic]) -> None:
        """Fit the output and cost models on successful observations (at least one)."""
        if len(success_observations) == 0:
            raise ValueError("fit_observations: needs at least one successful observation")
        X = self._rows(success_observations, "fit_observations")
        outputs = np.array([o.output for o in success_observations], dtype=float)
        costs = np.array([o.cost for o in success_observations], dtype=float)
        self._model.fit_observations(X, outputs, costs)
        self._X_success = X

    def fit_suggestions(self, outstanding_suggestions: Sequence[SuggestionInBasic]) -> None:
        """Fill in pending suggestions with guessed outputs (``outstanding_suggestion_estimator``)."""
        X = self._rows(outstanding_suggestions, "fit_suggestions")
        self._model.fit_pending(X, self.params.outstanding_suggestion_estimator)

    def fit_failures(
        self,
        success_observations: Sequence[ObservationInBasic],
        failure_observations: Sequence[ObservationInBasic],
    ) -> None:
        """Fit the failure classifier (a no-op unless both outcomes were seen)."""
        self._model.fit_failures(
            self._rows(success_observations, "fit_failures"),
            self._rows(failure_observations, "fit_failures"),
        )

    def fit_pareto_set(self, pareto_observations: Sequence[ObservationInBasic]) -> None:
        """Fit the Pareto-front model (output as a function of log cost)."""
        if len(pareto_observations) == 0:
            raise ValueError("fit_pareto_set: needs at least one observation")
        self._model.fit_pareto(
            np.array([o.cost for o in pareto_observations], dtype=float),
            np.array([o.output for o in pareto_observations], dtype=float),
        )
        self._pareto_fitted = True

    def get_pareto_surrogate_for_cost(self, cost: float) -> float:
        """The Pareto front's value (surrogate units) at ``cost``, clamped to the front's costs."""
        if not self._pareto_fitted:
            raise ValueError("get_pareto_surrogate_for_cost: call fit_pareto_set first")
        return float(self._model.pareto_surrogate_at(np.log(np.array([float(cost)])))[0])

    def observe_surrogate(self, samples_in_basic: Any) -> SurrogateObservationOutputs:
        """Predictions of every fitted model at basic rows ``(m, real_dims)``."""
        if self._model.output_model is None:
            raise ValueError("observe_surrogate: call fit_observations first")
        X = np.atleast_2d(np.asarray(samples_in_basic, dtype=float))
        pred = self._model.predict(X)
        sd = np.sqrt(np.maximum(pred.surrogate_var, 0.0))
        hi = self._model.surrogate_to_output(pred.surrogate_output + sd)
        lo = self._model.surrogate_to_output(pred.surrogate_output - sd)
        pareto = pred.pareto_surrogate if self._pareto_fitted else None
        return SurrogateObservationOutputs(
            surrogate_output=pred.surrogate_output,
            surrogate_var=pred.surrogate_var,
            cost_estimate=pred.cost_estimate,
            target_estimate=pred.target_estimate,
            target_var=np.square((hi - lo) / 2.0),
            success_probability=pred.success_probability,
            pareto_surrogate=pareto,
            pareto_estimate=None if pareto is None else self._model.surrogate_to_output(pareto),
        )


class ReferenceAPI:
    """The reference's private ``CARBS`` methods, kept for the clients that call them."""

    if TYPE_CHECKING:  # provided by CARBS
        config: CARBSParams
        params: list[Param]
        search_space: SearchSpace
        search_radius_in_basic: float
        success_observations: list[ObservationInBasic]
        outstanding_suggestions: dict[str, SuggestionInBasic]
        _lock: threading.RLock
        _fit_cache: Any

        @property
        def real_dim(self) -> int: ...

    def _set_seed(self, seed: int) -> None:
        """Reseed this optimizer (its own generator; global random state is left alone).

        ``wandb-carbs`` calls it with the time so that sweep agents sharing one
        set of observations suggest different points.
        """
        with self._lock:
            self.config = dataclasses.replace(self.config, seed=seed)
            self._fit_cache = None  # fitted with the old seed

    def _param_space_real_to_basic_space_real(self, input_in_param: ParamDictType) -> np.ndarray:
        """One parameter dict as its basic row ``(real_dim,)``; ``suggestion_uuid`` is ignored."""
        values = {k: v for k, v in input_in_param.items() if k != SUGGESTION_ID_DICT_KEY}
        return self.search_space.to_basic(values, what="input")

    def _basic_space_to_param_space(self, real_number_input: Any) -> ParamDictType:
        """One basic row as a parameter dict (rounded as suggestions are)."""
        row = np.asarray(real_number_input, dtype=float)
        if row.shape != (self.real_dim,):
            raise ValueError(f"real_number_input must have shape ({self.real_dim},), got {row.shape}")
        return self.search_space.from_basic(row)[0]

    def _remember_suggestion(
        self,
        suggestion_in_param: dict[str, Any],
        suggestion_in_basic: SuggestionInBasic,
        suggestion_id: str | None,
    ) -> dict[str, Any]:
        """Record a point as pending under ``suggestion_id`` (a new UUID if ``None``).

        The id is written into ``suggestion_in_param`` as ``suggestion_uuid``,
        which is returned; observing that dict later clears the pending point.
        """
        row = np.asarray(suggestion_in_basic.real_number_input, dtype=float)
        if row.shape != (self.real_dim,):
            raise ValueError(
                f"suggestion_in_basic.real_number_input must have shape ({self.real_dim},), got {row.shape}"
            )
        with self._lock:
            sid = str(uuid.uuid4()) if suggestion_id is None else str(suggestion_id)
            suggestion_in_param[SUGGESTION_ID_DICT_KEY] = sid
            self.outstanding_suggestions[sid] = SuggestionInBasic(row, dict(suggestion_in_basic.log_info))
            return suggestion_in_param

    @property
    def param_space_by_name(self) -> dict[str, ParamSpace]:
        """Each parameter's space, by name."""
        return {p.name: p.space for p in self.params}

    @property
    def _real_number_space_by_name(self) -> OrderedDict[str, ParamSpace]:
        """The spaces in basic-row order (categorical ones included: they are one-hot columns)."""
        return OrderedDict((p.name, p.space) for p in self.params)

    def _get_pareto_groups(self, is_conservative: bool = False) -> tuple[ObservationGroup, ...]:
        """The Pareto groups of the successful observations, cheapest first."""
        with self._lock:
            return tuple(
                pareto_groups(
                    group_observations(self.success_observations),
                    self.config.min_pareto_cost_fraction,
                    self.config.better_direction_sign,
                    is_conservative,
                )
            )

    def get_surrogate_model(self) -> SurrogateModel:
        """An unfitted :class:`SurrogateModel` with this optimizer's settings."""
        return SurrogateModel(
            SurrogateModelParams(
                real_dims=self.real_dim,
                better_direction_sign=self.config.better_direction_sign,
                scale_length=self.search_radius_in_basic,
                outstanding_suggestion_estimator=self.config.outstanding_suggestion_estimator,
                seed=self.config.seed,
            )
        )
