"""The cost-aware stopping rule: stop a running trial that cannot reach the front at its cost.

A running trial has reported its metric at some steps, each with the cost it
had spent by then. It is judged against the *front*: the best value any
completed trial had reached by a given cost, counting both the final outputs
of trials that cost at most that much and the points of the completed
trials' curves (a run that had reached 0.3 at cost 10 shows that 0.3 is
reachable for cost 10, even if the run went on).

**The question is where the trial will end**, not where it is: a run with a
long schedule is behind cheaper finished runs in the middle of its training
and overtakes them at the end (curves cross). So the rule

1. estimates the trial's *final cost* from its point: log cost is fitted
   linearly on the points of the completed trials (cost usually grows as a
   power of width, steps, tokens, ...), and the fit's residual spread gives a
   range ``[C_lo, C_hi]``;
2. places the trial in its schedule: it is at the *fraction* ``t = c / C_hi``
   of its run (the earliest the range allows, the conservative end), where
   ``c`` is its cost so far;
3. bounds its final value by its *precedents*: every completed trial that,
   at the same fraction of its own run, was no better than this trial is
   now; the best final any of them reached is the bound (a trial worse than
   all of them is bounded by the two worst). Comparing at the same fraction
   of the schedule, not at the same cost or step, is what keeps slow
   starters with long schedules from being judged against short runs that
   were nearly done;
4. learns a **catch-up** allowance: for every completed trial that ended on
   the front, the same bound computed from the others at the same fraction,
   and how far the trial's real final beat it. The largest such excess is
   allowed. Until two trials that ended on the front reported by that
   fraction, nothing is stopped: there is no evidence either way;
5. learns the report **noise**: the spread of reported values around a
   smooth curve, from the second differences of every stored curve (a robust
   scale, so a single jump does not inflate it). Values closer than
   ``noise_sigmas`` deviations count as equal when precedents are chosen, and
   one deviation is added to the margin (the front is the best of many noisy
   reports, so it sits below the runs' true values).

A trial is stopped when it has made at least ``min_steps`` reports, the study
has at least ``min_completed`` completed trials with curves, and its bound
plus ``margin_scale * catch_up + noise`` is still behind the front at
``C_lo``, the cheapest final cost the range allows (the front only
gets better with cost, so it is then behind the front wherever it ends). A
trial at or ahead of the front at its current cost is never stopped, whatever
the settings.

Without a cost estimate (the trial's point is not given, fewer completed
trials than the fit needs, or the trial has already cost more than the range
allows) the rule compares the trial's current value with the front at its
current cost, with the catch-up learned at costs within a factor of two of it.

Plain data in, a decision out: the module knows nothing about storage.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

# Values of a curve's tail whose best is compared with the front (robust to one noisy report).
_TAIL = 3
# Costs within this factor of the judged cost count as "near it" for the catch-up allowance.
_COST_WINDOW = 2.0
_MAD_TO_SIGMA = 1.4826
# Runs that ended on the front needed near a cost (or a fraction of the
# schedule) before anything is stopped there.
_MIN_CATCH_UP_RUNS = 2
# A trial worse than every precedent is bounded by this many of the worst ones.
_MIN_PRECEDENTS = 2
# The final-cost range is the fit's mean plus and minus this many residual deviations.
_COST_SIGMAS = 2.0
# Smallest residual deviation of log cost assumed (a perfect fit still has rounding, timing noise).
_MIN_LOG_COST_SD = 0.05
# Ridge penalty of the log-cost fit (inputs are O(1)).
_RIDGE = 1e-6


@dataclass(frozen=True)
class EarlyStopping:
    """Settings of the stopping rule (``early_stopping:`` in a sweep file).

    Attributes:
        min_steps: reports a trial must have made before it may be stopped.
        min_completed: completed trials with a curve the study needs before
            any trial is stopped.
        noise_sigmas: the margin for noise, in standard deviations of the
            observed report noise: values closer than that count as equal
            (when finding a trial's precedents and the runs that ended on
            the front; without a final-cost estimate it is added to the
            margin).
        margin_scale: multiplies the learned catch-up allowance (above 1 stops
            less, below 1 stops more).
        kill_grace: seconds between SIGTERM and SIGKILL when a program is stopped.
        check_interval: seconds between two decisions on a running program.
    """

    min_steps: int = 3
    min_completed: int = 5
    noise_sigmas: float = 3.0
    margin_scale: float = 1.0
    kill_grace: float = 10.0
    check_interval: float = 2.0

    def __post_init__(self) -> None:
        for name in ("min_steps", "min_completed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"early_stopping.{name} must be an integer >= 1, got {value!r}")
        for name in ("noise_sigmas", "margin_scale", "kill_grace", "check_interval"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"early_stopping.{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EarlyStopping:
        """Settings from a mapping; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"early_stopping must be a mapping of settings, got {data!r}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise ValueError(
                    f"unknown key 'early_stopping.{key}'; allowed keys: {known}"
                )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (the keys of the sweep file)."""
        return asdict(self)


def as_early_stopping(value: EarlyStopping | Mapping[str, Any] | bool | None) -> EarlyStopping | None:
    """``None``/``False`` -> off; ``True`` or ``{}`` -> defaults; a mapping -> those settings."""
    if value is None or value is False:
        return None
    if value is True:
        return EarlyStopping()
    if isinstance(value, EarlyStopping):
        return value
    return EarlyStopping.from_dict(value)


@dataclass(frozen=True)
class Curve:
    """A trial's reports as ``(cost so far, value)`` pairs in step order."""

    costs: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class FinishedRun:
    """A completed trial: final output and cost, its curve (possibly empty) and,
    for the final-cost estimate, its point as numbers (the optimizer's basic
    coordinates: logarithms for log-scaled parameters)."""

    output: float
    cost: float
    curve: Curve
    x: tuple[float, ...] | None = None

    def points(self) -> list[tuple[float, float]]:
        """``(cost, value)`` of every report and of the final result."""
        return [*zip(self.curve.costs, self.curve.values), (self.cost, self.output)]


@dataclass(frozen=True)
class Decision:
    """Whether to stop, and why (the numbers behind it, for logs and the stored reason)."""

    stop: bool
    reason: str
    deficit: float | None = None
    margin: float | None = None
    bound: float | None = None  # the best final value still judged plausible (metric units)


def report_noise(curves: Sequence[Curve]) -> float:
    """Robust standard deviation of report noise, from the curves' second differences.

    For a smooth curve plus independent noise of deviation ``s``, a second
    difference has deviation ``s * sqrt(6)``; the median absolute value keeps
    a few jumps from inflating the estimate.
    """
    diffs: list[float] = []
    for curve in curves:
        v = curve.values
        diffs.extend(abs(v[i + 1] - 2 * v[i] + v[i - 1]) for i in range(1, len(v) - 1))
    if not diffs:
        return 0.0
    diffs.sort()
    mid = len(diffs) // 2
    median = diffs[mid] if len(diffs) % 2 else 0.5 * (diffs[mid - 1] + diffs[mid])
    return _MAD_TO_SIGMA * median / math.sqrt(6.0)


class Front:
    """Best value reached by cost ``c`` by completed runs (``sign``: 1 to maximise)."""

    def __init__(self, runs: Sequence[FinishedRun], sign: int) -> None:
        self.sign = sign
        points = sorted(p for run in runs for p in run.points())
        self._costs: list[float] = []
        self._best: list[float] = []
        best = -math.inf
        for cost, value in points:
            best = max(best, sign * value)
            self._costs.append(cost)
            self._best.append(best)

    def at(self, cost: float) -> float | None:
        """The front's value (in "higher is better" units) at ``cost``; ``None`` below every run."""
        i = bisect.bisect_right(self._costs, cost)
        return None if i == 0 else self._best[i - 1]


class LeaveOneOutFront:
    """The front of all runs but one, for every one of them, from a single sort.

    Along the points in cost order it keeps the best value and the best value
    of any other run than the best's, so that the front without run ``i`` is
    one lookup: ``O(P log P)`` for ``P`` points instead of a front per run.
    """

    def __init__(self, runs: Sequence[FinishedRun], sign: int) -> None:
        points = sorted(
            (cost, sign * value, i) for i, run in enumerate(runs) for cost, value in run.points()
        )
        self._costs: list[float] = []
        self._best: list[tuple[float, int, float]] = []  # (best, its run, best of the other runs)
        best, best_run, second = -math.inf, -1, -math.inf
        for cost, value, run in points:
            if run == best_run:
                best = max(best, value)
            elif value > best:
                best, best_run, second = value, run, best
            else:
                second = max(second, value)
            self._costs.append(cost)
            self._best.append((best, best_run, second))

    def at(self, cost: float, without: int) -> float | None:
        """The front of every run but ``without`` at ``cost``; ``None`` below all of them."""
        k = bisect.bisect_right(self._costs, cost)
        if k == 0:
            return None
        best, best_run, second = self._best[k - 1]
        value = second if best_run == without else best
        return None if value == -math.inf else value


class FinalCost:
    """Range of a run's final cost from its point: log cost fitted linearly on finished runs."""

    def __init__(self, runs: Sequence[FinishedRun]) -> None:
        rows = [(r.x, r.cost) for r in runs if r.x is not None and r.cost > 0]
        self.dim = len(rows[0][0]) if rows else 0
        rows = [(x, c) for x, c in rows if len(x) == self.dim]
        self.ready = len(rows) >= self.dim + 3  # at least two degrees of freedom for the spread
        self.n = len(rows)
        self.sd = math.inf
        if not self.ready:
            return
        X = np.array([x for x, _ in rows], dtype=float)
        y = np.log([c for _, c in rows])
        self._mean_x, self._b = X.mean(axis=0), float(y.mean())
        Xc = X - self._mean_x
        self._inverse = np.linalg.inv(Xc.T @ Xc + _RIDGE * self.n * np.eye(self.dim))
        self._w = self._inverse @ (Xc.T @ (y - self._b))
        resid = y - self._b - Xc @ self._w
        self.sd = max(math.sqrt(float(resid @ resid) / (self.n - self.dim - 1)), _MIN_LOG_COST_SD)

    def range(self, x: Sequence[float] | None) -> tuple[float, float] | None:
        """``(low, high)`` final cost of a run at ``x``; ``None`` without a fit or a point.

        The spread is the fit's prediction spread at ``x``: it widens with the
        distance from the finished runs (the leverage), so a point unlike any of
        them (a schedule longer than any run so far) gets a wide range.
        """
        if not self.ready or x is None or len(x) != self.dim:
            return None
        xc = np.asarray(x, dtype=float) - self._mean_x
        log_cost = self._b + float(xc @ self._w)
        leverage = float(xc @ self._inverse @ xc)
        spread = min(_COST_SIGMAS * self.sd * math.sqrt(1.0 + 1.0 / self.n + leverage), 50.0)
        return math.exp(log_cost - spread), math.exp(log_cost + spread)


def _tail_best(values: Sequence[float], sign: int) -> float:
    """Best of the last ``_TAIL`` values, in "higher is better" units."""
    return max(sign * v for v in values[-_TAIL:])


class StoppingReference:
    """What a running trial is judged against, computed once from the study's finished trials."""

    def __init__(
        self,
        rule: EarlyStopping,
        sign: int,
        completed: Sequence[FinishedRun],
        other_curves: Sequence[Curve] = (),
    ) -> None:
        self.rule = rule
        self.sign = sign
        self.completed = list(completed)
        with_curves = [r for r in completed if r.curve.values]
        self.ready = len(with_curves) >= rule.min_completed
        self.front = Front(completed, sign)
        self.noise = report_noise([r.curve for r in completed] + list(other_curves))
        self.final_cost = FinalCost(completed)
        # The front of the other runs at each run's final cost (its own final if it is the cheapest).
        self._end_front: list[float] = []
        self._on_front = self._front_enders(completed)
        self._catch_up = self._catch_ups(completed)
        self._by_fraction: dict[float, tuple[list[float | None], float | None]] = {}

    def _front_enders(self, completed: Sequence[FinishedRun]) -> list[int]:
        """Indices of the runs that ended on the front (of the other runs) at their cost."""
        self._others = LeaveOneOutFront(completed, self.sign)
        out = []
        for i, run in enumerate(completed):
            end = self._others.at(run.cost, i)
            self._end_front.append(self.sign * run.output if end is None else end)
            if end is not None and self.sign * run.output < end - self.rule.noise_sigmas * self.noise:
                continue  # ended behind the front: it says nothing about catching up
            out.append(i)
        return out

    def _catch_ups(self, completed: Sequence[FinishedRun]) -> list[tuple[float, float, int]]:
        """``(cost, deficit, run index)`` along the curves of runs that ended on the front."""
        points: list[tuple[float, float, int]] = []
        for i in self._on_front:
            run = completed[i]
            for cost, value in zip(run.curve.costs, run.curve.values):
                front = self._others.at(cost, i)
                if front is not None:
                    points.append((cost, max(front - self.sign * value, 0.0), i))
        return points

    def catch_up(self, cost: float) -> float | None:
        """The largest deficit front-ending runs recovered from near ``cost`` (the rule
        without a final-cost estimate).

        ``None`` when fewer than two such runs were observed near ``cost``.
        """
        near = [
            (d, run) for c, d, run in self._catch_up
            if cost / _COST_WINDOW <= c <= cost * _COST_WINDOW
        ]
        if len({run for _, run in near}) < _MIN_CATCH_UP_RUNS:
            return None
        return max(d for d, _ in near)

    # -- the rule with a final-cost estimate ----------------------------------------------
    def at_fraction(self, fraction: float) -> list[float | None]:
        """Where each completed run was at ``fraction`` of its cost: its value then (tail best,
        higher is better) minus the front at its final cost; ``None`` before its first report."""
        out: list[float | None] = []
        for run, end in zip(self.completed, self._end_front):
            k = bisect.bisect_right(run.curve.costs, fraction * run.cost * (1 + 1e-9))
            out.append(_tail_best(run.curve.values[:k], self.sign) - end if k else None)
        return out

    def _bound(self, behind: float, at: Sequence[float | None], skip: int | None = None) -> float | None:
        """How a run ``behind`` the front at its final cost at some fraction may end, relative to
        that front: the best relative final of its precedents, the completed runs (but ``skip``)
        not clearly ahead of it at the same fraction (by more than the noise margin), or if
        fewer than two, of the two furthest behind; and no better than ``behind`` plus the most
        ground any of them gained from there. ``None`` with fewer than two runs to go by."""
        tolerance = self.rule.noise_sigmas * self.noise
        pairs = [
            (v, self.sign * run.output - end)
            for j, (v, run, end) in enumerate(zip(at, self.completed, self._end_front))
            if v is not None and j != skip
        ]
        if len(pairs) < _MIN_PRECEDENTS:
            return None
        like = [final for v, final in pairs if v <= behind + tolerance]
        if len(like) < _MIN_PRECEDENTS:
            like = [final for _, final in sorted(pairs)[:_MIN_PRECEDENTS]]
        # Nor can it gain more ground than any completed run gained from this fraction on
        # (what bounds a run further behind than every precedent).
        gain = max(final - v for v, final in pairs)
        return min(max(like), behind + gain)

    def fraction_catch_up(self, fraction: float, at: Sequence[float | None] | None = None) -> float | None:
        """How far runs that ended on the front beat their own bound from ``fraction`` on.

        ``None`` when fewer than two such runs had reported by that fraction.
        """
        if at is None:
            at = self.at_fraction(fraction)
        excess, seen = 0.0, 0
        for i in self._on_front:
            behind = at[i]
            if behind is None:
                continue
            bound = self._bound(behind, at, skip=i)
            if bound is None:
                continue
            seen += 1
            final = self.sign * self.completed[i].output - self._end_front[i]
            excess = max(excess, final - bound)
        return excess if seen >= _MIN_CATCH_UP_RUNS else None

    def decide(self, curve: Curve, x: Sequence[float] | None = None) -> Decision:
        """Stop the trial whose reports so far are ``curve`` (at point ``x``, if known)?"""
        rule = self.rule
        n = len(curve.values)
        if n < rule.min_steps:
            return Decision(False, f"{n} of {rule.min_steps} reports needed before stopping")
        if not self.ready:
            return Decision(
                False, f"fewer than {rule.min_completed} completed trials with curves to learn from"
            )
        cost = curve.costs[-1]
        front = self.front.at(cost)
        if front is None:
            return Decision(False, f"no completed trial costs {cost:.4g} or less")
        mine = _tail_best(curve.values, self.sign)
        deficit = front - mine
        if deficit <= 0:
            return Decision(False, "on the front at its cost", deficit, 0.0)
        final_cost = self.final_cost.range(x)
        if final_cost is None or cost > final_cost[1]:
            return self._decide_at_cost(curve, cost, mine, deficit)
        if cost >= final_cost[0]:
            # As far as its cost tells, it may be done: little is left to save, and a run
            # stopped at its end would be lost to the model as a finished result.
            return Decision(
                False,
                f"its cost {cost:.4g} is within the range {final_cost[0]:.4g}-{final_cost[1]:.4g} "
                "expected for its final cost",
                deficit,
            )
        low, high = final_cost
        # Rounded down to a percent (earlier in the schedule: more room to catch up), so that
        # the precedents and the catch-up are computed once per percent, not per decision.
        fraction = max(math.floor(100.0 * cost / high), 1) / 100.0
        target = self.front.at(low)
        assert target is not None  # low > cost, where the front exists
        if fraction not in self._by_fraction:
            at = self.at_fraction(fraction)
            self._by_fraction[fraction] = (at, self.fraction_catch_up(fraction, at))
        at, catch_up = self._by_fraction[fraction]
        bound = self._bound(mine - target, at)
        if bound is None or catch_up is None:
            return Decision(
                False,
                f"fewer than {_MIN_CATCH_UP_RUNS} trials that ended on the front had reported by "
                f"{fraction:.0%} of their cost",
                deficit,
            )
        # Plus one deviation of report noise: the front is the best of many noisy reports, so
        # it sits lower than the runs' true values (measured: without it, half the trials this
        # stopped under heavy noise would have ended on the front).
        margin = rule.margin_scale * catch_up + self.noise
        reachable = target + bound + margin
        if reachable >= target:
            return Decision(
                False,
                f"at {fraction:.0%} of its expected cost, trials as far behind ended "
                f"{-bound:.4g} behind the front at their cost at best; within the margin "
                f"{margin:.4g} it may reach the front {self.sign * target:.4g} at cost {low:.4g}",
                deficit, margin, self.sign * reachable,
            )
        return Decision(
            True,
            f"behind the front: at {fraction:.0%} of its expected cost {low:.4g}-{high:.4g} it is "
            f"{target - mine:.4g} behind the front there ({self.sign * target:.4g}); trials as far "
            f"behind ended {-bound:.4g} behind at best, more than the margin {margin:.4g} "
            f"(catch-up {catch_up:.4g}, noise {self.noise:.4g}); after {n} reports",
            deficit, margin, self.sign * reachable,
        )

    def _decide_at_cost(self, curve: Curve, cost: float, mine: float, deficit: float) -> Decision:
        """The rule without a final-cost estimate: the current value against the front now."""
        rule = self.rule
        n = len(curve.values)
        catch_up = self.catch_up(cost)
        if catch_up is None:
            return Decision(
                False,
                f"fewer than {_MIN_CATCH_UP_RUNS} trials that ended on the front were observed "
                f"near cost {cost:.4g}",
                deficit,
            )
        margin = rule.margin_scale * catch_up + rule.noise_sigmas * self.noise
        if deficit <= margin:
            return Decision(
                False, f"behind the front by {deficit:.4g}, within the margin {margin:.4g}",
                deficit, margin,
            )
        return Decision(
            True,
            f"behind the front at cost {cost:.4g} by {deficit:.4g}, more than the margin "
            f"{margin:.4g} (catch-up {catch_up:.4g}, noise {self.noise:.4g}) after {n} reports",
            deficit,
            margin,
            self.sign * (mine + margin),
        )
