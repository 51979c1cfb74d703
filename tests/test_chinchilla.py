"""The Chinchilla-style example: its ground truth, and CARBS recovering the scaling exponents.

The end-to-end check runs the real optimizer (``carbs.CARBS``) for a small
budget on the synthetic Approach-3 loss and asks the scaling analysis for
``N_opt ~ C**a``. Three conditions make the check one a broken tuner fails:

* the exponent lands in a band around the published 0.46;
* its bootstrap interval is narrow (the Pareto set is dense and consistent);
* the Pareto set lies close to the true compute-optimal frontier.

On this problem the exponent's point estimate alone is not enough: random
search over the same budget often lands near 0.46 by chance, but with a wide
interval and a Pareto set far above the optimal frontier (its learning rates
are untuned). The last test pins that down. Measured with 120 trials on seeds
0-13, CARBS met all three conditions every time (exponents 0.39-0.52); random
search met them on 1 of 12 seeds.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from carbs.analysis import ScalingAnalysis

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chinchilla" / "chinchilla.py"
N_TRIALS = 120
SEED = 0
# Published compute-optimal exponent of N (Hoffmann et al. 2022) and the band around it.
PUBLISHED_N_EXPONENT = 0.46
BAND = 0.08
MAX_INTERVAL_WIDTH = 0.16
# Median excess loss of the Pareto set over the true optimal frontier (noise std is 0.01).
MAX_MEDIAN_EXCESS = 0.06


@pytest.fixture(scope="module")
def chinchilla() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chinchilla_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def recovery_problems(example: ModuleType, analysis: ScalingAnalysis) -> list[str]:
    """Why a run does not count as recovering the compute-optimal scaling (empty: it does)."""
    law = analysis.laws.get("n_params")
    if law is None:
        return [f"no law for n_params: {analysis.skipped.get('n_params')}"]
    problems = []
    if abs(law.exponent - PUBLISHED_N_EXPONENT) > BAND:
        problems.append(f"exponent {law.exponent:.3f} outside {PUBLISHED_N_EXPONENT} +- {BAND}")
    lo, hi = law.exponent_interval
    if hi - lo > MAX_INTERVAL_WIDTH:
        problems.append(f"interval [{lo:.3f}, {hi:.3f}] wider than {MAX_INTERVAL_WIDTH}")
    excess = [
        p.output - example.chinchilla_loss(*example.compute_optimal(p.cost))
        for p, w in zip(analysis.pareto_points, analysis.pareto_weights)
        if w >= 1.0
    ]
    if float(np.median(excess)) > MAX_MEDIAN_EXCESS:
        problems.append(
            f"median excess loss {float(np.median(excess)):.3f} over the optimal frontier "
            f"exceeds {MAX_MEDIAN_EXCESS}"
        )
    return problems


def test_closed_form_optimum_matches_a_numerical_search(chinchilla: ModuleType) -> None:
    for flops in (1e18, 1e21, 1e24):
        n_opt, d_opt = chinchilla.compute_optimal(flops)
        assert 6 * n_opt * d_opt == pytest.approx(flops)

        def loss_at(log_n: float, flops: float = flops) -> float:
            return float(chinchilla.chinchilla_loss(10**log_n, flops / (6 * 10**log_n)))

        res = minimize_scalar(loss_at, bounds=(3.0, 14.0), method="bounded",
                              options={"xatol": 1e-9})
        assert res.x == pytest.approx(math.log10(n_opt), abs=1e-4)
    # The paper rounds a = 0.28 / 0.62 = 0.452 to 0.46 and b = 0.548 to 0.54.
    a, b = chinchilla.TRUE_N_EXPONENT, chinchilla.TRUE_D_EXPONENT
    assert abs(a - 0.452) < 1e-3
    assert abs(a + b - 1.0) < 1e-12


def test_simulator_penalises_nuisance_settings_and_diverges(chinchilla: ModuleType) -> None:
    rng = np.random.default_rng(0)
    n, d = 1e8, 2e9
    tuned = {"n_params": n, "n_tokens": d, "learning_rate": chinchilla.best_learning_rate(n),
             "warmup_fraction": 0.03, "weight_decay": 0.1}
    clean = chinchilla.simulate_training(tuned, rng, noise_std=0.0)
    assert clean.loss == pytest.approx(chinchilla.chinchilla_loss(n, d))
    assert clean.flops == pytest.approx(6 * n * d) and not clean.diverged
    slow = chinchilla.simulate_training({**tuned, "learning_rate": tuned["learning_rate"] / 10},
                                        rng, noise_std=0.0)
    assert slow.loss == pytest.approx(clean.loss + 0.12)
    blown = chinchilla.simulate_training({**tuned, "learning_rate": 0.09}, rng)
    assert blown.diverged and math.isnan(blown.loss)
    # Bigger models want smaller learning rates.
    assert chinchilla.best_learning_rate(1e10) < chinchilla.best_learning_rate(1e8)


def test_carbs_recovers_the_compute_optimal_exponent(chinchilla: ModuleType) -> None:
    observations = chinchilla.run_carbs(N_TRIALS, seed=SEED)
    assert len(observations) == N_TRIALS
    analysis = chinchilla.analyze_run(observations, seed=SEED)
    assert recovery_problems(chinchilla, analysis) == []
    found = chinchilla.exponents(analysis)
    # N and D share the budget exactly (C = 6ND): their exponents add up to one.
    assert found["n_params"]["recovered"] + found["n_tokens"]["recovered"] == pytest.approx(
        1.0, abs=1e-6
    )
    # The tuned learning rate falls with compute, as the simulator's optimum does.
    assert found["learning_rate"]["recovered"] < 0


def test_random_search_on_the_same_budget_fails_the_check(chinchilla: ModuleType) -> None:
    observations = chinchilla.run_random_search(N_TRIALS, seed=SEED)
    analysis = chinchilla.analyze_run(observations, seed=SEED)
    problems = recovery_problems(chinchilla, analysis)
    assert any("excess loss" in p for p in problems), problems
