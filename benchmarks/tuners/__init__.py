"""The tuners the benchmark compares, by name."""

from __future__ import annotations

from benchmarks.spec import Budget, Problem
from benchmarks.tuners.base import Tuner, TunerSpec, TunerUnavailable
from benchmarks.tuners.carbs_tuner import CarbsTuner, carbs_unavailable
from benchmarks.tuners.external import ExternalTuner, external_unavailable, numeric_only
from benchmarks.tuners.optuna_tuners import OptunaTuner, cmaes_not_applicable, optuna_unavailable
from benchmarks.tuners.random_search import RandomSearch


def _carbs(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return CarbsTuner(problem, seed)


def _random(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return RandomSearch(problem, seed)


def _tpe(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return OptunaTuner(problem, seed, "tpe")


def _gp(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return OptunaTuner(problem, seed, "gp")


def _cmaes(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return OptunaTuner(problem, seed, "cmaes")


def _hebo(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return ExternalTuner("hebo", problem, seed)


def _smac(problem: Problem, seed: int, budget: Budget) -> Tuner:
    # SMAC sizes its initial design from the trial count it is promised.
    return ExternalTuner("smac", problem, seed, options={"max_trials": budget.max_trials})


def _reference(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return ExternalTuner("reference", problem, seed)


def _protein(problem: Problem, seed: int, budget: Budget) -> Tuner:
    return ExternalTuner("protein", problem, seed)


TUNERS: dict[str, TunerSpec] = {
    spec.name: spec
    for spec in (
        TunerSpec("carbs", "CARBS", _carbs, carbs_unavailable),
        TunerSpec("random", "Random search", _random, lambda: None),
        TunerSpec("tpe", "Optuna TPE", _tpe, lambda: optuna_unavailable("tpe")),
        TunerSpec("gp", "Optuna GP", _gp, lambda: optuna_unavailable("gp")),
        TunerSpec(
            "cmaes", "Optuna CMA-ES", _cmaes, lambda: optuna_unavailable("cmaes"), cmaes_not_applicable
        ),
        TunerSpec("hebo", "HEBO", _hebo, lambda: external_unavailable("hebo")),
        TunerSpec("smac", "SMAC3 EIPS", _smac, lambda: external_unavailable("smac")),
        TunerSpec(
            "reference", "CARBS reference", _reference, lambda: external_unavailable("reference"), numeric_only
        ),
        TunerSpec("protein", "Protein 3.0.0", _protein, lambda: external_unavailable("protein"), numeric_only),
    )
}


def get_tuner_spec(name: str) -> TunerSpec:
    """A tuner's spec by name."""
    try:
        return TUNERS[name]
    except KeyError:
        raise ValueError(f"unknown tuner {name!r}; choose from {sorted(TUNERS)}") from None


__all__ = ["TUNERS", "Tuner", "TunerSpec", "TunerUnavailable", "get_tuner_spec"]
