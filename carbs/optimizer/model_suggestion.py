"""One model suggestion: fit the surrogates, generate candidates, score them, pick one.

The steps, each in its own module:

1. surrogates (:mod:`carbs.optimizer.surrogate`) fitted on the observations;
2. a cost level (:mod:`carbs.optimizer.cost_targeting`) and the ceilings;
3. candidates around the Pareto set and its cost-shifted copies
   (:mod:`carbs.optimizer.candidates`);
4. pending suggestions filled in (:mod:`carbs.optimizer.pending`);
5. the score ``EI * search density * P(success)``
   (:mod:`carbs.optimizer.acquisition`) over the candidates that are in the
   level's band, under the ceilings and above the success floor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from carbs.optimizer import acquisition, candidates, cost_targeting
from carbs.optimizer.config import CARBSParams, CostTargetingEnum
from carbs.optimizer.pareto import ObservationGroup, group_cost, group_output
from carbs.optimizer.space import SearchSpace
from carbs.optimizer.surrogate import SurrogateHyperparameters, SurrogateModel, SurrogatePrediction
from carbs.optimizer.types import ObservationInBasic

logger = logging.getLogger(__name__)


def fit_surrogate(
    successes: Sequence[ObservationInBasic],
    failures: Sequence[ObservationInBasic],
    pareto: Sequence[ObservationGroup],
    config: CARBSParams,
    dim: int,
    rng: np.random.Generator,
    previous: SurrogateHyperparameters | None = None,
) -> SurrogateModel:
    """Fit the output, cost, failure and Pareto-front models (``previous``: the
    hyperparameters of an earlier fit, reused while the data grew little)."""
    model = SurrogateModel(config.better_direction_sign, rng, previous)
    X = np.stack([o.real_number_input for o in successes])
    X_fail = np.stack([o.real_number_input for o in failures]) if failures else np.empty((0, dim))
    model.fit_observations(
        X,
        np.array([o.output for o in successes]),
        np.array([o.cost for o in successes]),
        X_fail,
        cost_known=np.array([not o.is_partial for o in successes]),
    )
    model.fit_failures(X, X_fail)
    pareto_obs = [o for g in pareto for o in g]
    model.fit_pareto(np.array([o.cost for o in pareto_obs]), np.array([o.output for o in pareto_obs]))
    return model


@dataclass(frozen=True)
class SuggestionContext:
    """What a model suggestion needs besides the fitted models.

    Attributes:
        space: the search space.
        pareto: the Pareto groups, cheapest first.
        pending: basic rows ``(k, d)`` of the pending suggestions.
        radius: the local search radius in basic units.
        index: how many suggestions came before (drives the cost levels).
        remaining_budget: cost budget left, if the caller set one.
        success_costs: costs ``(n,)`` of the successful observations.
        keeps_pending_guesses: the pending points are those of the previous
            suggestion of the same batch and that suggestion: the guesses made
            for them then are kept (see ``SurrogateModel.fit_pending``).
    """

    space: SearchSpace
    pareto: Sequence[ObservationGroup]
    pending: np.ndarray
    radius: float
    index: int
    remaining_budget: float | None
    success_costs: np.ndarray
    keeps_pending_guesses: bool = False


def suggest_from_model(
    model: SurrogateModel,
    ctx: SuggestionContext,
    config: CARBSParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, float]]:
    """The best candidate ``(d,)`` and its diagnostics."""
    model.rng = rng
    model.fit_pending(ctx.pending, config.outstanding_suggestion_estimator, ctx.keeps_pending_guesses)
    front_costs = np.array([group_cost(g) for g in ctx.pareto])
    front_log_costs = np.log(front_costs)
    origins = np.stack([g[0].real_number_input for g in ctx.pareto])
    n = config.num_candidates_for_suggestion_per_dim * ctx.space.dim
    log_growth = cost_targeting.log_growth(config.max_cost_growth)
    target: cost_targeting.CostTarget | None = None
    share = 0.0
    base = cost_targeting.growth_base(ctx.success_costs, config.min_runs_near_top_before_expansion)
    windowed = cost_targeting.windowed_growth_base(ctx.success_costs, config.cost_growth_window)
    if windowed is not None:
        base = min(base, windowed)
    if config.cost_targeting == CostTargetingEnum.FRONT:
        band = cost_targeting.expansion_band(front_log_costs, math.log(base), log_growth)
        sign = config.better_direction_sign
        share = cost_targeting.expansion_share(
            lambda t: sign * model.surrogate_to_output(model.pareto_surrogate_at(t)),
            front_log_costs,
            log_growth,
            config.cost_expansion_probability,
            config.effective_min_cost_expansion_probability,
        )
        target = cost_targeting.choose_target(front_log_costs, ctx.index, log_growth, share, rng, band)
        predicted, gradient = model.log_cost_and_gradient(origins)
        shifted = candidates.cost_shifted(ctx.space, origins, predicted, gradient, target.log_cost, ctx.radius)
        all_origins = np.vstack([origins, shifted])
        weights = candidates.origin_weights(
            np.concatenate([front_log_costs, np.full(len(shifted), target.log_cost)]),
            target.log_cost,
            target.half_width,
        )
        cands, log_density = candidates.sample_around(ctx.space, all_origins, n, ctx.radius, rng, weights)
    else:
        cands, log_density = candidates.sample_around(ctx.space, origins, n, ctx.radius, rng)
    pred = model.predict(cands)
    upper = _upper_log_cost(model, pred, config.cost_quantile)
    ceiling = cost_targeting.cost_ceiling(
        base,
        config.max_cost_growth,
        config.max_suggestion_cost,
        ctx.remaining_budget,
        config.max_budget_fraction,
    )
    allowed = _under_ceiling(upper, ceiling, config.cost_quantile)
    allowed &= _likely_to_succeed(pred, config.min_success_probability)
    best = pred.pareto_surrogate
    if target is not None:
        mask = cost_targeting.band_mask(target, pred.log_cost, allowed)
        if cost_targeting.is_expansion_fallback(target, pred.log_cost, allowed):
            top = float(model.pareto_surrogate_at(front_log_costs[-1:])[0])
            best = acquisition.clamp_pareto_value(best, top)
    else:
        mask = allowed
        if config.is_expected_improvement_pareto_value_clamped:
            lo, hi = float(front_log_costs[0]), float(front_log_costs[-1])
            if config.max_suggestion_cost is not None:
                hi = min(hi, math.log(config.max_suggestion_cost))
            threshold = rng.uniform(min(lo, hi), hi)
            at_threshold = float(model.pareto_surrogate_at(np.array([threshold]))[0])
            best = acquisition.clamp_pareto_value(best, at_threshold)
    if config.is_expected_improvement_value_always_max:
        top = float(model.output_to_surrogate(np.array([group_output(ctx.pareto[-1])]))[0])
        best = np.full_like(best, top)
    log_ei = acquisition.log_expected_improvement(pred.surrogate_output, pred.surrogate_var, best, config.exploration_bias)
    score = acquisition.acquisition_scores(log_ei, log_density, pred.success_probability, mask)
    i = int(np.argmax(score))
    info = {
        "surrogate_output": float(pred.surrogate_output[i]),
        "surrogate_var": float(pred.surrogate_var[i]),
        "pareto_surrogate": float(best[i]),
        "target_estimate": float(pred.target_estimate[i]),
        "cost_estimate": float(pred.cost_estimate[i]),
        "cost_upper_estimate": math.exp(float(upper[i])),
        "success_probability": float(pred.success_probability[i]),
        "log_expected_improvement": float(log_ei[i]),
        "log_search_density": float(log_density[i]),
        "acquisition_score": float(score[i]),
    }
    if ceiling is not None:
        info["cost_ceiling"] = ceiling
    if target is not None:
        info.update(
            {
                "cost_target": math.exp(target.log_cost),
                "cost_target_is_expansion": float(target.is_expansion),
                "cost_expansion_share": share,
            }
        )
    return cands[i], info


def _upper_log_cost(model: SurrogateModel, pred: SurrogatePrediction, quantile: float) -> np.ndarray:
    """Upper quantile of a run's log cost: model uncertainty plus run-to-run noise."""
    assert model.cost_model is not None
    var = pred.log_cost_var + model.cost_model.noise_variance
    return cost_targeting.upper_log_cost(pred.log_cost, var, quantile)


def _under_ceiling(upper: np.ndarray, ceiling: float | None, quantile: float) -> np.ndarray:
    """Candidates whose upper-quantile log cost is under the ceiling (the cheapest if none are)."""
    if ceiling is None:
        return np.ones(len(upper), dtype=bool)
    ok = upper <= math.log(ceiling)
    if not ok.any():
        logger.warning(
            "no candidate's predicted cost (%g quantile) is under the ceiling %g; "
            "suggesting the cheapest predicted one",
            quantile,
            ceiling,
        )
        ok = upper <= upper.min()
    return ok


def _likely_to_succeed(pred: SurrogatePrediction, floor: float) -> np.ndarray:
    """Candidates at or above the success-probability floor (the likeliest if none are)."""
    p = pred.success_probability
    ok = p >= floor
    if floor > 0 and not ok.any():
        ok = p >= p.max()
    return ok
