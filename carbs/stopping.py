"""The cost-aware stopping rule: stop a running trial that the front clearly beats at its cost.

A running trial has reported its metric at some steps, each with the cost it
had spent by then. At its latest cost ``c`` it is compared with the *front at
c*: the best value any completed trial had reached by cost ``c``, counting
both the final outputs of trials that cost at most ``c`` and the points of the
completed trials' curves (a run that had reached 0.3 at cost 10 shows that
0.3 is reachable for cost 10, even if the run went on). A
trial behind that front is not hopeless by itself: noise can put it behind,
and a run with a long schedule is usually behind cheaper finished runs in the
middle of its training and overtakes them at the end (curves cross). The rule
therefore learns, from the study's own curves, two allowances:

* **noise**: the spread of reported values around a smooth curve, estimated
  from the second differences of every stored curve (a robust scale, so a
  single jump does not inflate it);
* **catch-up**: for every completed trial that ended on the front, how far
  behind the front at the same cost it had been along the way. At cost ``c``
  the largest such deficit seen at costs within a factor of 2 of ``c`` is
  allowed. Until at least two runs that ended on the front have been seen
  near ``c``, nothing is stopped at ``c``: a long run that is behind cheap
  finished runs may be one of the slow starters that overtake them, and
  without such runs there is no evidence either way.

A trial is stopped when it has made at least ``min_steps`` reports, the study
has at least ``min_completed`` completed trials with curves, and the best of
its last three values is behind the front at its cost by more than
``margin_scale * catch_up + noise_sigmas * noise``. A trial at or ahead of the
front at its cost is never stopped, whatever the settings.

Plain data in, a decision out: the module knows nothing about storage.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

# Values of a curve's tail whose best is compared with the front (robust to one noisy report).
_TAIL = 3
# Costs within this factor of the judged cost count as "near it" for the catch-up allowance.
_COST_WINDOW = 2.0
_MAD_TO_SIGMA = 1.4826
# Runs that ended on the front needed near a cost before anything is stopped there.
_MIN_CATCH_UP_RUNS = 2


@dataclass(frozen=True)
class EarlyStopping:
    """Settings of the stopping rule (``early_stopping:`` in a sweep file).

    Attributes:
        min_steps: reports a trial must have made before it may be stopped.
        min_completed: completed trials with a curve the study needs before
            any trial is stopped.
        noise_sigmas: the margin for noise, in standard deviations of the
            observed report noise.
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
    """A completed trial: final output and cost, and its curve (possibly empty)."""

    output: float
    cost: float
    curve: Curve

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
        with_curves = [r for r in completed if r.curve.values]
        self.ready = len(with_curves) >= rule.min_completed
        self.front = Front(completed, sign)
        self.noise = report_noise([r.curve for r in completed] + list(other_curves))
        self._catch_up = self._catch_ups(completed)

    def _catch_ups(self, completed: Sequence[FinishedRun]) -> list[tuple[float, float, int]]:
        """``(cost, deficit, run index)`` along the curves of runs that ended on the front."""
        points: list[tuple[float, float, int]] = []
        for i, run in enumerate(completed):
            others = Front([r for j, r in enumerate(completed) if j != i], self.sign)
            end = others.at(run.cost)
            if end is not None and self.sign * run.output < end - self.rule.noise_sigmas * self.noise:
                continue  # ended behind the front: its deficits say nothing about catching up
            for cost, value in zip(run.curve.costs, run.curve.values):
                front = others.at(cost)
                if front is not None:
                    points.append((cost, max(front - self.sign * value, 0.0), i))
        return points

    def catch_up(self, cost: float) -> float | None:
        """The largest deficit front-ending runs recovered from near ``cost``.

        ``None`` when fewer than two such runs were observed near ``cost``.
        """
        near = [
            (d, run) for c, d, run in self._catch_up
            if cost / _COST_WINDOW <= c <= cost * _COST_WINDOW
        ]
        if len({run for _, run in near}) < _MIN_CATCH_UP_RUNS:
            return None
        return max(d for d, _ in near)

    def decide(self, curve: Curve) -> Decision:
        """Stop the trial whose reports so far are ``curve``?"""
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
        mine = max(self.sign * v for v in curve.values[-_TAIL:])
        deficit = front - mine
        if deficit <= 0:
            return Decision(False, "on the front at its cost", deficit, 0.0)
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
        )
