"""A Chinchilla-style language-model scaling study on a synthetic loss.

The loss is the published Approach-3 fit of Hoffmann et al. (2022),

    L(N, D) = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28,    C = 6 N D  (FLOPs),

for ``N`` parameters trained on ``D`` tokens, plus the things that make a real
sweep hard:

* a learning rate whose best value shrinks with model size
  (``lr* = 3e-3 * (N / 1e8) ** -0.3``, so ``lr_opt ~ C**-0.136`` along the
  compute-optimal path) and which diverges (a failed run) when
  it is far too high for the warmup used;
* a warmup fraction and a weight decay, each with a best value and a
  quadratic penalty in log space;
* evaluation noise.

Minimising ``L`` at fixed ``C`` gives the compute-optimal allocation
``N_opt ~ C**a`` and ``D_opt ~ C**b`` with ``a = 0.28 / 0.62 = 0.452`` and
``b = 0.34 / 0.62 = 0.548`` (the paper quotes 0.46 / 0.54). CARBS tunes all
five knobs with ``cost = C``; the scaling analysis of its Pareto set should
recover those exponents.

Run it::

    python examples/chinchilla/chinchilla.py --trials 300 --out chinchilla_out
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carbs import (
    CARBS,
    CARBSParams,
    ChoiceSpace,
    LogitSpace,
    LogSpace,
    ObservationInParam,
    Param,
)
from carbs.analysis import ScalingAnalysis, analyze
from carbs.analysis.jsonutil import jsonable

logger = logging.getLogger("chinchilla")

# Approach-3 fit (Hoffmann et al. 2022, Table A3 / eq. 10).
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
TRUE_N_EXPONENT = BETA / (ALPHA + BETA)
TRUE_D_EXPONENT = ALPHA / (ALPHA + BETA)
# The best learning rate falls as N**LR_SIZE_EXPONENT, so along the compute-optimal
# path it falls as C**(LR_SIZE_EXPONENT * TRUE_N_EXPONENT).
LR_SIZE_EXPONENT = -0.3
TRUE_LR_EXPONENT = LR_SIZE_EXPONENT * TRUE_N_EXPONENT
# How far the recovered exponents may be from the truth for the run to pass.
TOLERANCE = 0.06


def chinchilla_loss(n_params: float, n_tokens: float) -> float:
    """The noiseless Approach-3 loss with ideally tuned nuisance settings."""
    return E + A / n_params**ALPHA + B / n_tokens**BETA


def compute_optimal(flops: float) -> tuple[float, float]:
    """The exact ``(N_opt, D_opt)`` minimising the loss at ``flops = 6 N D``."""
    g = (ALPHA * A / (BETA * B)) ** (1.0 / (ALPHA + BETA))
    n_opt = g * (flops / 6.0) ** TRUE_N_EXPONENT
    return n_opt, flops / (6.0 * n_opt)


def best_learning_rate(n_params: float) -> float:
    """Learning rate that is best for a model of ``n_params``: smaller for bigger models."""
    return 3e-3 * (n_params / 1e8) ** LR_SIZE_EXPONENT


@dataclass(frozen=True)
class TrainingResult:
    """What one simulated training run reports."""

    loss: float
    flops: float
    diverged: bool


def simulate_training(config: dict[str, Any], rng: np.random.Generator,
                      noise_std: float = 0.01) -> TrainingResult:
    """Simulate training a model with ``config`` (see :func:`search_space`)."""
    n, d = float(config["n_params"]), float(config["n_tokens"])
    lr, warmup, wd = float(config["learning_rate"]), float(config["warmup_fraction"]), float(
        config["weight_decay"]
    )
    flops = 6.0 * n * d
    lr_off = math.log10(lr / best_learning_rate(n))
    # Longer warmup tolerates a larger learning rate before training blows up.
    if lr_off > 0.9 + 0.3 * math.log10(warmup / 0.03):
        return TrainingResult(math.nan, flops, diverged=True)
    penalty = (
        0.12 * lr_off**2
        + 0.02 * math.log10(warmup / 0.03) ** 2
        + 0.01 * math.log10(wd / 0.1) ** 2
    )
    loss = chinchilla_loss(n, d) + penalty + float(rng.normal(0.0, noise_std))
    return TrainingResult(loss, flops, diverged=False)


def search_space() -> list[Param]:
    """The five knobs CARBS tunes, starting from a small, mis-tuned model."""
    return [
        Param("n_params", LogSpace(min=1e6, max=1e12, is_integer=True), search_center=3e7),
        Param("n_tokens", LogSpace(min=1e7, max=1e14), search_center=1e9),
        Param("learning_rate", LogSpace(min=1e-5, max=1e-1), search_center=1e-3),
        Param("warmup_fraction", LogitSpace(min=1e-3, max=0.5), search_center=0.01),
        Param("weight_decay", LogSpace(min=1e-4, max=1.0), search_center=0.01),
    ]


def run_carbs(n_trials: int, seed: int = 0, noise_std: float = 0.01,
              settings: dict[str, Any] | None = None) -> list[ObservationInParam]:
    """Run CARBS for ``n_trials`` sequential trials with ``cost = FLOPs``."""
    params = search_space()
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=seed, **(settings or {})), params)
    rng = np.random.default_rng(seed + 1_000)
    observations: list[ObservationInParam] = []
    for _ in range(n_trials):
        suggestion = opt.suggest().suggestion
        result = simulate_training(suggestion, rng, noise_std)
        obs = ObservationInParam(
            input=suggestion, output=result.loss, cost=result.flops, is_failure=result.diverged
        )
        opt.observe(obs)
        observations.append(obs)
    return observations


def run_random_search(n_trials: int, seed: int = 0,
                      noise_std: float = 0.01) -> list[ObservationInParam]:
    """Log-uniform random search over the same space: the baseline CARBS must beat."""
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 1_000)
    observations = []
    for _ in range(n_trials):
        config: dict[str, Any] = {}
        for p in search_space():
            space = p.space
            if isinstance(space, ChoiceSpace):
                raise TypeError(f"random search here samples numeric parameters, not {p.name!r}")
            # Uniform in the basic space: log-uniform for LogSpace, logit-uniform for LogitSpace.
            lo, hi = space.basic_bounds()
            config[p.name] = float(space.from_basic(np.array([rng.uniform(lo, hi)]))[0])
        result = simulate_training(config, noise_rng, noise_std)
        observations.append(
            ObservationInParam(config, result.loss, result.flops, is_failure=result.diverged)
        )
    return observations


def analyze_run(observations: list[ObservationInParam], seed: int = 0) -> ScalingAnalysis:
    """The scaling analysis of a finished run."""
    return analyze(observations, search_space(), better_direction_sign=-1, seed=seed)


def exponents(analysis: ScalingAnalysis) -> dict[str, dict[str, Any]]:
    """Recovered exponents of N and D next to the truth."""
    out = {}
    truths = (
        ("n_params", TRUE_N_EXPONENT),
        ("n_tokens", TRUE_D_EXPONENT),
        ("learning_rate", TRUE_LR_EXPONENT),
    )
    for name, truth in truths:
        law = analysis.laws.get(name)
        out[name] = {
            "true": truth,
            "recovered": None if law is None else law.exponent,
            "interval": None if law is None else list(law.exponent_interval),
            "pareto_points": None if law is None else law.n_points,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the study, the analysis, write plots and a report; exit 1 if off tolerance."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.01, help="std of the loss noise")
    parser.add_argument("--out", type=Path, default=Path("chinchilla_out"))
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG plots")
    parser.add_argument("--random-search", action="store_true",
                        help="run the random-search baseline instead of CARBS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    if args.random_search:
        observations = run_random_search(args.trials, args.seed, args.noise)
    else:
        observations = run_carbs(args.trials, args.seed, args.noise)
    elapsed = time.perf_counter() - start
    analysis = analyze_run(observations, args.seed)
    found = exponents(analysis)

    from carbs.analysis.plots import save_plots
    from carbs.analysis.report import write_report

    target = 10.0 * analysis.observed_cost_range[1]
    paths = save_plots(analysis, args.out, formats=("png",), target_cost=target, dpi=args.dpi)
    trials_path = args.out / "trials.json"
    # Every trial, so the analysis can be redone without rerunning the sweep.
    trials_path.write_text(json.dumps(jsonable([
        {"input": o.input, "output": o.output, "cost": o.cost, "is_failure": o.is_failure}
        for o in observations
    ])))
    report = write_report(analysis, args.out / "report.html", title="Chinchilla-style scaling study",
                          study_name="chinchilla-synthetic", target_cost=target)
    n_opt, d_opt = compute_optimal(target)
    summary = {
        "tuner": "random search" if args.random_search else "CARBS",
        "trials": len(observations),
        "failed": len(analysis.failures),
        "seconds": round(elapsed, 1),
        "exponents": found,
        "front": None if analysis.front is None else analysis.front.to_dict(),
        "extrapolation": analysis.extrapolate(target).to_dict(),
        "true_optimum_at_target": {"n_params": n_opt, "n_tokens": d_opt,
                                   "loss": chinchilla_loss(n_opt, d_opt)},
        "files": [str(p) for p in [*paths, report, trials_path]],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    ok = True
    for name, row in found.items():
        rec = row["recovered"]
        status = "missing" if rec is None else f"{rec:.3f} {_fmt_iv(row['interval'])}"
        good = rec is not None and abs(rec - row["true"]) <= TOLERANCE
        ok &= good
        print(f"{name:9s} exponent: recovered {status}, true {row['true']:.3f} "
              f"({'within' if good else 'OUTSIDE'} ±{TOLERANCE})")
    print(f"{len(observations)} trials ({len(analysis.failures)} diverged), "
          f"{len(analysis.pareto_points)} Pareto points, {elapsed:.0f} s; report: {report}")
    return 0 if ok else 1


def _fmt_iv(iv: list[float] | None) -> str:
    return "" if iv is None else f"[{iv[0]:.3f}, {iv[1]:.3f}]"


if __name__ == "__main__":
    sys.exit(main())
