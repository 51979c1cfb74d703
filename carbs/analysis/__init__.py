"""Scaling laws, extrapolation, plots and reports from finished trials.

The fitting API needs only numpy and scipy::

    from carbs.analysis import analyze
    analysis = analyze(observations, params, better_direction_sign=-1)
    analysis.laws["lr"].exponent            # lr ~ cost ** exponent over the Pareto set
    analysis.extrapolate(10 * analysis.observed_cost_range[1]).suggestion

Plots (:mod:`carbs.analysis.plots`) and the HTML report
(:mod:`carbs.analysis.report`) need matplotlib (``pip install 'carbs-tuner[plot]'``).
"""

from carbs.analysis.analyze import ScalingAnalysis, StudyLike, analyze
from carbs.analysis.extrapolation import Extrapolation, PredictedValue, extrapolate
from carbs.analysis.front import FrontFit, fit_pareto_front
from carbs.analysis.scaling import (
    InsufficientDataError,
    ScalingLaw,
    fit_scaling_law,
    fit_scaling_laws,
    pareto_weights,
)

__all__ = [
    "Extrapolation",
    "FrontFit",
    "InsufficientDataError",
    "PredictedValue",
    "ScalingAnalysis",
    "ScalingLaw",
    "StudyLike",
    "analyze",
    "extrapolate",
    "fit_pareto_front",
    "fit_scaling_law",
    "fit_scaling_laws",
    "pareto_weights",
]
