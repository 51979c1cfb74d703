"""Optuna's samplers (TPE, GP, CMA-ES) behind the ask/tell interface, with their defaults."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from typing import Any

from benchmarks.spec import Knob, KnobValue, Outcome, Problem
from benchmarks.tuners.base import Tuner, TunerUnavailable

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "gp", "cmaes")


def optuna_unavailable(sampler: str) -> str | None:
    """Why an Optuna sampler cannot run here, or None."""
    if importlib.util.find_spec("optuna") is None:
        return "optuna is not installed (pip install optuna)"
    import optuna

    if sampler == "gp":
        if not hasattr(optuna.samplers, "GPSampler"):
            return f"optuna {optuna.__version__} has no GPSampler (needs optuna >= 3.6)"
        if importlib.util.find_spec("torch") is None:
            return "optuna's GPSampler needs torch (pip install torch)"
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        return "optuna's CmaEsSampler needs the cmaes package (pip install cmaes)"
    return None


def cmaes_not_applicable(problem: Problem) -> str | None:
    """CMA-ES searches continuous spaces; Optuna would sample categorical knobs at random."""
    if problem.has_choices:
        return "has a categorical knob (CMA-ES would sample it at random)"
    return None


def to_distribution(knob: Knob) -> Any:
    """The Optuna distribution with the knob's bounds and scale."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if knob.kind == "choice":
        return CategoricalDistribution(list(knob.choices))
    if knob.kind == "int":
        return IntDistribution(int(knob.low), int(knob.high), log=knob.log)
    return FloatDistribution(knob.low, knob.high, log=knob.log)


class OptunaTuner(Tuner):
    """One Optuna study driven through ``study.ask`` / ``study.tell``.

    Failed trials are told as ``TrialState.FAIL``, which Optuna's samplers
    leave out of their models.
    """

    def __init__(self, problem: Problem, seed: int, sampler: str) -> None:
        reason = optuna_unavailable(sampler)
        if reason:
            raise TunerUnavailable(reason)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if sampler == "tpe":
            smp: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
        elif sampler == "gp":
            smp = optuna.samplers.GPSampler(seed=seed)
        elif sampler == "cmaes":
            smp = optuna.samplers.CmaEsSampler(seed=seed)
        else:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self._optuna = optuna
        self._study = optuna.create_study(direction="minimize", sampler=smp)
        self._dists = {k.name: to_distribution(k) for k in problem.knobs}
        self._pending: Any = None

    def ask(self) -> dict[str, KnobValue]:
        """Ask the study for the next trial."""
        self._pending = self._study.ask(self._dists)
        return dict(self._pending.params)

    def tell(self, params: dict[str, KnobValue], outcome: Outcome) -> None:
        """Finish the pending trial, or add an externally run one."""
        state = self._optuna.trial.TrialState
        trial, self._pending = self._pending, None
        if trial is None:
            self._study.add_trial(
                self._optuna.trial.create_trial(
                    params=dict(params),
                    distributions=self._dists,
                    value=None if outcome.is_failure else outcome.output,
                    state=state.FAIL if outcome.is_failure else state.COMPLETE,
                )
            )
        elif outcome.is_failure:
            self._study.tell(trial, state=state.FAIL)
        else:
            self._study.tell(trial, outcome.output)
