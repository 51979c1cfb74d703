"""How long one ``suggest()`` takes as observations accumulate.

Prints a markdown table of the median wall time, the median CPU time and the
slowest wall time of ``suggest()`` (which includes fitting the surrogates to
the new observation) after n observations, for a 5-dimensional and a
21-dimensional space::

    python -m benchmarks.latency                  # n = 10 ... 10,000, d = 5 and 21
    python -m benchmarks.latency --quick          # n = 10 ... 200
    python -m benchmarks.latency --sizes 1000 3000 --dims 21
    python -m benchmarks.latency --sizes 500 --dims 2 5 --batch 64 --pending 64

Each measurement: build an optimizer, feed it n observations of a smooth
cost-aware function, then time ``repeats`` model-based suggestions, each after
observing the previous one, so every timed call refits on fresh data as in a
real sweep (resample suggestions, which skip the models, are not timed).

With ``--batch B``, it times ``suggest_batch(B)`` instead (one fit, then B
suggestions, each pending for the next ones, as a suggestion pool is filled
for many workers) with ``--pending`` other points outstanding (trials in
flight), and prints the CPU per suggestion.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np

import carbs
from carbs import CARBS, CARBSParams, LinearSpace, LogSpace, ObservationInParam, Param


def make_params(dim: int) -> list[Param]:
    """``dim`` parameters: one integer cost knob (epochs) and ``dim - 1`` real knobs."""
    params = [Param("epochs", LogSpace(min=1, max=1000, is_integer=True, scale=0.3), 10)]
    for i in range(dim - 1):
        if i % 2 == 0:
            params.append(Param(f"x{i}", LinearSpace(min=-5.0, max=5.0, scale=1.0), 0.0))
        else:
            params.append(Param(f"lr{i}", LogSpace(min=1e-6, max=1.0, scale=0.5), 1e-3))
    return params


def objective(p: dict, rng: np.random.Generator) -> tuple[float, float]:
    """A smooth loss with a cost knob; returns (loss, cost in seconds)."""
    loss = 1.0 / math.sqrt(p["epochs"])
    for key, value in p.items():
        if key.startswith("x"):
            loss += 0.05 * (value - 1.0) ** 2
        elif key.startswith("lr"):
            loss += 0.05 * (math.log10(value) + 3.0) ** 2
    return loss + 0.01 * rng.normal(), float(p["epochs"])


def random_point(params: list[Param], rng: np.random.Generator) -> dict:
    """A point drawn uniformly (in basic space) within the bounds, for the warm-up data."""
    out: dict = {}
    for param in params:
        space = param.space
        if isinstance(space, LogSpace):
            value = 10 ** rng.uniform(math.log10(space.min), math.log10(space.max))
            out[param.name] = int(round(value)) if space.is_integer else value
        elif isinstance(space, LinearSpace):
            out[param.name] = rng.uniform(space.min, space.max)
        else:
            raise TypeError(f"latency benchmark has no sampler for {param.name!r} ({space!r})")
    return out


def time_suggest(dim: int, n: int, repeats: int, seed: int = 0) -> tuple[float, float, float]:
    """Median wall seconds, median CPU seconds and the slowest wall seconds of a
    model ``suggest()`` after ``n`` observations (CPU time is what a busy machine
    does not inflate; the slowest call is the one that searched hyperparameters)."""
    params = make_params(dim)
    rng = np.random.default_rng(seed)
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=seed), params)
    history = []
    for _ in range(n):
        p = random_point(params, rng)
        loss, cost = objective(p, rng)
        history.append(ObservationInParam(p, loss, cost))
    opt.initialize_from_observations(history)
    times: list[float] = []
    cpu: list[float] = []
    while len(times) < repeats:
        start, start_cpu = time.perf_counter(), time.process_time()
        out = opt.suggest()
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        # Resamples (every resample_frequency-th call) skip the models: time model suggestions only.
        if out.log.get("suggestion_kind") == "model":
            times.append(elapsed)
            cpu.append(elapsed_cpu)
        loss, cost = objective(out.suggestion, rng)
        opt.observe(ObservationInParam(out.suggestion, loss, cost))
    return statistics.median(times), statistics.median(cpu), max(times)


def time_batch(dim: int, n: int, batch: int, pending: int, repeats: int, seed: int = 0) -> tuple[float, float]:
    """Median and slowest CPU seconds per suggestion of ``suggest_batch(batch)`` after
    ``n`` observations, with ``pending`` other suggestions outstanding; the surrogates
    are fitted before the clock starts (a refill fits once for many batches)."""
    params = make_params(dim)
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(n):
        p = random_point(params, rng)
        loss, cost = objective(p, rng)
        history.append(ObservationInParam(p, loss, cost))
    per_suggestion = []
    for r in range(repeats):
        opt = CARBS(CARBSParams(better_direction_sign=-1, seed=seed + r), params)
        opt.initialize_from_observations(history)
        opt.fit_surrogates()
        if pending:
            opt.suggest_batch(pending)  # the trials in flight
        start = time.process_time()
        opt.suggest_batch(batch)
        per_suggestion.append((time.process_time() - start) / batch)
    return statistics.median(per_suggestion), max(per_suggestion)


def main(argv: list[str] | None = None) -> int:
    """Run the latency table and print it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="stop at n = 200")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per cell (default 5)")
    parser.add_argument("--dims", type=int, nargs="+", default=[5, 21], help="dimensions (default 5 21)")
    parser.add_argument("--sizes", type=int, nargs="+", help="observation counts (default 10 ... 10000)")
    parser.add_argument("--batch", type=int, help="time suggest_batch of this many instead of suggest()")
    parser.add_argument("--pending", type=int, default=0,
                        help="with --batch: suggestions outstanding before the batch (default 0)")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch must be a positive integer, got {args.batch}")
    if args.pending < 0:
        parser.error(f"--pending must be >= 0, got {args.pending}")
    sizes = args.sizes or ([10, 50, 100, 200] if args.quick else [10, 50, 100, 200, 500, 1000, 3000, 10000])

    print(f"carbs {carbs.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print()
    if args.batch is not None:
        print(f"Median / slowest CPU milliseconds per suggestion of suggest_batch({args.batch}) "
              f"with {args.pending} pending:")
        print()
        print("| n observations | " + " | ".join(f"d = {d} (ms)" for d in args.dims) + " |")
        print("|---:|" + "---:|" * len(args.dims))
        for n in sizes:
            cells = []
            for d in args.dims:
                median, worst = time_batch(d, n, args.batch, args.pending, args.repeats)
                cells.append(f"{median * 1000:.1f} / {worst * 1000:.1f}")
            print(f"| {n} | " + " | ".join(cells) + " |", flush=True)
        return 0
    print("Median wall / median CPU / slowest wall seconds of one model suggest():")
    print()
    print("| n observations | " + " | ".join(f"d = {d} (s)" for d in args.dims) + " |")
    print("|---:|" + "---:|" * len(args.dims))
    for n in sizes:
        cells = ["{:.3f} / {:.3f} / {:.3f}".format(*time_suggest(d, n, args.repeats)) for d in args.dims]
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
