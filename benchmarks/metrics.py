"""Scores computed from run traces.

All outputs are minimised and scored by their noise-free value
(``true_output``). Only trials paid for within the budget count: a trial
counts at cumulative cost ``b`` if the cumulative cost up to and including it
is at most ``b``.

Pareto-front gap (``front_gap``)
    The observed front of a run is the step function
    ``F(c) = min{ y_i : trial i succeeded and cost_i <= c }`` over the cost
    of a single trial (not the cumulative cost). The best known front ``F*``
    is the same function over the union of every run of every tuner on the
    problem. Both are clipped at a reference value ``y_ref`` (the 90th
    percentile of all successful outputs on the problem), so the area is not
    dominated by a front's terrible cheapest point or by costs where a run has
    no trial (``F = +inf`` counts as ``y_ref``). The gap is::

        gap = integral over log10(c) from log10(c_lo) to log10(c_hi) of
              (min(F(c), y_ref) - min(F*(c), y_ref)) d log10(c)
              / ((y_ref - y_best) * (log10(c_hi) - log10(c_lo)))

    with ``c_lo``/``c_hi`` the cheapest/most expensive successful trial on the
    problem and ``y_best = min F*``. It lies in ``[0, 1]``: 0 means the run's
    front matches the best known front at every cost; 1 would need a best
    known front at ``y_best`` over the whole cost range and a run that found
    nothing better than ``y_ref``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.harness import RunTrace, TrialRecord
from benchmarks.spec import Problem

# Budget fractions at which the best output is reported.
BUDGET_FRACTIONS = (0.1, 0.3, 1.0)
REFERENCE_QUANTILE = 0.9
# The "start" of a run, against which later escalation of trial cost is measured.
EARLY_TRIALS = 15


def counted_trials(trace: RunTrace, budget: float | None = None) -> list[TrialRecord]:
    """The trials paid for within ``budget`` (default: the run's budget)."""
    limit = trace.budget_cost if budget is None else budget
    out, cumulative = [], 0.0
    for trial in trace.trials:
        cumulative += trial.cost
        if cumulative > limit * (1 + 1e-12):
            break
        out.append(trial)
    return out


def best_at_budget(trace: RunTrace, budget: float) -> float:
    """Lowest true output among successful trials paid for within ``budget`` (nan if none)."""
    values = [t.true_output for t in counted_trials(trace, budget) if not t.is_failure]
    values = [v for v in values if math.isfinite(v)]
    return min(values) if values else math.nan


def best_in_first(trace: RunTrace, n_trials: int) -> float:
    """Lowest true output among the successful trials of the first ``n_trials`` (nan if none)."""
    values = [t.true_output for t in trace.trials[:n_trials] if not t.is_failure]
    values = [v for v in values if math.isfinite(v)]
    return min(values) if values else math.nan


def best_at_fraction(trace: RunTrace, fraction: float) -> float:
    """Best true output at ``fraction`` of the run's budget: of its cost, or of its trials under ``trials``."""
    if trace.protocol == "trials":
        return best_in_first(trace, max(1, math.ceil(fraction * trace.max_trials - 1e-9)))
    return best_at_budget(trace, fraction * trace.budget_cost)


def best_so_far_curve(trace: RunTrace, grid: np.ndarray) -> np.ndarray:
    """:func:`best_at_budget` at every cumulative cost in ``grid``."""
    return np.array([best_at_budget(trace, float(b)) for b in grid])


def front_points(trials: Sequence[TrialRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Costs and true outputs of the successful, finite trials."""
    ok = [t for t in trials if not t.is_failure and math.isfinite(t.true_output)]
    return np.array([t.cost for t in ok]), np.array([t.true_output for t in ok])


def front_at(costs: np.ndarray, outputs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``F(c) = min{outputs[i] : costs[i] <= c}`` at each ``c`` in ``grid`` (+inf if none)."""
    if costs.size == 0:
        return np.full(grid.shape, np.inf)
    order = np.argsort(costs)
    running_min = np.minimum.accumulate(outputs[order])
    idx = np.searchsorted(costs[order], grid, side="right") - 1
    return np.where(idx >= 0, running_min[np.maximum(idx, 0)], np.inf)


@dataclass(frozen=True)
class FrontReference:
    """The best known front of a problem and the constants of the gap integral."""

    costs: np.ndarray
    outputs: np.ndarray
    c_lo: float
    c_hi: float
    y_ref: float
    y_best: float

    @classmethod
    def from_traces(cls, traces: Sequence[RunTrace]) -> FrontReference:
        """Pool every counted successful trial of every run on one problem."""
        trials = [t for tr in traces for t in counted_trials(tr)]
        costs, outputs = front_points(trials)
        if costs.size == 0:
            raise ValueError("no successful trial to build a reference front from")
        return cls(
            costs=costs,
            outputs=outputs,
            c_lo=float(costs.min()),
            c_hi=float(costs.max()),
            y_ref=float(np.quantile(outputs, REFERENCE_QUANTILE)),
            y_best=float(outputs.min()),
        )

    def gap(self, costs: np.ndarray, outputs: np.ndarray, n_grid: int = 512) -> float:
        """Normalised area between a front and this reference, in log cost (see module doc)."""
        if self.c_hi <= self.c_lo or self.y_ref <= self.y_best:
            return 0.0
        log_grid = np.linspace(math.log10(self.c_lo), math.log10(self.c_hi), n_grid)
        grid = 10.0**log_grid
        # Evaluate the step functions exactly at the grid points and integrate
        # with the trapezoid rule; 512 points keep the error well below 1%.
        mine = np.minimum(front_at(costs, outputs, grid), self.y_ref)
        best = np.minimum(front_at(self.costs, self.outputs, grid), self.y_ref)
        diff = np.maximum(mine - best, 0.0)
        area = float(np.sum(0.5 * (diff[1:] + diff[:-1]) * np.diff(log_grid)))
        return area / ((self.y_ref - self.y_best) * (log_grid[-1] - log_grid[0]))


def truth_gap(true_front: Callable[[np.ndarray], np.ndarray | None], cost_range: tuple[float, float],
              costs: np.ndarray, outputs: np.ndarray, n_grid: int = 512, ceiling: float | None = None) -> float:
    """Mean excess of a front over the true frontier across ``cost_range`` in log cost (see module doc)."""
    lo, hi = cost_range
    if not 0 < lo < hi:
        raise ValueError(f"truth cost range must satisfy 0 < low < high, got {cost_range!r}")
    grid = np.geomspace(lo, hi, n_grid)
    truth = true_front(grid)
    if truth is None:
        raise ValueError("the problem does not know its true frontier")
    cap = float(truth[0]) if ceiling is None else ceiling
    mine = np.minimum(front_at(costs, outputs, grid), cap)
    excess = np.maximum(mine - truth, 0.0)
    log_grid = np.log10(grid)
    area = float(np.sum(0.5 * (excess[1:] + excess[:-1]) * np.diff(log_grid)))
    return area / float(log_grid[-1] - log_grid[0])


def knows_true_front(problem: Problem) -> bool:
    """Whether ``problem`` can score runs against its true frontier."""
    rng = problem.truth_cost_range
    return rng is not None and problem.true_front(np.array(rng, dtype=float)) is not None


@dataclass(frozen=True)
class CostProfile:
    """How a run spread its cost over its trials (see module doc)."""

    max_cost: float
    median_cost_thirds: tuple[float, float, float]
    max_cost_share: float
    growth_ratio: float


def cost_profile(trials: Sequence[TrialRecord]) -> CostProfile:
    """The cost profile of ``trials`` in the order they ran (nan where there are too few)."""
    costs = np.array([t.cost for t in trials], dtype=float)
    if costs.size == 0:
        return CostProfile(math.nan, (math.nan, math.nan, math.nan), math.nan, math.nan)
    first, second, third = (float(np.median(p)) if p.size else math.nan for p in np.array_split(costs, 3))
    growth = float(costs.max() / costs[:EARLY_TRIALS].max()) if costs.size > EARLY_TRIALS else math.nan
    return CostProfile(
        max_cost=float(costs.max()),
        median_cost_thirds=(first, second, third),
        max_cost_share=float(costs.max() / costs.sum()),
        growth_ratio=growth,
    )


@dataclass(frozen=True)
class RunScores:
    """The scores of one run."""

    best_at: tuple[float, ...]
    front_gap: float
    n_trials: int
    n_failures: int
    failure_cost: float
    overhead_s_per_trial: float
    wall_time_s: float
    capped: bool
    error: str | None
    truth_gap: float = math.nan
    protocol: str = "cost"
    profile: CostProfile = CostProfile(math.nan, (math.nan, math.nan, math.nan), math.nan, math.nan)


def score_run(trace: RunTrace, reference: FrontReference, problem: Problem | None = None) -> RunScores:
    """Score one run against its problem's reference front (and its true frontier, if ``problem`` knows it)."""
    counted = counted_trials(trace)
    failures = [t for t in counted if t.is_failure]
    costs, outputs = front_points(counted)
    overhead = [t.overhead_s for t in trace.trials]
    gap_to_truth = math.nan
    if problem is not None and knows_true_front(problem):
        assert problem.truth_cost_range is not None
        gap_to_truth = truth_gap(problem.true_front, problem.truth_cost_range, costs, outputs,
                                 ceiling=problem.truth_ceiling)
    return RunScores(
        best_at=tuple(best_at_fraction(trace, f) for f in BUDGET_FRACTIONS),
        front_gap=reference.gap(costs, outputs),
        n_trials=len(counted),
        n_failures=len(failures),
        failure_cost=float(sum(t.cost for t in failures)),
        overhead_s_per_trial=float(np.mean(overhead)) if overhead else math.nan,
        wall_time_s=trace.wall_time_s,
        capped=trace.capped,
        error=trace.error,
        truth_gap=gap_to_truth,
        protocol=trace.protocol,
        profile=cost_profile(counted),
    )
