"""Tests of the benchmark suite: problems, metrics, adapters and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare
from benchmarks.drivers import protein_driver, reference_driver
from benchmarks.harness import RunTrace, TrialRecord, noise_rng, protocol_budget, run_one
from benchmarks.metrics import (
    FrontReference,
    best_at_budget,
    best_at_fraction,
    cost_profile,
    counted_trials,
    front_at,
    score_run,
    truth_gap,
)
from benchmarks.problems import (
    DigitsMLP,
    FineTuneHighDim,
    ImageClassifierEpochs,
    LanguageModelScaling,
    MultiFidelityHartmann,
    MultiFidelityHartmannDecorrelated,
    OutOfMemoryTraining,
    WideScaling,
    WideScalingNoisy,
    make_problem,
    multi_fidelity,
    wide_scaling,
)
from benchmarks.problems.failures import MEMORY_LIMIT, STARTUP_SECONDS
from benchmarks.spec import Budget, Knob, Outcome
from benchmarks.tuners import TUNERS, TunerSpec, get_tuner_spec
from benchmarks.tuners.base import Tuner
from benchmarks.tuners.carbs_tuner import to_carbs_param
from benchmarks.tuners.external import EXTERNAL_TUNERS, ExternalTuner
from benchmarks.tuners.random_search import RandomSearch

RNG = np.random.default_rng(0)


# -- search-space description --------------------------------------------------


def test_knob_unit_round_trip_and_integer_rounding() -> None:
    k = Knob("width", "int", 16, 1024, log=True)
    assert k.default == 128  # geometric midpoint
    assert k.from_unit(0.0) == 16 and k.from_unit(1.0) == 1024
    assert k.to_unit(128) == pytest.approx(0.5)
    lin = Knob("dropout", "float", 0.0, 0.5)
    assert lin.from_unit(lin.to_unit(0.2)) == pytest.approx(0.2)
    assert lin.check(0.5) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "lr", "kind": "float", "low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"name": "lr", "kind": "float", "low": 1.0, "high": 1.0}, "low < high"),
        ({"name": "opt", "kind": "choice", "choices": ("adam",)}, "2\\+ values"),
        ({"name": "lr", "kind": "float", "low": 0.0, "high": 1.0, "default": 2.0}, "outside"),
    ],
)
def test_knob_rejects_bad_definitions(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Knob(**kwargs)


def test_problem_rejects_out_of_bounds_suggestion() -> None:
    p = OutOfMemoryTraining()
    bad = {**p.default_params(), "lr": 5.0}
    with pytest.raises(ValueError, match="'lr'"):
        p.check_params(bad)
    with pytest.raises(ValueError, match="lacks knobs"):
        p.check_params({"lr": 0.01})


# -- problems compute what they claim -------------------------------------------


def test_lm_scaling_cost_is_6nd_flops_and_lr_optimum_drifts_with_width() -> None:
    p = LanguageModelScaling()
    params = {**p.default_params(), "width": 512, "depth": 4, "tokens": 1e9}
    n = 12 * 4 * 512**2
    assert p.cost(params) == pytest.approx(6 * n * 1e9 / 1e14)
    lrs = np.geomspace(1e-5, 1e-1, 200)

    def best_lr(width: int) -> float:
        return float(lrs[np.argmin([p.loss({**params, "width": width, "lr": lr}) for lr in lrs])])

    # The best learning rate falls in proportion to width (32x wider -> ~32x smaller).
    assert best_lr(64) / best_lr(2048) == pytest.approx(32, rel=0.15)
    # More compute buys lower loss when the nuisance knobs follow their optimum.
    small = p.loss({**params, "width": 128, "lr": best_lr(128)})
    large = p.loss({**params, "width": 2048, "lr": best_lr(2048)})
    assert large < small - 0.2


def test_image_epochs_best_dropout_grows_with_scale() -> None:
    p = ImageClassifierEpochs()
    base = p.default_params()
    drops = np.linspace(0.0, 0.8, 81)

    def best_dropout(width: int, epochs: int) -> float:
        errs = [p.error({**base, "width": width, "epochs": epochs, "dropout": d}) for d in drops]
        return float(drops[int(np.argmin(errs))])

    assert best_dropout(1024, 200) > best_dropout(32, 5) + 0.1
    assert p.cost({**base, "epochs": 20}) == pytest.approx(2 * p.cost({**base, "epochs": 10}))
    # Far too high a learning rate diverges to chance error.
    assert p.error({**base, "lr": 1.0}) == pytest.approx(0.9)


def test_finetune_24d_has_24_knobs_and_only_a_few_matter() -> None:
    p = FineTuneHighDim()
    assert len(p.knobs) == 24
    base = p.default_params()
    ref = p.loss(base)
    for knob in p.knobs[8:]:
        for u in (0.0, 1.0):
            assert abs(p.loss({**base, knob.name: knob.from_unit(u)}) - ref) < 0.01
    assert abs(p.loss({**base, "lr": 1e-2}) - ref) > 0.3
    lrs = np.geomspace(1e-6, 1e-2, 200)
    short = lrs[np.argmin([p.loss({**base, "steps": 200, "lr": lr}) for lr in lrs])]
    long = lrs[np.argmin([p.loss({**base, "steps": 20000, "lr": lr}) for lr in lrs])]
    assert short > 3 * long


def test_oom_failures_crash_and_charge_their_cost() -> None:
    p = OutOfMemoryTraining()
    ok = {**p.default_params(), "batch_size": 256, "width": 1024}
    assert MEMORY_LIMIT >= 256 * 1024
    out = p.evaluate(ok, np.random.default_rng(0))
    assert not out.is_failure and out.cost == pytest.approx(p.full_cost(ok))
    oom = {**ok, "batch_size": 512}
    out = p.evaluate(oom, np.random.default_rng(0))
    assert out.is_failure and math.isnan(out.output)
    assert out.cost == pytest.approx(STARTUP_SECONDS + 0.02 * (p.full_cost(oom) - STARTUP_SECONDS))
    hot = {**ok, "lr": 20 * p.lr_opt(256, 1024)}
    out = p.evaluate(hot, np.random.default_rng(0))
    assert out.is_failure and STARTUP_SECONDS < out.cost < p.full_cost(hot)


def test_digits_mlp_trains_and_times_a_real_model() -> None:
    p = DigitsMLP()
    short = {**p.default_params(), "width": 32, "epochs": 2}
    out = p.evaluate(short, np.random.default_rng(0))
    assert not out.is_failure
    assert 0.0 < out.output < math.log(10) + 1.0
    assert 0.0 < out.cost < 10.0
    assert p.wall_clock_cost
    # Twenty times the epochs: measurably more time, and a better model.
    long = p.evaluate({**short, "epochs": 40}, np.random.default_rng(0))
    assert long.cost > 3 * out.cost and long.output < out.output - 0.5


def test_every_problem_is_registered_and_evaluates_its_default() -> None:
    for name in ("lm_scaling", "image_epochs", "finetune_24d", "oom_failures", "wide_scaling",
                 "wide_scaling_noisy", "mf_hartmann", "mf_hartmann_decorrelated"):
        p = make_problem(name)
        out = p.evaluate(p.default_params(), np.random.default_rng(1))
        assert math.isfinite(out.output) and out.cost > 0
        assert p.full_budget.cost > p.quick_budget.cost
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("nope")


def _assert_local_minimum(loss: Callable[[dict], float], at: dict, knobs: dict[str, list]) -> None:
    """Moving any one of ``knobs`` away from ``at`` must not lower the loss."""
    ref = loss(at)
    for name, values in knobs.items():
        for v in values:
            assert loss({**at, name: v}) >= ref - 1e-12, (name, v)


def test_lm_scaling_reaches_the_chinchilla_fit_at_its_documented_optimum() -> None:
    p = LanguageModelScaling()
    width, depth, tokens = 768, 16, 1e9  # width / depth = 48, the best aspect ratio
    best = {
        "width": width, "depth": depth, "tokens": tokens,
        "lr": 3e-3 * (256 / width) * (tokens / 3e8) ** -0.1,
        "weight_decay": 0.1 * (3e8 / tokens) ** 0.3,
        "warmup_frac": 0.02 * math.sqrt(width / 64),
        "adam_beta2": 0.98,
    }  # fmt: skip
    n = 12 * depth * width**2
    assert p.loss(best) == pytest.approx(1.69 + 406.4 / n**0.34 + 410.7 / tokens**0.28)
    _assert_local_minimum(
        p.loss,
        best,
        {
            "lr": [best["lr"] * f for f in (0.5, 0.9, 1.1, 2.0)],
            "weight_decay": [best["weight_decay"] * f for f in (0.3, 3.0)],
            "warmup_frac": [0.0, best["warmup_frac"] + 0.05],
            "adam_beta2": [0.95, 0.99],
        },
    )


def test_finetune_24d_reaches_its_power_law_at_its_documented_optimum() -> None:
    from benchmarks.problems.highdim import _MINOR_OPTIMA

    p = FineTuneHighDim()
    steps = 5000
    best = {
        "steps": steps, "lr": 3e-4 * (steps / 1000) ** -0.3, "weight_decay": 1e-2 * (steps / 1000) ** 0.5,
        "warmup_frac": 0.06, "adam_beta2": 0.995, "grad_clip": 1.0, "dropout": 0.05, "rank": 32,
    }  # fmt: skip
    for knob, u in zip(p.knobs[8:], _MINOR_OPTIMA):
        best[knob.name] = knob.from_unit(float(u))
    assert p.loss(best) == pytest.approx(1.2 + 2.0 * (steps / 100) ** -0.45)
    _assert_local_minimum(
        p.loss,
        best,
        {k.name: [k.from_unit(0.0), k.from_unit(1.0)] for k in p.knobs[1:]},
    )


def test_image_and_oom_learning_rate_optima_are_where_documented() -> None:
    img = ImageClassifierEpochs()
    base = {**img.default_params(), "batch_size": 512, "width": 512}
    lr_adam = 1e-3 * math.sqrt(512 / 128) * (512 / 128) ** -0.5
    _assert_local_minimum(img.error, {**base, "lr": lr_adam}, {"lr": [lr_adam * f for f in (0.8, 1.25)]})
    lr_sgd = 0.1 * math.sqrt(512 / 128)
    sgd = {**base, "optimizer": "sgd", "lr": lr_sgd, "label_smoothing": 0.1}
    _assert_local_minimum(img.error, sgd, {"lr": [lr_sgd * f for f in (0.8, 1.25)]})
    _assert_local_minimum(img.error, sgd, {"label_smoothing": [0.0, 0.05, 0.15, 0.3]})
    oom = OutOfMemoryTraining()
    lr = oom.lr_opt(128, 512)
    at = {**oom.default_params(), "batch_size": 128, "width": 512, "lr": lr, "weight_decay": 5e-4}
    _assert_local_minimum(
        oom.error, at, {"lr": [lr * f for f in (0.8, 1.25)], "weight_decay": [2e-4, 1e-3]}
    )


# The cost method and the knobs that buy quality with compute; the first one
# (training length) multiplies the cost, the others add compute per step.
_COST_KNOBS = {
    "lm_scaling": ("cost", ["tokens", "width", "depth"]),
    "image_epochs": ("cost", ["epochs", "width"]),
    "finetune_24d": ("cost", ["steps", "rank"]),
    "oom_failures": ("full_cost", ["epochs", "width"]),
}


@pytest.mark.parametrize("name", sorted(_COST_KNOBS))
def test_cost_grows_with_every_cost_knob(name: str) -> None:
    p = make_problem(name)
    method, knobs = _COST_KNOBS[name]
    cost = getattr(p, method)
    by_name = {k.name: k for k in p.knobs}
    sampler = RandomSearch(p, 11)
    for _ in range(40):
        params = sampler.ask()
        for knob_name in knobs:
            knob = by_name[knob_name]
            u = knob.to_unit(params[knob_name])
            costs = [cost({**params, knob_name: knob.from_unit(v)}) for v in np.linspace(0, 1, 9)]
            assert np.all(np.diff(costs) >= 0), (knob_name, u, costs)
            assert costs[-1] > costs[0], (knob_name, costs)
        length = by_name[knobs[0]]
        short = cost({**params, length.name: length.from_unit(0.0)})
        assert cost({**params, length.name: length.from_unit(1.0)}) > 5 * short


def test_failures_happen_only_where_documented() -> None:
    sampler_seed = 5
    for name in ("lm_scaling", "image_epochs", "finetune_24d"):
        p = make_problem(name)
        sampler = RandomSearch(p, sampler_seed)
        assert not any(p.evaluate(sampler.ask(), RNG).is_failure for _ in range(300))
    p = OutOfMemoryTraining()
    sampler = RandomSearch(p, sampler_seed)
    failed = 0
    for _ in range(300):
        params = sampler.ask()
        b, w = int(params["batch_size"]), int(params["width"])
        expected = b * w > MEMORY_LIMIT or float(params["lr"]) > 8 * p.lr_opt(b, w)
        out = p.evaluate(params, RNG)
        assert out.is_failure == expected, params
        assert out.cost <= p.full_cost(params) + 1e-9
        failed += expected
    assert 0.2 < failed / 300 < 0.6  # a real share of the box, not a corner case


# -- wide-bounds scaling and multi-fidelity problems -------------------------------


def _brute_force_front(cost: float) -> float:
    """The best Chinchilla loss at ``6 N D = cost`` units, by a fine grid over N inside the box."""
    n = np.logspace(5, 12, 200_001)
    d = cost * wide_scaling.FLOPS_PER_UNIT / 6.0 / n
    ok = (d >= 1e6) & (d <= 1e14)
    return float(np.min(1.69 + 406.4 / n[ok] ** 0.34 + 410.7 / d[ok] ** 0.28))


def test_wide_scaling_true_front_is_the_compute_optimal_loss() -> None:
    p = WideScaling()
    costs = np.array([1e-6, 1e-3, 0.1, 1.0, 1e3, 1e6, 5e8])
    front = p.true_front(costs)
    for c, f in zip(costs, front):
        assert f == pytest.approx(_brute_force_front(float(c)), abs=1e-6), c
    # Still improving at the top of the box, and flat past its corner.
    assert np.all(np.diff(front) < 0)
    corner = 6.0 * 1e12 * 1e14 / 1e18
    assert p.true_front(np.array([corner, 10 * corner]))[1] == pytest.approx(front[-1], abs=0.01)
    assert p.true_front(np.array([1e-8]))[0] == np.inf  # cheaper than anything in the box


def test_wide_scaling_reaches_its_true_front_with_tuned_knobs_and_spans_15_decades() -> None:
    p = WideScaling()
    by_name = {k.name: k for k in p.knobs}
    low = p.cost({"n_params": by_name["n_params"].low, "tokens": by_name["tokens"].low})
    high = p.cost({"n_params": by_name["n_params"].high, "tokens": by_name["tokens"].high})
    assert math.log10(high / low) >= 14
    for cost in (0.1, 10.0, 1e4):
        n, d = wide_scaling.compute_optimal(cost)
        assert p.cost({"n_params": n, "tokens": d}) == pytest.approx(cost)
        tuned = {"n_params": n, "tokens": d, "lr": 3e-3 * (n / 1e8) ** -0.25,
                 "warmup_frac": 0.02 + 0.05 * math.log10(n / 1e5) / 7, "weight_decay": 0.1 * (d / 1e9) ** -0.2}
        assert p.loss(tuned) == pytest.approx(float(p.true_front(np.array([cost]))[0]), abs=1e-9)
        p.check_params(tuned)  # the optima lie inside the bounds
        _assert_local_minimum(p.loss, tuned, {"lr": [0.5, 2.0], "warmup_frac": [-0.01, 0.01],
                                              "weight_decay": [0.5, 2.0]})
    default = p.default_params()
    assert p.cost(default) == pytest.approx(0.18)
    assert p.loss(default) > float(p.true_front(np.array([0.18]))[0]) + 0.1  # room to tune


def test_noisy_wide_scaling_adds_only_noise() -> None:
    quiet, noisy = WideScaling(), WideScalingNoisy()
    outs = [noisy.evaluate(noisy.default_params(), np.random.default_rng(i)) for i in range(400)]
    true = quiet.loss(quiet.default_params())
    assert all(o.true_output == pytest.approx(true) for o in outs)
    assert np.std([o.output for o in outs]) == pytest.approx(0.05, rel=0.15)


def test_multi_fidelity_front_cost_and_correlation() -> None:
    mf, dec = MultiFidelityHartmann(), MultiFidelityHartmannDecorrelated()
    best_x = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    at = {f"x{i}": v for i, v in enumerate(best_x)}
    assert mf.cost({**at, "fidelity": 10}) == 1.0 and mf.cost({**at, "fidelity": 100}) == 100.0
    assert mf.value({**at, "fidelity": 100}) == pytest.approx(multi_fidelity.HARTMANN6_MIN, abs=1e-4)
    # The true front: the optimum at the costliest fidelity a cost affords.
    for cost, fidelity in ((0.01, 1), (0.5, 7), (1.0, 10), (99.0, 99), (1e3, 100)):
        expected = mf.value({**at, "fidelity": fidelity})
        assert mf.true_front(np.array([cost]))[0] == pytest.approx(expected, abs=1e-4), cost
    assert mf.true_front(np.array([0.005]))[0] == np.inf and dec.true_front(np.array([1.0])) is None
    # The best values only near the top: a quarter of the top cost (fidelity 50) is a full unit worse.
    top, quarter = mf.true_front(np.array([100.0, 25.0]))
    assert quarter - top == pytest.approx(1.0)
    # Fidelity 10 ranks settings as the top does in one variant, poorly in the other.
    sampler = RandomSearch(mf, 3)
    points = [sampler.ask() for _ in range(300)]

    def corr(problem: MultiFidelityHartmann) -> float:
        low = [problem.value({**q, "fidelity": 10}) for q in points]
        top = [problem.value({**q, "fidelity": 100}) for q in points]
        return float(np.corrcoef(np.argsort(np.argsort(low)), np.argsort(np.argsort(top)))[0, 1])

    assert corr(mf) > 0.999 and corr(dec) < 0.5


# -- metrics on hand-made traces -------------------------------------------------


def _trace(points: list[tuple[float, float, bool]], budget: float = 100.0) -> RunTrace:
    trials = [
        TrialRecord(params={}, output=y, true_output=y, cost=c, is_failure=f, overhead_s=0.01)
        for c, y, f in points
    ]
    return RunTrace("oom_failures", "random", 0, budget, 50, trials=trials, wall_time_s=1.0)


def test_best_at_budget_counts_only_paid_for_successes() -> None:
    trace = _trace([(1.0, 5.0, False), (2.0, 3.0, False), (3.0, math.nan, True), (4.0, 1.0, False)])
    # Cumulative costs: 1, 3, 6, 10.
    assert math.isnan(best_at_budget(trace, 0.5))
    assert best_at_budget(trace, 2.9) == 5.0
    assert best_at_budget(trace, 3.0) == 3.0
    assert best_at_budget(trace, 9.9) == 3.0
    assert best_at_budget(trace, 10.0) == 1.0
    assert len(counted_trials(trace, 9.0)) == 3


def test_front_at_is_a_running_minimum_over_cost() -> None:
    costs, outputs = np.array([10.0, 1.0, 5.0]), np.array([0.5, 2.0, 1.0])
    got = front_at(costs, outputs, np.array([0.5, 1.0, 4.9, 5.0, 100.0]))
    assert list(got) == [np.inf, 2.0, 2.0, 1.0, 0.5]


def test_front_gap_matches_hand_computed_areas() -> None:
    # Best known front: 1.0 on [1, 10), 0.0 on [10, 100]; y_ref = 1, y_best = 0.
    ref = FrontReference(
        costs=np.array([1.0, 10.0, 100.0]),
        outputs=np.array([1.0, 0.0, 0.5]),
        c_lo=1.0,
        c_hi=100.0,
        y_ref=1.0,
        y_best=0.0,
    )
    gap = ref.gap
    assert gap(np.array([1.0, 10.0]), np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-9)
    # Never better than y_ref: the whole area under y_ref above the reference.
    assert gap(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5, abs=0.01)
    # Misses the cheap-to-expensive improvement: half of the log-cost range.
    assert gap(np.array([1.0]), np.array([1.0])) == pytest.approx(0.5, abs=0.01)
    # Reaches 0.5 at cost 10: half the height over half the range.
    assert gap(np.array([10.0]), np.array([0.5])) == pytest.approx(0.25, abs=0.01)
    # Nothing at all counts as y_ref everywhere.
    assert gap(np.array([]), np.array([])) == pytest.approx(0.5, abs=0.01)
    flat = FrontReference(np.array([1.0, 100.0]), np.array([0.0, 0.0]), 1.0, 100.0, 1.0, 0.0)
    assert flat.gap(np.array([]), np.array([])) == pytest.approx(1.0, abs=0.01)


def test_reference_and_scores_from_traces() -> None:
    a = _trace([(1.0, 4.0, False), (2.0, math.nan, True), (10.0, 1.0, False)], budget=13.0)
    b = _trace([(5.0, 2.0, False), (200.0, 0.1, False)], budget=13.0)  # second trial over budget
    ref = FrontReference.from_traces([a, b])
    assert ref.c_lo == 1.0 and ref.c_hi == 10.0 and ref.y_best == 1.0
    assert ref.y_ref == pytest.approx(np.quantile([4.0, 1.0, 2.0], 0.9))
    sa = score_run(a, ref)
    assert sa.n_trials == 3 and sa.n_failures == 1 and sa.failure_cost == 2.0
    # a misses b's 2.0 at cost 5: (min(4, y_ref) - 2) over log10(10 / 5), normalised.
    expected = (ref.y_ref - 2.0) * math.log10(2.0) / ((ref.y_ref - 1.0) * 1.0)
    assert sa.best_at[-1] == 1.0 and sa.front_gap == pytest.approx(expected, abs=0.01)
    sb = score_run(b, ref)
    assert sb.n_trials == 1 and sb.best_at[-1] == 2.0 and sb.front_gap < 0.01


def test_truth_gap_is_the_mean_excess_over_the_true_front_in_log_cost() -> None:
    def truth(c: np.ndarray) -> np.ndarray:
        return np.where(c < 10.0, 2.0, 1.0)  # 2 on [1, 10), 1 on [10, 100]

    def gap(costs: list[float], outputs: list[float], **kw: float) -> float:
        return truth_gap(truth, (1.0, 100.0), np.array(costs), np.array(outputs), **kw)

    assert gap([1.0, 10.0], [2.0, 1.0]) == pytest.approx(0.0, abs=1e-9)
    # Only the cheap point: 1 too high over the upper half of the range.
    assert gap([1.0], [2.0]) == pytest.approx(0.5, abs=0.01)
    # Nothing, or nothing better than the ceiling (the truth at cost 1 = 2), counts as the ceiling.
    assert gap([], []) == pytest.approx(0.5, abs=0.01)
    assert gap([1.0], [7.0]) == pytest.approx(0.5, abs=0.01)
    assert gap([1.0], [7.0], ceiling=3.0) == pytest.approx(1.5, abs=0.01)
    # Nothing under cost 10 (the ceiling is the truth there), then 0.25 too high over the other half.
    assert gap([10.0], [1.25]) == pytest.approx(0.5 * 0.0 + 0.5 * 0.25, abs=0.01)
    with pytest.raises(ValueError, match="truth cost range"):
        truth_gap(truth, (0.0, 1.0), np.array([]), np.array([]))


def test_cost_profile_and_trial_fractions_on_a_hand_made_trace() -> None:
    costs = [1.0] * 15 + [2.0, 4.0, 8.0, 1.0, 3.0, 50.0]  # 21 trials
    trace = _trace([(c, 10.0 - i, False) for i, c in enumerate(costs)], budget=math.inf)
    trace.protocol, trace.max_trials = "trials", 21
    prof = cost_profile(counted_trials(trace))
    assert prof.max_cost == 50.0 and prof.growth_ratio == 50.0
    assert prof.median_cost_thirds == (1.0, 1.0, 3.0)  # thirds of 7: fifteen 1s, then 2 4 8 1 3 50
    assert prof.max_cost_share == pytest.approx(50.0 / sum(costs))
    # Under the trial protocol, 10% of 21 trials is the first 3.
    assert best_at_fraction(trace, 0.1) == 8.0 and best_at_fraction(trace, 1.0) == 10.0 - 20
    assert not trace.capped
    short = cost_profile(counted_trials(_trace([(2.0, 1.0, False), (6.0, 1.0, False)])))
    assert math.isnan(short.growth_ratio) and short.max_cost_share == 0.75


def test_summary_table_ranks_tuners_by_mean_over_seeds() -> None:
    from benchmarks.metrics import RunScores
    from benchmarks.report import mean_std, summary_table

    def scores(best: float, gap: float) -> RunScores:
        return RunScores((best, best, best), gap, 3, 0, 0.0, 0.01, 1.0, False, None)

    table = {"oom_failures": {
        "carbs": [scores(1.0, 0.5), scores(3.0, 0.3)],  # mean best 2.0, mean gap 0.4
        "random": [scores(1.5, 0.1), scores(1.5, 0.1)],
    }}  # fmt: skip
    assert "| `oom_failures` | 2 (2) | **1.5 (1)** |" in summary_table(table)
    assert "**0.1 (1)**" in summary_table(table, "front_gap") and "0.4 (2)" in summary_table(table, "front_gap")
    with pytest.raises(ValueError, match="metric must be"):
        summary_table(table, "speed")
    assert mean_std([1.0, 3.0, math.nan]) == pytest.approx((2.0, math.sqrt(2.0)))
    assert math.isnan(mean_std([math.nan])[0])


# -- harness and adapters --------------------------------------------------------


def test_run_one_starts_at_default_and_respects_budget() -> None:
    p = OutOfMemoryTraining()
    trace = run_one(p, get_tuner_spec("random"), 3, Budget(cost=300.0, max_trials=40))
    assert trace.error is None
    assert trace.trials[0].params == p.default_params()
    costs = np.cumsum([t.cost for t in trace.trials])
    assert costs[-1] >= 300.0 or len(trace.trials) == 40
    assert np.all(costs[:-1] < 300.0)
    again = RunTrace.from_dict(json.loads(json.dumps(trace.to_dict())))
    assert [t.params for t in again.trials] == [t.params for t in trace.trials]
    assert [t.is_failure for t in again.trials] == [t.is_failure for t in trace.trials]
    # Every tuner sees the same noise at the same trial index.
    assert noise_rng(p, 3, 5).normal() == noise_rng(p, 3, 5).normal()


def test_fixed_trial_protocol_runs_its_trial_count_whatever_the_cost() -> None:
    p = WideScaling()
    budget = protocol_budget(p, "quick", "trials")
    assert budget.cost == math.inf and budget.max_trials == 30
    assert protocol_budget(p, "full", "trials").max_trials == 75
    assert protocol_budget(p, "full", "cost") == p.full_budget
    with pytest.raises(ValueError, match="protocol must be"):
        protocol_budget(p, "full", "time")
    trace = run_one(p, get_tuner_spec("random"), 0, budget, "trials")
    # Random search over 15 decades of cost spends far past the cost budget in 30 trials.
    assert len(trace.trials) == 30 and trace.total_cost > p.quick_budget.cost and not trace.capped
    again = RunTrace.from_dict(json.loads(json.dumps(trace.to_dict())))
    assert again.protocol == "trials" and again.budget_cost == math.inf


class _Crashing(Tuner):
    def __init__(self) -> None:
        self.asks = 0

    def ask(self) -> dict:
        self.asks += 1
        raise RuntimeError("boom")

    def tell(self, params: dict, outcome: Outcome) -> None:
        """Accept anything."""


def test_run_one_keeps_a_crashing_tuners_trials() -> None:
    spec = TunerSpec("crash", "Crash", lambda p, s, b: _Crashing(), lambda: None)
    trace = run_one(OutOfMemoryTraining(), spec, 0, Budget(cost=1e4, max_trials=10))
    assert trace.error == "RuntimeError: boom" and len(trace.trials) == 1


def test_random_search_draws_within_bounds() -> None:
    p = ImageClassifierEpochs()
    tuner = RandomSearch(p, 0)
    for _ in range(50):
        p.check_params(tuner.ask())


@pytest.mark.parametrize("name", ["tpe", "cmaes"])
def test_optuna_adapters_ask_in_bounds_and_accept_failures(name: str) -> None:
    spec = TUNERS[name]
    reason = spec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    p = OutOfMemoryTraining()
    tuner = spec.factory(p, 0, p.quick_budget)
    tuner.tell(p.default_params(), Outcome(0.3, 10.0))
    for i in range(4):
        params = p.check_params(tuner.ask())
        failed = i % 2 == 0
        tuner.tell(params, Outcome(math.nan if failed else 0.2, 5.0, is_failure=failed))
    assert TUNERS["cmaes"].not_applicable_reason(ImageClassifierEpochs()) is not None


def test_carbs_params_share_the_neutral_bounds() -> None:
    from carbs import ChoiceSpace, LinearSpace, LogSpace

    p = ImageClassifierEpochs()
    params = {k.name: to_carbs_param(k) for k in p.knobs}
    assert isinstance(params["lr"].space, LogSpace)
    assert (params["lr"].space.min, params["lr"].space.max) == (1e-4, 1.0)
    assert params["epochs"].space.is_integer and params["epochs"].search_center == 10
    assert isinstance(params["dropout"].space, LinearSpace)
    assert params["dropout"].space.scale == pytest.approx(0.8 / 3)
    assert isinstance(params["optimizer"].space, ChoiceSpace)
    layers = to_carbs_param(DigitsMLP().knobs[1])
    assert layers.space.scale == 2.0  # an integer step stays within reach


def test_carbs_adapter_runs_a_few_trials() -> None:
    spec = TUNERS["carbs"]
    reason = spec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    p = OutOfMemoryTraining()
    trace = run_one(p, spec, 0, Budget(cost=1e9, max_trials=6))
    assert trace.error is None and len(trace.trials) == 6


_FAKE_DRIVER = textwrap.dedent(
    """
    from benchmarks.drivers.protocol import serve

    class Fake:
        def __init__(self, knobs, seed, **options):
            self.knobs, self.told = knobs, 0
        def ask(self):
            print("noise a library might print")
            return {k["name"]: k["default"] for k in self.knobs} | {"told": self.told}
        def tell(self, params, output, cost, is_failure):
            assert output is None if is_failure else output > 0
            self.told += 1

    if __name__ == "__main__":
        serve(Fake)
    """
)


def test_external_tuner_speaks_the_json_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_bench_driver.py").write_text(_FAKE_DRIVER)
    monkeypatch.setitem(EXTERNAL_TUNERS, "fake", (Path(sys.prefix), "fake_bench_driver", "none"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("CARBS_BENCH_FAKE_VENV", sys.prefix)
    p = OutOfMemoryTraining()
    tuner = ExternalTuner("fake", p, 0)
    try:
        tuner.tell(p.default_params(), Outcome(math.nan, 3.0, is_failure=True))
        tuner.tell(p.default_params(), Outcome(0.5, 3.0))
        assert tuner.ask()["told"] == 2
    finally:
        tuner.close()


def test_protein_driver_maps_knobs_as_a_puffer_sweep_section() -> None:
    config = protein_driver.sweep_config([k.to_dict() for k in MultiFidelityHartmann().knobs])
    assert config["goal"] == "maximize" and config["method"] == "Protein"
    assert config["x0"] == {"distribution": "uniform", "min": 0.0, "max": 1.0, "mean": 0.5, "scale": "auto"}
    assert config["fidelity"]["distribution"] == "log_normal" and config["fidelity"]["mean"] == 10
    assert dict(protein_driver.unroll_nested_dict({"a": {"b": 1, "c": {"d": 2}}, "e": 3})) == {
        "a/b": 1, "a/c/d": 2, "e": 3}
    with pytest.raises(ValueError, match="categorical"):
        protein_driver.sweep_config([k.to_dict() for k in ImageClassifierEpochs().knobs])


def test_reference_driver_needs_a_checkout_named_by_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBS_REFERENCE_SRC", str(tmp_path))
    with pytest.raises(RuntimeError, match="CARBS_REFERENCE_SRC"):
        reference_driver.reference_source()
    (tmp_path / "carbs").mkdir()
    (tmp_path / "carbs" / "carbs.py").write_text("")
    assert reference_driver.reference_source() == str(tmp_path)
    monkeypatch.setenv("CARBS_BENCH_REFERENCE_VENV", sys.prefix)
    monkeypatch.setenv("CARBS_REFERENCE_SRC", str(tmp_path / "nowhere"))
    assert "CARBS_REFERENCE_SRC" in (TUNERS["reference"].unavailable_reason() or "")
    assert TUNERS["reference"].not_applicable_reason(ImageClassifierEpochs())
    assert TUNERS["protein"].not_applicable_reason(WideScaling()) is None


def test_missing_external_environment_is_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBS_BENCH_HEBO_VENV", str(tmp_path / "missing"))
    monkeypatch.setenv("CARBS_BENCH_SMAC_VENV", str(tmp_path / "missing"))
    args = compare.parse_args(["--quick", "--tuners", "random,hebo,smac"])
    problems, runnable, notes, cache_only = compare.select(args)
    assert not cache_only
    assert runnable == ["random"] and len(problems) == 9
    assert any("HEBO skipped" in n and "hebo_env.sh" in n for n in notes)
    assert any("SMAC3 EIPS skipped" in n and "smac_env.sh" in n for n in notes)
    # The default quick selection leaves out the slow tuners and says so.
    _, _, notes, _ = compare.select(compare.parse_args(["--quick"]))
    assert any("left out of --quick" in n for n in notes)


# -- end to end ----------------------------------------------------------------


def test_quick_compare_writes_a_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--quick", "--problems", "oom_failures", "--tuners", "random,carbs", "--seeds", "1",
        "--out", str(tmp_path / "out"), "--plots", str(tmp_path / "img"),
        "--cache", str(tmp_path / "raw"), "--fresh",
    ]  # fmt: skip
    assert compare.main(argv) == 0
    report = (tmp_path / "out" / "results.md").read_text()
    assert "| tuner | seeds | best @10%" in report
    assert "Random search" in report and "CARBS" in report
    assert (tmp_path / "img" / "oom_failures.png").stat().st_size > 1000
    assert len(list((tmp_path / "raw").glob("*.json"))) == 2
    assert "Summary" in capsys.readouterr().out


def test_trial_protocol_refresh_and_cache_only_tuners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    base = ["--quick", "--protocol", "trials", "--problems", "mf_hartmann", "--seeds", "1",
            "--out", str(tmp_path / "out"), "--cache", str(raw)]  # fmt: skip
    assert compare.main([*base, "--tuners", "random,carbs", "--plots", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "mf_hartmann.png").stat().st_size > 1000
    base.append("--no-plots")
    report = (tmp_path / "out" / "results.md").read_text()
    assert "protocol `trials`" in report and "30 trials per run" in report
    assert "gap to truth" in report and "max / max of first 15" in report
    assert "CARBS runs made at commit" in report
    runs = {p.name: p.stat().st_mtime_ns for p in raw.glob("*.json")}
    assert sorted(runs) == ["mf_hartmann__carbs__0.json", "mf_hartmann__random__0.json"]
    # --refresh reruns only the named tuner; the other is read back from the cache.
    assert compare.main([*base, "--tuners", "random,carbs", "--refresh", "carbs"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in raw.glob("*.json")}
    assert after["mf_hartmann__random__0.json"] == runs["mf_hartmann__random__0.json"]
    assert after["mf_hartmann__carbs__0.json"] > runs["mf_hartmann__carbs__0.json"]
    # A peer whose environment is missing is still reported from its cached runs.
    (raw / "mf_hartmann__protein__0.json").write_text(
        (raw / "mf_hartmann__random__0.json").read_text().replace('"tuner": "random"', '"tuner": "protein"'))
    monkeypatch.setenv("CARBS_BENCH_PROTEIN_VENV", str(tmp_path / "missing"))
    assert compare.main([*base, "--tuners", "random,protein"]) == 0
    report = (tmp_path / "out" / "results.md").read_text()
    assert "Protein 3.0.0" in report and "reported from cached runs" in report
    capsys.readouterr()


def test_curves_matching_share_is_the_first_budget_share_at_the_baselines_full_gap() -> None:
    from benchmarks.curves import GRID, Scores, matching_share

    def scores(gap_at: Callable[[float], float]) -> Scores:
        return Scores({f: gap_at(f) for f in (*GRID, 1.0)}, {}, 0.0, 1, 0, 0)

    baseline = [scores(lambda f: 0.1), scores(lambda f: 0.1)]
    # Reaches 0.1 at 40% (gap 0.5 - f) on the first seed, never on the second.
    faster = [scores(lambda f: 0.5 - f), scores(lambda f: 0.2)]
    assert matching_share(faster, baseline) == "40% (1 of 2 never)"
    assert matching_share(baseline, baseline) == "5%"
    assert matching_share([scores(lambda f: 0.3)], baseline[:1]) == "- (1 of 1 never)"


def test_batches_benchmark_runs_rounds_and_scores_against_the_truth(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.batches import main, run_batches

    best, gap = run_batches("mf_hartmann", seed=0, batch=3, rounds=2)
    assert math.isfinite(best) and gap >= 0.0
    assert math.isnan(run_batches("oom_failures", seed=0, batch=2, rounds=2)[1])  # no true frontier
    assert main(["--problems", "mf_hartmann", "--seeds", "2", "--batch", "2", "--rounds", "2"]) == 0
    assert "| mf_hartmann |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--problems", "nope"])
