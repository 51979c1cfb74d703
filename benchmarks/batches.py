"""How good suggestions made in batches are: rounds of ``suggest_batch``, as many
workers would run them.

Each run asks ``--batch`` suggestions at once, runs them all (the problem's
simulated trials), observes them, and repeats for ``--rounds`` rounds; the
first suggestions come from the random phase as in any run. Printed per
problem, mean and standard deviation over the seeds: the best true output
reached (lower is better) and, for problems that know their true frontier,
the truth gap of the front found (see ``benchmarks.metrics.truth_gap``)::

    python -m benchmarks.batches --problems wide_scaling,mf_hartmann --seeds 40

To compare two versions of the optimizer, run it with each on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np

import carbs
from benchmarks.metrics import truth_gap
from benchmarks.problems import PROBLEM_CLASSES, make_problem
from benchmarks.tuners.carbs_tuner import to_carbs_param
from carbs import CARBS, CARBSParams, ObservationInParam


def run_batches(name: str, seed: int, batch: int, rounds: int) -> tuple[float, float]:
    """Best true output and truth gap (``nan`` if unknown) of one run in batches."""
    problem = make_problem(name)
    names = [k.name for k in problem.knobs]
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=seed), [to_carbs_param(k) for k in problem.knobs])
    rng = np.random.default_rng(1000 + seed)
    costs, trues = [], []
    for _ in range(rounds):
        for out in opt.suggest_batch(batch):
            suggestion = out.suggestion
            outcome = problem.evaluate({n: suggestion[n] for n in names}, rng)
            output = math.nan if outcome.is_failure else outcome.output
            opt.observe(ObservationInParam(suggestion, output, outcome.cost, is_failure=outcome.is_failure))
            if not outcome.is_failure:
                costs.append(outcome.cost)
                trues.append(outcome.true_output)
    gap = math.nan
    if problem.truth_cost_range is not None and problem.true_front(np.array(problem.truth_cost_range)) is not None:
        gap = truth_gap(problem.true_front, problem.truth_cost_range, np.array(costs), np.array(trues),
                        ceiling=problem.truth_ceiling)
    return min(trues), gap


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} ± {sd:.2g}"


def main(argv: list[str] | None = None) -> int:
    """Run the problems in batches and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", default="wide_scaling,wide_scaling_noisy,mf_hartmann",
                        help=f"comma-separated, from {sorted(PROBLEM_CLASSES)}")
    parser.add_argument("--seeds", type=int, default=10, help="runs per problem (default 10)")
    parser.add_argument("--batch", type=int, default=8, help="suggestions per round (default 8)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds per run (default 9)")
    args = parser.parse_args(argv)
    for field in ("seeds", "batch", "rounds"):
        if getattr(args, field) < 1:
            parser.error(f"--{field} must be a positive integer, got {getattr(args, field)}")
    problems = [p for p in args.problems.split(",") if p]
    for name in problems:
        if name not in PROBLEM_CLASSES:
            parser.error(f"--problems: unknown problem {name!r}; choose from {sorted(PROBLEM_CLASSES)}")
    print(f"carbs {carbs.__version__}: {args.rounds} rounds of suggest_batch({args.batch}), {args.seeds} seeds\n")
    print("| problem | best true output | truth gap |")
    print("|---|---:|---:|")
    for name in problems:
        runs = [run_batches(name, seed, args.batch, args.rounds) for seed in range(args.seeds)]
        print(f"| {name} | {_mean_sd([b for b, _ in runs])} | {_mean_sd([g for _, g in runs])} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
