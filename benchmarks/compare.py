"""Compare CARBS with other tuners at equal cumulative cost or at a fixed trial count.

Usage::

    python -m benchmarks.compare --quick          # a few minutes
    python -m benchmarks.compare --full           # the numbers in docs/benchmarks.md
    python -m benchmarks.compare --quick --problems lm_scaling --tuners carbs,tpe --seeds 3
    python -m benchmarks.compare --full --protocol trials --problems wide_scaling --refresh carbs

Finished runs are cached as JSON under ``benchmarks/results/raw/<mode>/``
(``<mode>-trials/`` for the fixed-trial protocol) and reused unless
``--fresh`` (every tuner) or ``--refresh`` (the named tuners) is given, so an
interrupted run can be resumed and one tuner can be re-measured against the
others' cached runs; a tuner whose environment is missing here is still
reported from its cached runs. The report goes to
``benchmarks/results/<mode>[-trials]/results.md``; plots of the full run go
to ``docs/img/benchmarks/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.environment import environment_lines, git_commit
from benchmarks.harness import PROTOCOL_TRIALS, PROTOCOLS, RunTrace, protocol_budget, run_one
from benchmarks.problems import PROBLEM_CLASSES, make_problem
from benchmarks.report import (
    cost_profile_table,
    group_by_problem,
    plot_problem,
    problem_table,
    score_all,
    summary_table,
)
from benchmarks.tuners import TUNERS, get_tuner_spec

logger = logging.getLogger("benchmarks.compare")

BENCHMARKS_DIR = Path(__file__).resolve().parent
DOCS_IMG_DIR = BENCHMARKS_DIR.parent / "docs" / "img" / "benchmarks"
# Seeds per (problem, tuner). Simulated problems cost only the tuners' own
# time, so the full run affords more seeds there than on wall-clock problems,
# which spend their whole budget in real training.
DEFAULT_SEEDS = {"quick": 2, "full": 5}
WALL_CLOCK_SEEDS = {"quick": 2, "full": 3}
# HEBO and Optuna's GP take seconds per suggestion: too slow for the quick run; ask by name.
# The reference CARBS and Protein take seconds per suggestion too.
QUICK_EXCLUDED = ("hebo", "gp", "reference", "protein")


def _split(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small budgets, 2 seeds (default)")
    mode.add_argument("--full", action="store_true", help="the budgets published in the docs")
    ap.add_argument("--problems", help=f"comma-separated subset of {','.join(PROBLEM_CLASSES)}")
    ap.add_argument("--tuners", help=f"comma-separated subset of {','.join(TUNERS)}")
    ap.add_argument("--seeds", type=int, help="seeds per (problem, tuner); default 2 quick, 5 full (3 on wall-clock problems)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel processes for simulated problems")
    ap.add_argument("--out", type=Path, help="report directory (default benchmarks/results/<mode>)")
    ap.add_argument("--plots", type=Path, help="plot directory (default docs/img/benchmarks for --full)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("--cache", type=Path, help="run cache (default benchmarks/results/raw/<mode>)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached runs")
    ap.add_argument("--refresh", help="comma-separated tuners whose cached runs are ignored (the others' are reused)")
    ap.add_argument("--protocol", choices=PROTOCOLS, default="cost",
                    help="cost: equal cumulative cost (default); trials: a fixed trial count "
                    f"({PROTOCOL_TRIALS['full']} full, {PROTOCOL_TRIALS['quick']} quick) whatever it costs")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every run")
    args = ap.parse_args(argv)
    args.mode = "full" if args.full else "quick"
    args.cache_dir = args.cache or default_cache_dir(args.mode, args.protocol)
    args.refresh = _split(args.refresh) or []
    for name in args.refresh:
        if name not in TUNERS:
            ap.error(f"--refresh: unknown tuner {name!r}; choose from {','.join(TUNERS)}")
    if args.seeds is not None and args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


# (problem, tuner, seed, mode, protocol, cache directory, ignore the cache)
_Job = tuple[str, str, int, str, str, Path, bool]


def _cache_path(cache_dir: Path, problem: str, tuner: str, seed: int) -> Path:
    return cache_dir / f"{problem}__{tuner}__{seed}.json"


def default_cache_dir(mode: str, protocol: str) -> Path:
    """Where runs of ``mode`` under ``protocol`` are cached by default."""
    return BENCHMARKS_DIR / "results" / "raw" / (mode if protocol == "cost" else f"{mode}-{protocol}")


def _run_cached(job: _Job) -> RunTrace:
    problem_name, tuner_name, seed, mode, protocol, cache_dir, fresh = job
    path = _cache_path(cache_dir, problem_name, tuner_name, seed)
    if path.exists() and not fresh:
        return RunTrace.from_dict(json.loads(path.read_text()))
    problem = make_problem(problem_name)
    budget = protocol_budget(problem, mode, protocol)
    trace = run_one(problem, get_tuner_spec(tuner_name), seed, budget, protocol)
    trace.commit = git_commit()
    if trace.error is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(trace.to_dict()))
    return trace


def select(args: argparse.Namespace) -> tuple[list[str], list[str], list[str], set[str]]:
    """Problems, tuners to report, notes on the tuners left out, and the tuners reported only from the cache."""
    problems = _split(args.problems) or list(PROBLEM_CLASSES)
    for name in problems:
        make_problem(name)  # raises on an unknown name
    asked = _split(args.tuners)
    tuners = asked or [t for t in TUNERS if not (args.mode == "quick" and t in QUICK_EXCLUDED)]
    notes, runnable, cache_only = [], [], set()
    for name in tuners:
        reason = get_tuner_spec(name).unavailable_reason()
        if reason and args.cache_dir.is_dir() and any(args.cache_dir.glob(f"*__{name}__*.json")):
            # Cannot run here, but its earlier runs can still be reported.
            cache_only.add(name)
            runnable.append(name)
        elif reason:
            notes.append(f"{TUNERS[name].label} skipped: {reason}")
        else:
            runnable.append(name)
    if not asked and args.mode == "quick":
        notes += [f"{TUNERS[t].label} left out of --quick (slow); add it with --tuners" for t in QUICK_EXCLUDED]
    return problems, runnable, notes, cache_only


def run(args: argparse.Namespace) -> tuple[list[RunTrace], list[str]]:
    """Run (or load) every (problem, tuner, seed) combination."""
    cache_dir = args.cache_dir
    problems, tuners, notes, cache_only = select(args)
    for note in notes:  # say up front, not only in the report, which tuners will not run
        logger.warning("note: %s", note)
    jobs: list[_Job] = []
    serial: list[_Job] = []
    for problem_name in problems:
        problem = make_problem(problem_name)
        for tuner in tuners:
            why = TUNERS[tuner].not_applicable_reason(problem)
            if why:
                notes.append(f"{TUNERS[tuner].label} not run on `{problem_name}`: {why}")
                continue
            default = (WALL_CLOCK_SEEDS if problem.wall_clock_cost else DEFAULT_SEEDS)[args.mode]
            for seed in range(args.seeds or default):
                if tuner in cache_only:
                    if not _cache_path(cache_dir, problem_name, tuner, seed).exists():
                        notes.append(f"{TUNERS[tuner].label} seed {seed} on `{problem_name}`: not cached "
                                     "and its environment is missing here")
                        continue
                    notes.append(f"{TUNERS[tuner].label} reported from cached runs (its environment is missing here)")
                fresh = args.fresh or tuner in args.refresh
                job = (problem_name, tuner, seed, args.mode, args.protocol, cache_dir, fresh)
                # Wall-clock problems measure their own cost: never overlap them.
                (serial if problem.wall_clock_cost else jobs).append(job)
    traces: list[RunTrace] = []
    if args.jobs > 1 and jobs:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for trace in pool.map(_run_cached, jobs):
                _log(trace)
                traces.append(trace)
    else:
        serial = jobs + serial
    for job in serial:
        trace = _run_cached(job)
        _log(trace)
        traces.append(trace)
    return traces, notes


def _log(trace: RunTrace) -> None:
    logger.info(
        "%-13s %-7s seed %d: %3d trials, cost %.4g, wall %.1f s%s",
        trace.problem, trace.tuner, trace.seed, len(trace.trials), trace.total_cost,
        trace.wall_time_s, f" ERROR {trace.error}" if trace.error else "",
    )


def write_report(args: argparse.Namespace, traces: list[RunTrace], notes: list[str], wall_s: float) -> str:
    """Tables and plots; returns the markdown report."""
    scores = score_all(traces)
    carbs_commits = sorted({t.commit or "(not recorded)" for t in traces if t.tuner == "carbs"})
    tag = args.mode if args.protocol == "cost" else f"{args.mode}-{args.protocol}"
    out_dir = args.out or BENCHMARKS_DIR / "results" / tag
    img_dir = DOCS_IMG_DIR if args.protocol == "cost" else DOCS_IMG_DIR / args.protocol
    plot_dir = args.plots or (img_dir if args.mode == "full" else out_dir / "img")
    if args.protocol == "cost":
        protocol = "equal cumulative cost: every tuner spends the problem's cost budget"
    else:
        protocol = f"fixed trial count: {PROTOCOL_TRIALS[args.mode]} trials per run, whatever they cost"
    parts = [
        f"## Benchmark results ({args.mode}, protocol `{args.protocol}`)",
        "",
        f"- protocol: {protocol}",
        *environment_lines(),
        *([f"- CARBS runs made at commit {', '.join(carbs_commits)}"] if carbs_commits else []),
        f"- total wall time of this invocation: {wall_s:.0f} s",
        "",
        "### Summary: mean best output at the full budget (rank)",
        "",
        summary_table(scores),
        "",
        "### Summary: mean Pareto-front gap (rank; 0 = the best known front at every cost)",
        "",
        summary_table(scores, "front_gap"),
        "",
    ]
    if any(math.isfinite(s.truth_gap) for by_tuner in scores.values() for sc in by_tuner.values() for s in sc):
        parts += [
            "### Summary: mean gap to the true frontier (rank; problems that know it)",
            "",
            summary_table(scores, "truth_gap"),
            "",
            "### Cost profile (means over seeds)",
            "",
            cost_profile_table(scores, growth=args.protocol == "trials"),
            "",
        ]
    if notes:
        parts += ["Notes:", "", *(f"- {n}" for n in dict.fromkeys(notes)), ""]
    grouped = group_by_problem(traces)
    for problem, by_tuner in scores.items():
        parts += [problem_table(problem, by_tuner), ""]
        if not args.no_plots:
            png = plot_dir / f"{problem}.png"
            plot_problem(problem, grouped[problem], png)
            # Relative to the report, so the markdown renders wherever the tree is checked out.
            link = Path(os.path.relpath(png.resolve(), out_dir.resolve())).as_posix()
            parts += [f"![{problem}]({link})", ""]
    report = "\n".join(parts)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(report)
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, score, print the report."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
    start = time.perf_counter()
    traces, notes = run(args)
    if not traces:
        print("nothing to run: " + "; ".join(notes), file=sys.stderr)
        return 1
    print(write_report(args, traces, notes, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
