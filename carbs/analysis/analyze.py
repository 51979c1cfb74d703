"""One call that turns finished trials into Pareto set, scaling laws and front fit."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from carbs.analysis.extrapolation import Extrapolation, extrapolate
from carbs.analysis.front import FrontFit, fit_pareto_front
from carbs.analysis.scaling import (
    InsufficientDataError,
    ScalingLaw,
    fit_scaling_laws,
    pareto_weights,
)
from carbs.optimizer.space import Param
from carbs.optimizer.types import ObservationInParam, ParetoPoint

logger = logging.getLogger(__name__)


class StudyLike(Protocol):
    """What the analysis needs from a study (``carbs.Study`` provides it)."""

    @property
    def params(self) -> list[Param]:
        """The tuned parameters."""

    @property
    def better_direction_sign(self) -> int:
        """``1`` maximising, ``-1`` minimising."""

    def observations(self) -> list[ObservationInParam]:
        """Finished trials, in order."""


def is_success(obs: ObservationInParam) -> bool:
    """A finished trial that produced a finite output."""
    return not obs.is_failure and math.isfinite(float(obs.output))


@dataclass
class ScalingAnalysis:
    """Everything the plots and the report show about a set of finished trials.

    Build it with :func:`analyze` (neutral inputs) or :meth:`from_study`.

    Attributes:
        observations: all finished trials, in the order they finished.
        params: the study's parameters.
        better_direction_sign: ``1`` maximising, ``-1`` minimising.
        pareto_points: the performance-cost Pareto set, cheapest first.
        pareto_weights: the fit weight of each Pareto point.
        laws: scaling laws by parameter name.
        skipped: parameters without a law, with the reason.
        front: the Pareto-front fit, or ``None`` (see ``front_skipped``).
        front_skipped: why the front was not fitted, if it was not.
        confidence: level of all intervals.
        trial_numbers: the study's trial number of each observation (the numbers
            every command shows); empty when analysed from bare observations.
    """

    observations: list[ObservationInParam]
    params: list[Param]
    better_direction_sign: int
    pareto_points: list[ParetoPoint]
    pareto_weights: np.ndarray
    laws: dict[str, ScalingLaw]
    skipped: dict[str, str]
    front: FrontFit | None
    front_skipped: str | None
    confidence: float
    settings: dict[str, Any] = field(default_factory=dict)
    trial_numbers: list[int] = field(default_factory=list)

    def trial_number(self, index: int) -> int:
        """The trial number of ``observations[index]`` (the index itself without a study)."""
        return self.trial_numbers[index] if self.trial_numbers else index

    @property
    def successes(self) -> list[ObservationInParam]:
        """Finished trials with a finite output."""
        return [o for o in self.observations if is_success(o)]

    @property
    def failures(self) -> list[ObservationInParam]:
        """Finished trials that failed (or reported a non-finite output)."""
        return [o for o in self.observations if not is_success(o)]

    @property
    def observed_cost_range(self) -> tuple[float, float]:
        """``(min, max)`` cost of the successful trials (``(nan, nan)`` if none)."""
        costs = [float(o.cost) for o in self.successes]
        if not costs:
            return (math.nan, math.nan)
        return (min(costs), max(costs))

    @property
    def total_cost(self) -> float:
        """Sum of the cost of every finished trial, failures included."""
        return float(sum(float(o.cost) for o in self.observations))

    def best(self) -> ObservationInParam | None:
        """The successful trial with the best output (earliest on ties)."""
        succ = self.successes
        if not succ:
            return None
        return max(succ, key=lambda o: float(o.output) * self.better_direction_sign)

    def extrapolate(self, target_cost: float) -> Extrapolation:
        """Predicted settings and best output at ``target_cost``; see :func:`extrapolate`."""
        if not self.successes:
            raise InsufficientDataError("no successful trials to extrapolate from")
        return extrapolate(
            target_cost,
            self.params,
            self.laws,
            self.pareto_points,
            self.observed_cost_range,
            self.front,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible summary (laws, front, Pareto set, counts)."""
        best = self.best()
        return {
            "n_trials": len(self.observations),
            "n_failures": len(self.failures),
            "better_direction_sign": self.better_direction_sign,
            "observed_cost_range": list(self.observed_cost_range),
            "total_cost": self.total_cost,
            "best": None
            if best is None
            else {"input": _param_values(best.input, self.params), "output": best.output,
                  "cost": best.cost},
            "pareto_set": [
                {"input": dict(p.input), "output": p.output, "cost": p.cost,
                 "sample_count": p.sample_count, "weight": float(w)}
                for p, w in zip(self.pareto_points, self.pareto_weights)
            ],
            "laws": {name: law.to_dict() for name, law in self.laws.items()},
            "skipped": dict(self.skipped),
            "front": None if self.front is None else self.front.to_dict(),
            "front_skipped": self.front_skipped,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_study(cls, study: StudyLike, **kwargs: Any) -> ScalingAnalysis:
        """Analyse a study's finished trials; keyword arguments go to :func:`analyze`."""
        numbered = getattr(study, "numbered_observations", None)
        if numbered is None:
            return analyze(study.observations(), study.params, study.better_direction_sign, **kwargs)
        pairs = numbered()
        result = analyze([o for _, o in pairs], study.params, study.better_direction_sign, **kwargs)
        result.trial_numbers = [n for n, _ in pairs]
        return result


def _param_values(values: dict[str, Any], params: Sequence[Param]) -> dict[str, Any]:
    names = {p.name for p in params}
    return {k: v for k, v in values.items() if k in names}


def analyze(
    observations: Sequence[ObservationInParam],
    params: Sequence[Param],
    better_direction_sign: int,
    min_pareto_cost_fraction: float = 0.2,
    is_conservative: bool = True,
    low_cost_quantile: float = 0.2,
    low_cost_weight: float = 0.25,
    confidence: float = 0.9,
    n_bootstrap: int = 1000,
    seed: int = 0,
    robust: bool = True,
) -> ScalingAnalysis:
    """Pareto set, per-parameter scaling laws and the Pareto-front fit of finished trials.

    Never raises for too little data: parameters (or the front) that cannot be
    fitted are listed in ``skipped`` / ``front_skipped`` with the reason.

    Args:
        observations: finished trials (failures are kept for the plots only).
        params: the parameters that were tuned.
        better_direction_sign: ``1`` to maximise the output, ``-1`` to minimise it.
        min_pareto_cost_fraction, is_conservative: passed to
            :func:`carbs.optimizer.pareto.pareto_set_from_observations`.
        low_cost_quantile, low_cost_weight: Pareto points at or below this
            quantile of the observed costs get this fit weight (0 drops them).
        confidence: level of the bootstrap intervals.
        n_bootstrap: bootstrap replicates per fit.
        seed: seeds the bootstrap.
        robust: fit the parameter laws with Huber's loss (see :func:`fit_scaling_law`).
    """
    from carbs.optimizer.pareto import pareto_set_from_observations

    if better_direction_sign not in (-1, 1) or isinstance(better_direction_sign, bool):
        raise ValueError(f"better_direction_sign must be 1 or -1, got {better_direction_sign!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an integer >= 0, got {n_bootstrap!r}")
    # Checks low_cost_quantile and low_cost_weight even when there is nothing to fit.
    pareto_weights(np.empty(0), None, low_cost_quantile, low_cost_weight)
    obs = list(observations)
    for i, o in enumerate(obs):
        if not isinstance(o, ObservationInParam):
            raise TypeError(f"observations[{i}] must be an ObservationInParam, got {o!r}")
    successes = [o for o in obs if is_success(o)]
    pareto = pareto_set_from_observations(
        successes, params, better_direction_sign, min_pareto_cost_fraction, is_conservative
    )
    costs = np.array([p.cost for p in pareto], dtype=float)
    observed = np.array([float(o.cost) for o in successes], dtype=float)
    weights = (
        pareto_weights(costs, observed, low_cost_quantile, low_cost_weight)
        if costs.size
        else costs
    )
    laws, skipped = fit_scaling_laws(
        pareto,
        params,
        observed_costs=observed,
        low_cost_quantile=low_cost_quantile,
        low_cost_weight=low_cost_weight,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        robust=robust,
    )
    front: FrontFit | None = None
    front_skipped: str | None = None
    try:
        front = fit_pareto_front(
            pareto, better_direction_sign, weights, confidence, max(n_bootstrap // 2, 0), seed
        )
    except InsufficientDataError as e:
        front_skipped = str(e)
        logger.info("no Pareto-front fit: %s", e)
    return ScalingAnalysis(
        observations=obs,
        params=list(params),
        better_direction_sign=better_direction_sign,
        pareto_points=pareto,
        pareto_weights=weights,
        laws=laws,
        skipped=skipped,
        front=front,
        front_skipped=front_skipped,
        confidence=confidence,
        settings={
            "min_pareto_cost_fraction": min_pareto_cost_fraction,
            "is_conservative": is_conservative,
            "low_cost_quantile": low_cost_quantile,
            "low_cost_weight": low_cost_weight,
            "n_bootstrap": n_bootstrap,
            "seed": seed,
            "robust": robust,
        },
    )
