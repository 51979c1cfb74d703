"""Early stopping on simulated learning curves, at equal cumulative cost.

    nice -n 10 python -m benchmarks.curves            # the published run (about 15 minutes)
    python -m benchmarks.curves --seeds 1 --quick     # a smoke run (about a minute)

Each trial trains for ``epochs`` steps; after every step it reports its
(noisy) loss and the cost spent so far, and the tuner may stop it. A run ends
when its cumulative cost (stopped trials included, at what they spent)
reaches the budget. Compared: CARBS without and with its stopping rule,
Optuna's TPE with ``MedianPruner`` and with ``HyperbandPruner``, and random
search with ASHA-style stopping (a trial reaching a rung continues only if it
is in the best third of the values seen at that rung). Every stopped trial is
also run to its end here, off the books, to count how often it would have
ended on the run's front.

The report (markdown) goes to stdout and, with ``--out``, to a file.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import sys
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.metrics import FrontReference, front_at

# ---------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------
Knobs = dict[str, tuple[float, float, float, bool]]  # name: (low, high, default, integer)
KNOBS: Knobs = {
    "lr": (1e-4, 1.0, 1e-2, False),
    "epochs": (4, 64, 12, True),
    "width": (16.0, 512.0, 64.0, False),
}
FIXED_KNOBS: Knobs = {k: v for k, v in KNOBS.items() if k != "epochs"}
FIXED_EPOCHS = 30


@dataclass(frozen=True)
class CurveProblem:
    """A family of learning curves over (lr, epochs, width).

    The loss a run reaches at the end of its schedule falls with width and
    epochs and is best at a learning rate that shrinks with width. Within a
    run, the fraction ``t = step / epochs`` of the schedule sets the shape:
    ``final + (start - final) * (1 - t) ** p`` with ``p`` growing with the
    learning rate, so high rates drop fast and flatten (and often end worse),
    low rates and long schedules stay behind until late: curves cross.
    """

    name: str
    description: str
    noise: float
    budget: float
    knobs: Knobs = field(default_factory=lambda: dict(KNOBS))
    start: float = 2.3

    def setting(self, p: dict[str, Any]) -> dict[str, Any]:
        """The full setting (a fixed schedule length when epochs are not tuned)."""
        return p if "epochs" in p else {**p, "epochs": FIXED_EPOCHS}

    def final(self, p: dict[str, Any]) -> float:
        """Noise-free loss at the end of the schedule."""
        lr_opt = 0.03 * (64.0 / p["width"]) ** 0.5
        miss = math.log10(p["lr"] / lr_opt)
        capacity = 0.25 * (16.0 / p["width"]) ** 0.5
        return 0.1 + capacity + 0.6 / p["epochs"] ** 0.5 + 0.12 * miss**2 + (0.3 if miss > 1.0 else 0.0)

    def value(self, p: dict[str, Any], step: int) -> float:
        """Noise-free loss after ``step`` of ``epochs`` steps."""
        t = step / p["epochs"]
        shape = 0.6 * (p["lr"] / 1e-3) ** 0.35  # fast early drop at high rates
        end = self.final(p)
        return end + (self.start - end) * (1.0 - t) ** shape

    def step_cost(self, p: dict[str, Any]) -> float:
        """Cost of one step (simulated seconds): wider models are slower."""
        return (p["width"] / 64.0) ** 0.7


PROBLEMS = {
    "fixed": CurveProblem(
        "fixed", f"lr and width tuned, {FIXED_EPOCHS} epochs for every trial, noise sd 0.02",
        noise=0.02, budget=2400.0, knobs=FIXED_KNOBS,
    ),
    "fixed_noisy": CurveProblem(
        "fixed_noisy", "the same with heavy noise (sd 0.08)",
        noise=0.08, budget=2400.0, knobs=FIXED_KNOBS,
    ),
    "crossing": CurveProblem(
        "crossing", "lr, width and epochs tuned: long schedules start slowly and overtake, "
        "noise sd 0.01", noise=0.01, budget=2400.0,
    ),
}


# ---------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------
@dataclass
class Trial:
    """One trial of a run, as it went and as it would have ended."""

    params: dict[str, Any]
    cost: float  # what it spent (all of it if it completed)
    pruned: bool
    final: float  # noise-free loss at the end of its schedule
    full_cost: float


@dataclass
class Trace:
    """Everything one (problem, tuner, seed) run produced."""

    problem: str
    tuner: str
    seed: int
    trials: list[Trial] = field(default_factory=list)
    wall_s: float = 0.0


class Stepper(ABC):
    """Reports steps to a tuner and tells it when the trial ends."""

    @abstractmethod
    def start(self) -> dict[str, Any]:
        """The next setting."""

    @abstractmethod
    def report(self, step: int, value: float, cost: float) -> bool:
        """One step's loss and cost so far; ``True`` means stop the trial."""

    @abstractmethod
    def finish(self, value: float, cost: float, pruned: bool) -> None:
        """The trial ended (completed, or stopped after ``report`` said so)."""


def run(problem: CurveProblem, tuner: str, seed: int, max_trials: int) -> Trace:
    """Run ``tuner`` on ``problem`` until the cumulative cost reaches the budget."""
    stepper = make_stepper(tuner, problem.knobs, seed)
    trace = Trace(problem.name, tuner, seed)
    spent = 0.0
    started = time.perf_counter()
    while spent < problem.budget and len(trace.trials) < max_trials:
        p = problem.setting(stepper.start())
        noise = random.Random(zlib.crc32(f"{problem.name}:{seed}:{len(trace.trials)}".encode()))
        unit = problem.step_cost(p)
        pruned, cost, value = False, 0.0, math.nan
        for step in range(1, p["epochs"] + 1):
            value = problem.value(p, step) + noise.gauss(0.0, problem.noise)
            cost = unit * step
            if stepper.report(step, value, cost) and step < p["epochs"]:
                pruned = True
                break
        stepper.finish(value, cost, pruned)
        trace.trials.append(Trial(p, cost, pruned, problem.final(p), unit * p["epochs"]))
        spent += cost
    trace.wall_s = time.perf_counter() - started
    return trace


def _clip(p: dict[str, Any], knobs: Knobs) -> dict[str, Any]:
    out = {}
    for name, (lo, hi, _default, integer) in knobs.items():
        v = min(max(float(p[name]), lo), hi)
        out[name] = int(round(v)) if integer else v
    return out


class CarbsStepper(Stepper):
    """A carbs ``Study`` (in memory), ask/tell with ``trial.report`` / ``should_prune``."""

    def __init__(self, knobs: Knobs, seed: int, stopping: bool) -> None:
        import carbs
        from carbs import LogSpace, Param

        self.knobs = knobs
        params = [
            Param(n, LogSpace(min=lo, max=hi, is_integer=integer), search_center=default)
            for n, (lo, hi, default, integer) in knobs.items()
        ]
        self.study = carbs.create_study(
            f"bench-{seed}", "sqlite:///:memory:", params, "minimize",
            settings={"seed": seed}, early_stopping=True if stopping else None,
        )
        self.stopping = stopping
        self.trial: Any = None

    def start(self) -> dict[str, Any]:
        self.trial = self.study.ask()
        return _clip(self.trial.params, self.knobs)

    def report(self, step: int, value: float, cost: float) -> bool:
        self.trial.report(value, step, cost=cost)
        return self.stopping and bool(self.trial.should_prune())

    def finish(self, value: float, cost: float, pruned: bool) -> None:
        if pruned:
            self.study.tell(self.trial, pruned=True)
        else:
            self.study.tell(self.trial, value, cost)


class OptunaStepper(Stepper):
    """Optuna's TPE with a pruner, stepping by epoch as Optuna's pruners expect."""

    def __init__(self, knobs: Knobs, seed: int, pruner: str) -> None:
        import optuna

        self.knobs = knobs
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        chosen: Any = (
            optuna.pruners.MedianPruner()
            if pruner == "median"
            else optuna.pruners.HyperbandPruner(min_resource=1, max_resource=64, reduction_factor=3)
        )
        self.study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(seed=seed), pruner=chosen, direction="minimize"
        )
        self.trial: Any = None

    def start(self) -> dict[str, Any]:
        t = self.study.ask()
        self.trial = t
        return {
            n: t.suggest_int(n, int(lo), int(hi), log=True)
            if integer
            else t.suggest_float(n, lo, hi, log=True)
            for n, (lo, hi, _default, integer) in self.knobs.items()
        }

    def report(self, step: int, value: float, cost: float) -> bool:
        self.trial.report(value, step)
        return bool(self.trial.should_prune())

    def finish(self, value: float, cost: float, pruned: bool) -> None:
        state = self.optuna.trial.TrialState
        if pruned:
            self.study.tell(self.trial, state=state.PRUNED)
        else:
            self.study.tell(self.trial, value)


class AshaStepper(Stepper):
    """Random search (log-uniform) with ASHA-style rungs at steps 1, 3, 9, 27 (eta 3)."""

    ETA = 3
    RUNGS = (1, 3, 9, 27)

    def __init__(self, knobs: Knobs, seed: int) -> None:
        self.knobs = knobs
        self.rng = random.Random(seed)
        self.seen: dict[int, list[float]] = {r: [] for r in self.RUNGS}

    def start(self) -> dict[str, Any]:
        p = {
            n: math.exp(self.rng.uniform(math.log(lo), math.log(hi)))
            for n, (lo, hi, _d, _i) in self.knobs.items()
        }
        return _clip(p, self.knobs)

    def report(self, step: int, value: float, cost: float) -> bool:
        if step not in self.seen:
            return False
        seen = self.seen[step]
        seen.append(value)
        if len(seen) < self.ETA:
            return False
        # Continue only if among the best 1/eta of the values recorded at this rung.
        keep = max(1, len(seen) // self.ETA)
        return value > sorted(seen)[keep - 1]

    def finish(self, value: float, cost: float, pruned: bool) -> None:
        return None


TUNERS: dict[str, Callable[[Knobs, int], Stepper]] = {
    "carbs": lambda knobs, seed: CarbsStepper(knobs, seed, stopping=False),
    "carbs+stop": lambda knobs, seed: CarbsStepper(knobs, seed, stopping=True),
    "tpe+median": lambda knobs, seed: OptunaStepper(knobs, seed, "median"),
    "tpe+hyperband": lambda knobs, seed: OptunaStepper(knobs, seed, "hyperband"),
    "random+asha": lambda knobs, seed: AshaStepper(knobs, seed),
}


def make_stepper(tuner: str, knobs: Knobs, seed: int) -> Stepper:
    """A fresh tuner of that name."""
    return TUNERS[tuner](knobs, seed)


# ---------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------
def paid(trace: Trace, budget: float) -> list[Trial]:
    """The trials paid for within ``budget`` of cumulative cost."""
    out, total = [], 0.0
    for t in trace.trials:
        total += t.cost
        if total > budget * (1 + 1e-12):
            break
        out.append(t)
    return out


def front_of(trials: Sequence[Trial]) -> tuple[np.ndarray, np.ndarray]:
    """Costs and noise-free finals of the completed trials."""
    done = [t for t in trials if not t.pruned]
    return np.array([t.cost for t in done]), np.array([t.final for t in done])


def reference(traces: Sequence[Trace], budget: float) -> FrontReference:
    """The best known front over every run on one problem (see ``benchmarks.metrics``)."""
    costs, outputs = front_of([t for tr in traces for t in paid(tr, budget)])
    return FrontReference(
        costs=costs, outputs=outputs, c_lo=float(costs.min()), c_hi=float(costs.max()),
        y_ref=float(np.quantile(outputs, 0.9)), y_best=float(outputs.min()),
    )


FRACTIONS = (0.1, 0.3, 0.6, 1.0)
# Budget fractions at which the front gap is also taken, to find where a tuner matches carbs@100%.
GRID = tuple(round(0.05 * k, 2) for k in range(1, 21))


@dataclass
class Scores:
    """One run's numbers."""

    gap: dict[float, float]
    best: dict[float, float]
    stopped_cost_share: float
    trials: int
    stopped: int
    stopped_on_front: int


def score(trace: Trace, ref: FrontReference, budget: float) -> Scores:
    """Front gap and best output at each budget fraction, and what stopping did."""
    gap, best = {}, {}
    for f in sorted(set(FRACTIONS) | set(GRID)):
        trials = paid(trace, f * budget)
        costs, outputs = front_of(trials)
        gap[f] = ref.gap(costs, outputs)
        best[f] = float(outputs.min()) if outputs.size else math.nan
    trials = paid(trace, budget)
    stopped = [t for t in trials if t.pruned]
    spent = sum(t.cost for t in trials)
    costs, outputs = front_of(trials)
    # A stopped trial "would have ended on the front" if, run to its end, no
    # completed trial of the run costing at most as much was better.
    on_front = 0
    for t in stopped:
        front = front_at(costs, outputs, np.array([t.full_cost]))[0]
        on_front += int(t.final < front)
    return Scores(
        gap, best, sum(t.cost for t in stopped) / spent if spent else 0.0,
        len(trials), len(stopped), on_front,
    )


def _fmt(values: Sequence[float], digits: int = 3) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def matching_share(scores: Sequence[Scores], baseline: Sequence[Scores]) -> str:
    """Mean smallest budget share at which a run's front gap is at most the same seed's
    ``baseline`` gap at the full budget ("never" counts as more than 100%)."""
    shares = []
    for mine, base in zip(scores, baseline):
        target = base.gap[1.0] + 1e-12
        shares.append(next((f for f in GRID if mine.gap[f] <= target), math.inf))
    missed = sum(1 for v in shares if not math.isfinite(v))
    found = [v for v in shares if math.isfinite(v)]
    text = f"{100 * statistics.fmean(found):.0f}%" if found else "-"
    return text + (f" ({missed} of {len(shares)} never)" if missed else "")


def report(results: dict[str, dict[str, list[Scores]]], seeds: int, wall: dict[str, float]) -> str:
    """The markdown tables of a run."""
    lines = []
    for name, by_tuner in results.items():
        problem = PROBLEMS[name]
        lines += [
            f"### `{name}`: {problem.description}, budget {problem.budget:g}",
            "",
            "| tuner | front gap @30% | @60% | @100% | best @10% | @30% | @100% "
            "| trials (stopped) | cost on stopped trials | stopped that would have ended on the front "
            "| budget to match carbs@100% |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        baseline = by_tuner.get("carbs")
        for tuner, scores in by_tuner.items():
            stopped = sum(s.stopped for s in scores)
            on_front = sum(s.stopped_on_front for s in scores)
            lines.append(
                f"| {tuner} | {_fmt([s.gap[0.3] for s in scores])} | "
                f"{_fmt([s.gap[0.6] for s in scores])} | {_fmt([s.gap[1.0] for s in scores])} | "
                f"{_fmt([s.best[0.1] for s in scores])} | {_fmt([s.best[0.3] for s in scores])} | "
                f"{_fmt([s.best[1.0] for s in scores])} | "
                f"{statistics.fmean(s.trials for s in scores):.0f} "
                f"({statistics.fmean(s.stopped for s in scores):.0f}) | "
                f"{100 * statistics.fmean(s.stopped_cost_share for s in scores):.0f}% | "
                + (f"{on_front}/{stopped} ({100 * on_front / stopped:.0f}%)" if stopped else "-")
                + f" | {matching_share(scores, baseline) if baseline else '-'} |"
            )
        lines.append("")
    lines.append(
        "The last column is the smallest share of the budget (in steps of 5%) at which a run's "
        "front gap is at most that of carbs without stopping at the full budget, same seed, "
        "averaged over seeds.\n"
    )
    lines.append(
        f"Means ± standard deviations over {seeds} seeds. Wall time per run: "
        + ", ".join(f"{t} {s:.1f} s" for t, s in wall.items())
        + "."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--tuners", default=",".join(TUNERS))
    parser.add_argument("--quick", action="store_true", help="a third of the budget")
    parser.add_argument("--max-trials", type=int, default=400)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("carbs").setLevel(logging.ERROR)
    tuners = args.tuners.split(",")
    results: dict[str, dict[str, list[Scores]]] = {}
    walls: dict[str, list[float]] = {t: [] for t in tuners}
    for name in args.problems.split(","):
        problem = PROBLEMS[name]
        if args.quick:
            problem = CurveProblem(
                name, problem.description, problem.noise, problem.budget / 3, problem.knobs
            )
            PROBLEMS[name] = problem
        traces = []
        for tuner in tuners:
            for seed in range(args.seeds):
                trace = run(problem, tuner, seed, args.max_trials)
                walls[tuner].append(trace.wall_s)
                print(
                    f"{name} {tuner} seed {seed}: {len(trace.trials)} trials, "
                    f"{trace.wall_s:.1f} s", file=sys.stderr, flush=True,
                )
                traces.append(trace)
        ref = reference(traces, problem.budget)
        results[name] = {
            t: [score(tr, ref, problem.budget) for tr in traces if tr.tuner == t] for t in tuners
        }
    text = report(results, args.seeds, {t: statistics.fmean(w) for t, w in walls.items() if w})
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
