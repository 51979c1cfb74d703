"""Run one tuner on one problem for one seed until the cost budget is spent."""

from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from benchmarks.spec import Budget, KnobValue, Outcome, Problem
from benchmarks.tuners.base import Tuner, TunerSpec

logger = logging.getLogger(__name__)


@dataclass
class TrialRecord:
    """One evaluated setting.

    Attributes:
        params: the setting.
        output: what the tuner was told (``nan`` for a failure).
        true_output: the noise-free output used for scoring.
        cost: what the trial cost.
        is_failure: whether it crashed.
        overhead_s: seconds the tuner spent in ``ask`` and ``tell`` for it.
    """

    params: dict[str, KnobValue]
    output: float
    true_output: float
    cost: float
    is_failure: bool
    overhead_s: float


@dataclass
class RunTrace:
    """Everything one (problem, tuner, seed) run produced."""

    problem: str
    tuner: str
    seed: int
    budget_cost: float
    max_trials: int
    trials: list[TrialRecord] = field(default_factory=list)
    wall_time_s: float = 0.0
    error: str | None = None
    # "cost" (stop at the cost budget) or "trials" (a fixed trial count, any cost).
    protocol: str = "cost"
    # The commit of this repository the run was made at (which CARBS it measured).
    commit: str | None = None

    @property
    def capped(self) -> bool:
        """The run stopped on the trial cap before spending its cost budget (``cost`` protocol only)."""
        return self.protocol == "cost" and len(self.trials) >= self.max_trials and self.total_cost < self.budget_cost

    @property
    def total_cost(self) -> float:
        """Cumulative cost of all trials."""
        return float(sum(t.cost for t in self.trials))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (non-finite floats become None)."""
        out = asdict(self)
        for trial in out["trials"]:
            for key in ("output", "true_output"):
                if not math.isfinite(trial[key]):
                    trial[key] = None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTrace:
        """Rebuild a trace from :meth:`to_dict` output."""
        trials = []
        for t in data["trials"]:
            t = dict(t)
            for key in ("output", "true_output"):
                t[key] = math.nan if t[key] is None else float(t[key])
            trials.append(TrialRecord(**t))
        return cls(**{**data, "trials": trials})


def noise_rng(problem: Problem, seed: int, trial_index: int) -> np.random.Generator:
    """The noise for trial ``trial_index``: the same for every tuner at a given seed."""
    return np.random.default_rng([zlib.crc32(problem.name.encode()), seed, trial_index])


def _record(params: dict[str, KnobValue], outcome: Outcome, overhead_s: float) -> TrialRecord:
    return TrialRecord(
        params=params,
        output=outcome.output,
        true_output=outcome.true_output,
        cost=outcome.cost,
        is_failure=outcome.is_failure,
        overhead_s=overhead_s,
    )


PROTOCOLS = ("cost", "trials")
# The trial count of the fixed-trial protocol, per budget mode.
PROTOCOL_TRIALS = {"quick": 30, "full": 75}


def protocol_budget(problem: Problem, mode: str, protocol: str) -> Budget:
    """The budget of one run: the problem's cost budget, or a fixed trial count at any cost."""
    if protocol == "cost":
        return problem.budget(mode)
    if protocol == "trials":
        problem.budget(mode)  # validates the mode
        return Budget(cost=math.inf, max_trials=PROTOCOL_TRIALS[mode])
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def run_one(problem: Problem, spec: TunerSpec, seed: int, budget: Budget, protocol: str = "cost") -> RunTrace:
    """Run ``spec``'s tuner on ``problem`` until ``budget`` is spent.

    Every run starts with the problem's default setting, told to the tuner.
    Then the tuner is asked for settings one at a time. The run stops once
    the cumulative cost reaches ``budget.cost`` (the trial that crosses it is
    run, but the metrics only count trials paid for within the budget) or
    after ``budget.max_trials`` trials. A tuner that raises ends its run
    early; the error is kept in the trace.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    trace = RunTrace(problem.name, spec.name, seed, budget.cost, budget.max_trials, protocol=protocol)
    start = time.perf_counter()
    tuner: Tuner | None = None
    try:
        tuner = spec.factory(problem, seed, budget)
        params = problem.default_params()
        outcome = problem.evaluate(params, noise_rng(problem, seed, 0))
        t0 = time.perf_counter()
        tuner.tell(params, outcome)
        trace.trials.append(_record(params, outcome, time.perf_counter() - t0))
        cumulative = outcome.cost
        while cumulative < budget.cost and len(trace.trials) < budget.max_trials:
            t0 = time.perf_counter()
            params = problem.check_params(tuner.ask())
            ask_s = time.perf_counter() - t0
            outcome = problem.evaluate(params, noise_rng(problem, seed, len(trace.trials)))
            t0 = time.perf_counter()
            tuner.tell(params, outcome)
            trace.trials.append(_record(params, outcome, ask_s + time.perf_counter() - t0))
            cumulative += outcome.cost
    except Exception as exc:  # one tuner's crash must not end the whole comparison
        trace.error = f"{type(exc).__name__}: {exc}"
        logger.warning("%s on %s (seed %d) stopped: %s", spec.name, problem.name, seed, trace.error)
    finally:
        if tuner is not None:
            tuner.close()
    trace.wall_time_s = time.perf_counter() - start
    return trace
