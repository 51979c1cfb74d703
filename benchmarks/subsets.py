"""Which observations should big sweeps' surrogates condition on?

Past ``MAX_CONDITION_POINTS`` observations the output and cost GPs condition
on a subset (see :mod:`carbs.optimizer.surrogate`). This compares, against
the model on every observation, a *local* subset (half nearest the Pareto
front, half random) and a *random* one of the same size, on the 21-knob
problem of :mod:`benchmarks.latency`::

    python -m benchmarks.subsets            # n = 3000, subsets of 500 and 1000, 3 seeds
    python -m benchmarks.subsets --n 2000 --seeds 2

The history is a sweep-like mix: half uniform in the box, half around the
optimum. Candidates are drawn around the Pareto front as CARBS draws them.
Printed per model: the Spearman correlation of the predicted output with the
true (noise-free) loss over the candidates, the true loss of the candidate
with the best predicted output, and the CPU seconds of predicting them all.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.stats import spearmanr

import carbs.optimizer.surrogate as surrogate
from benchmarks.latency import make_params, objective, random_point
from carbs.optimizer.space import SearchSpace


def true_loss(p: dict) -> float:
    """The latency problem's loss without its noise."""
    loss = 1.0 / math.sqrt(p["epochs"])
    for key, value in p.items():
        if key.startswith("x"):
            loss += 0.05 * (value - 1.0) ** 2
        elif key.startswith("lr"):
            loss += 0.05 * (math.log10(value) + 3.0) ** 2
    return loss


def history(n: int, seed: int) -> tuple[SearchSpace, np.ndarray, np.ndarray, np.ndarray]:
    """Basic-space inputs, losses and costs of ``n`` observations."""
    params = make_params(21)
    space = SearchSpace(params)
    rng = np.random.default_rng(seed)
    rows, losses, costs = [], [], []
    for i in range(n):
        p = random_point(params, rng)
        if i % 2:
            for key in p:
                if key.startswith("x"):
                    p[key] = float(np.clip(1.0 + rng.normal(0, 1.0), -5, 5))
                elif key.startswith("lr"):
                    p[key] = float(np.clip(10 ** (-3 + rng.normal(0, 1.0)), 1e-6, 1.0))
        loss, cost = objective(p, rng)
        rows.append(space.to_basic(p))
        losses.append(loss)
        costs.append(cost)
    return space, np.stack(rows), np.array(losses), np.array(costs)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="observations (default 3000)")
    ap.add_argument("--seeds", type=int, default=3, help="histories (default 3)")
    args = ap.parse_args(argv)
    configs = [("every observation", 10**9, 0.5)] + [
        (f"{kind} {size}", size, share) for size in (500, 1000) for kind, share in (("local", 0.5), ("random", 0.0))
    ]
    saved = surrogate.MAX_CONDITION_POINTS, surrogate.LOCAL_SHARE
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in configs}
    try:
        for seed in range(args.seeds):
            space, X, losses, costs = history(args.n, seed)
            searched = surrogate.SurrogateModel(-1, np.random.default_rng(seed))
            searched.fit_observations(X[:1000], losses[:1000], costs[:1000])
            hp = searched.hyperparameters
            # The same hyperparameters for every model: only the subset differs.
            hp = surrogate.SurrogateHyperparameters(args.n, hp.dim, hp.output_theta, hp.cost_theta)
            front = surrogate.pareto_front_indices(np.log(costs), -losses)
            crng = np.random.default_rng(100 + seed)
            cands = space.clip(X[front][crng.integers(len(front), size=2100)] + crng.normal(0, 0.3, (2100, X.shape[1])))
            truth = np.array([true_loss(space.from_basic(c)[0]) for c in cands])
            for name, size, share in configs:
                surrogate.MAX_CONDITION_POINTS, surrogate.LOCAL_SHARE = size, share
                model = surrogate.SurrogateModel(-1, np.random.default_rng(seed), previous=hp)
                model.fit_observations(X, losses, costs)
                start = time.process_time()
                pred = model.predict(cands)
                cpu = time.process_time() - start
                rho = float(spearmanr(pred.surrogate_output, -truth).statistic)
                results[name].append((rho, float(truth[np.argmax(pred.surrogate_output)]), cpu))
                print(f"seed {seed}, {name}: rho {rho:.3f}", flush=True)
    finally:
        surrogate.MAX_CONDITION_POINTS, surrogate.LOCAL_SHARE = saved
    print()
    print(f"n = {args.n}, d = 21, {args.seeds} histories, 2100 candidates around the front (means):")
    print()
    print("| model conditioned on | Spearman rho, prediction vs true loss | true loss of the best-predicted candidate | predict CPU (s) |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        a = np.array(rows)
        print(f"| {name} | {a[:, 0].mean():.3f} | {a[:, 1].mean():.4f} | {a[:, 2].mean():.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
