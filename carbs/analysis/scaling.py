"""Per-parameter scaling laws fitted over the Pareto set.

For every numeric parameter the best settings found at each cost (the Pareto
set) are fitted with a straight line against ``log10(cost)``:

* ``LogSpace`` parameters in log-log coordinates, i.e. a power law
  ``value = k * cost ** e``;
* ``LinearSpace`` parameters on their own scale: ``value = k + e * log10(cost)``;
* ``LogitSpace`` parameters in log-odds: ``log10(v / (1 - v)) = k + e * log10(cost)``.

The cheapest Pareto points are the noisiest (many cheap runs compete and the
luckiest wins), so points below the ``low_cost_quantile`` of all observed
costs are down-weighted by ``low_cost_weight`` (0 drops them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from carbs.analysis.regression import LineFit, fit_line, percentile_interval
from carbs.optimizer.space import ChoiceSpace, LinearSpace, LogitSpace, LogSpace, Param
from carbs.optimizer.types import ParetoPoint

logger = logging.getLogger(__name__)

POWER = "power"
LINEAR = "log-linear"
LOGIT = "logit-linear"


class InsufficientDataError(ValueError):
    """Too few usable points to fit a law."""


def law_form(param: Param) -> str:
    """The form of law fitted for a parameter (raises for categorical ones)."""
    space = param.space
    if isinstance(space, LogSpace):
        return POWER
    if isinstance(space, LogitSpace):
        return LOGIT
    if isinstance(space, LinearSpace):
        return LINEAR
    raise ValueError(f"parameter {param.name!r}: no scaling law for a {type(space).__name__}")


def to_fit_coordinates(form: str, values: np.ndarray) -> np.ndarray:
    """Parameter values -> the ``y`` coordinate the law is a straight line in."""
    v = np.asarray(values, dtype=float)
    if form == POWER:
        return np.log10(v)
    if form == LOGIT:
        return np.log10(v / (1.0 - v))
    return v


def from_fit_coordinates(form: str, y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_fit_coordinates`."""
    y = np.asarray(y, dtype=float)
    if form == POWER:
        return np.power(10.0, y)
    if form == LOGIT:
        return 1.0 / (1.0 + np.power(10.0, -y))
    return y


@dataclass(frozen=True)
class ScalingLaw:
    """How the best value of one parameter changes with cost.

    Attributes:
        param: the parameter's name.
        form: ``"power"`` (``value = k * cost**e``), ``"log-linear"``
            (``value = k + e * log10(cost)``) or ``"logit-linear"``
            (``log10(v/(1-v)) = k + e * log10(cost)``).
        exponent: ``e``; for a power law the exponent of cost.
        exponent_interval: bootstrap ``(low, high)`` interval of ``e``.
        exponent_stderr: standard error of ``e`` from the fit's covariance.
        coefficient: ``k``.
        coefficient_interval: bootstrap ``(low, high)`` interval of ``k``.
        r_squared: weighted coefficient of determination of the fit.
        n_points: Pareto points used.
        n_downweighted: how many of them were in the down-weighted cheap region.
        cost_range: ``(min, max)`` cost of the points used.
        confidence: the level of the intervals.
        line: the underlying fit in ``(log10(cost), y)`` coordinates.
    """

    param: str
    form: str
    exponent: float
    exponent_interval: tuple[float, float]
    exponent_stderr: float
    coefficient: float
    coefficient_interval: tuple[float, float]
    r_squared: float
    n_points: int
    n_downweighted: int
    cost_range: tuple[float, float]
    confidence: float
    line: LineFit

    def predict(self, cost: float | np.ndarray) -> np.ndarray:
        """The law's value of the parameter at ``cost``."""
        return from_fit_coordinates(self.form, self.line.predict(_log_cost(cost)))

    def predict_interval(self, cost: float | np.ndarray) -> np.ndarray:
        """Bootstrap ``[low, high]`` interval of the value at ``cost``: shape ``(2, n)``."""
        x = np.atleast_1d(_log_cost(cost))
        if self.line.boot_slopes.size < 2:
            point = self.line.predict(x)
            return from_fit_coordinates(self.form, np.vstack([point, point]))
        boot = self.line.boot_predict(x)
        return from_fit_coordinates(self.form, percentile_interval(boot, self.confidence))

    def formula(self) -> str:
        """The law as readable text, e.g. ``lr = 0.31 * C^-0.12``."""
        if self.form == POWER:
            return f"{self.param} = {self.coefficient:.4g} * C^{self.exponent:+.3f}"
        if self.form == LOGIT:
            return f"logit10({self.param}) = {self.coefficient:.4g} {self.exponent:+.3f} * log10(C)"
        return f"{self.param} = {self.coefficient:.4g} {self.exponent:+.4g} * log10(C)"

    def to_dict(self) -> dict[str, object]:
        """JSON-compatible summary (without the bootstrap samples)."""
        return {
            "param": self.param,
            "form": self.form,
            "formula": self.formula(),
            "exponent": self.exponent,
            "exponent_interval": list(self.exponent_interval),
            "exponent_stderr": self.exponent_stderr,
            "coefficient": self.coefficient,
            "coefficient_interval": list(self.coefficient_interval),
            "r_squared": self.r_squared,
            "n_points": self.n_points,
            "n_downweighted": self.n_downweighted,
            "cost_range": list(self.cost_range),
            "confidence": self.confidence,
        }


def _log_cost(cost: float | np.ndarray) -> np.ndarray:
    c = np.asarray(cost, dtype=float)
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise ValueError(f"cost must be finite and > 0, got {cost!r}")
    return np.log10(c)


def pareto_weights(
    pareto_costs: np.ndarray,
    observed_costs: np.ndarray | None,
    low_cost_quantile: float,
    low_cost_weight: float,
) -> np.ndarray:
    """Relative fit weights of Pareto points: ``low_cost_weight`` in the cheap region, else 1.

    The cheap region is everything at or below the ``low_cost_quantile`` of
    ``observed_costs`` (all successful trials; the Pareto costs if not given).
    If fewer than 3 points would keep a positive weight, all get weight 1.
    """
    if not 0.0 <= low_cost_quantile < 1.0:
        raise ValueError(f"low_cost_quantile must lie in [0, 1), got {low_cost_quantile!r}")
    if not 0.0 <= low_cost_weight <= 1.0:
        raise ValueError(f"low_cost_weight must lie in [0, 1], got {low_cost_weight!r}")
    costs = np.asarray(pareto_costs, dtype=float)
    if costs.size == 0:
        return np.ones(0)
    ref = costs if observed_costs is None or len(observed_costs) == 0 else observed_costs
    weights = np.ones_like(costs)
    if low_cost_quantile > 0:
        threshold = float(np.quantile(np.asarray(ref, dtype=float), low_cost_quantile))
        weights[costs <= threshold] = low_cost_weight
    if int((weights > 0).sum()) < 3:
        return np.ones_like(costs)
    return weights


def fit_scaling_law(
    param: Param,
    pareto_points: Sequence[ParetoPoint],
    weights: np.ndarray | None = None,
    confidence: float = 0.9,
    n_bootstrap: int = 1000,
    seed: int = 0,
    robust: bool = True,
) -> ScalingLaw:
    """Fit one numeric parameter's law over given Pareto points.

    ``robust`` fits with Huber's loss, so a mis-tuned trial that joined the
    Pareto set on a lucky draw does not tilt the law.

    Raises:
        InsufficientDataError: fewer than 3 weighted points or a single distinct cost.
        ValueError: a categorical parameter or bad arguments.
    """
    form = law_form(param)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    points = list(pareto_points)
    costs = np.array([p.cost for p in points], dtype=float)
    try:
        values = np.array([float(p.input[param.name]) for p in points])
    except KeyError:
        raise ValueError(f"parameter {param.name!r} is missing from a Pareto point") from None
    w = np.ones_like(costs) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != costs.shape:
        raise ValueError(f"weights has shape {w.shape}, expected {costs.shape}")
    y = to_fit_coordinates(form, values)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"parameter {param.name!r}: values {values.tolist()} cannot be fitted")
    x = _log_cost(costs)
    keep = w > 0
    if int(keep.sum()) < 3 or np.unique(x[keep]).size < 2:
        raise InsufficientDataError(
            f"parameter {param.name!r}: {int(keep.sum())} usable Pareto point(s); "
            "a scaling law needs at least 3 at 2 or more distinct costs"
        )
    line = fit_line(x[keep], y[keep], w[keep], n_bootstrap=n_bootstrap, seed=seed, robust=robust)
    if line.boot_slopes.size >= 2:
        e_lo, e_hi = percentile_interval(line.boot_slopes, confidence)
        k_lo, k_hi = percentile_interval(line.boot_intercepts, confidence)
    else:
        e_lo = e_hi = line.slope
        k_lo = k_hi = line.intercept
    if form == POWER:
        coefficient, k_lo, k_hi = 10.0**line.intercept, 10.0**k_lo, 10.0**k_hi
    else:
        coefficient = line.intercept
    return ScalingLaw(
        param=param.name,
        form=form,
        exponent=line.slope,
        exponent_interval=(float(e_lo), float(e_hi)),
        exponent_stderr=line.slope_stderr,
        coefficient=float(coefficient),
        coefficient_interval=(float(k_lo), float(k_hi)),
        r_squared=line.r_squared,
        n_points=int(keep.sum()),
        n_downweighted=int(((w < 1) & keep).sum()),
        cost_range=(float(costs[keep].min()), float(costs[keep].max())),
        confidence=confidence,
        line=line,
    )


def fit_scaling_laws(
    pareto_points: Sequence[ParetoPoint],
    params: Sequence[Param],
    observed_costs: Sequence[float] | np.ndarray | None = None,
    low_cost_quantile: float = 0.2,
    low_cost_weight: float = 0.25,
    confidence: float = 0.9,
    n_bootstrap: int = 1000,
    seed: int = 0,
    robust: bool = True,
) -> tuple[dict[str, ScalingLaw], dict[str, str]]:
    """Fit a law for every numeric parameter.

    Returns:
        ``(laws, skipped)``: laws by parameter name, and for every parameter
        without a law the reason (categorical, too few points, ...).
    """
    costs = np.array([p.cost for p in pareto_points], dtype=float)
    obs_costs = None if observed_costs is None else np.asarray(observed_costs, dtype=float)
    weights = (
        pareto_weights(costs, obs_costs, low_cost_quantile, low_cost_weight)
        if costs.size
        else costs
    )
    laws: dict[str, ScalingLaw] = {}
    skipped: dict[str, str] = {}
    for i, param in enumerate(params):
        if isinstance(param.space, ChoiceSpace):
            skipped[param.name] = "categorical parameter"
            continue
        try:
            laws[param.name] = fit_scaling_law(
                param, pareto_points, weights, confidence, n_bootstrap, seed + i, robust
            )
        except InsufficientDataError as e:
            skipped[param.name] = str(e)
            logger.info("no scaling law: %s", e)
    return laws, skipped

