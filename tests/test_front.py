"""The performance-cost front: cost targeting, caps that hold, the cheap end, noise-aware resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carbs import CARBS, CARBSParams, LinearSpace, LogSpace, ObservationInParam, Param
from carbs.optimizer import cost_targeting
from carbs.optimizer.config import CostTargetingEnum, ResamplingEnum
from carbs.optimizer.pareto import group_observations, pareto_groups
from carbs.optimizer.types import ObservationInBasic

# A language model with wide bounds: cost (6 N D / 1e18 FLOPs) spans 15 decades.
WIDE = [
    Param("n_params", LogSpace(min=1e5, max=1e12), 1e8),
    Param("tokens", LogSpace(min=1e6, max=1e14), 2e9),
    Param("lr", LogSpace(min=1e-5, max=1.0), 1e-3),
    Param("warmup", LinearSpace(min=0.0, max=0.3, scale=0.3), 0.05),
]
CENTER_COST = 6 * 1e8 * 2e9 / 1e18


def wide_loss_and_cost(p: dict, noise: float = 0.0, rng: np.random.Generator | None = None) -> tuple[float, float]:
    n, d = p["n_params"], p["tokens"]
    lr_opt = 3e-3 * (1e8 / n) ** 0.25
    pen = 0.3 * math.log10(p["lr"] / lr_opt) ** 2 + 2.0 * (p["warmup"] - 0.03) ** 2
    loss = 1.69 + (406.4 / n**0.34 + 410.7 / d**0.28) * (1 + pen)
    if noise and rng is not None:
        loss += noise * rng.standard_normal()
    return loss, 6 * n * d / 1e18


def run_wide(opt: CARBS, n: int, noise: float = 0.0, seed: int = 0, before_suggest=None) -> list[dict]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        context = before_suggest(opt) if before_suggest else None
        out = opt.suggest()
        params = {k: v for k, v in out.suggestion.items() if k != "suggestion_uuid"}
        loss, cost = wide_loss_and_cost(params, noise, rng)
        rows.append({"log": out.log, "cost": cost, "loss": loss, "context": context})
        opt.observe(ObservationInParam(out.suggestion, loss, cost))
    return rows


def model_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["log"]["suggestion_kind"] == "model"]


def test_max_suggestion_cost_holds_at_the_upper_quantile() -> None:
    cap = 20.0
    rows = run_wide(CARBS(CARBSParams(better_direction_sign=-1, seed=1, max_suggestion_cost=cap), WIDE), 40)
    models = model_rows(rows)
    assert len(models) > 25
    for r in models:
        assert r["log"]["suggestion_meta/cost_upper_estimate"] <= cap * (1 + 1e-9)
        assert r["log"]["suggestion_meta/cost_upper_estimate"] >= r["log"]["suggestion_meta/cost_estimate"]
    # The cost model is good on this problem: the cap holds for the runs themselves.
    assert max(r["cost"] for r in models) <= 1.5 * cap


def test_cost_budget_caps_each_suggestion_at_a_fraction_of_what_is_left() -> None:
    budget = 300.0
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=2), WIDE)

    def tell_budget(o: CARBS) -> float:
        left = budget - o.total_cost
        o.set_cost_budget(left)
        return left

    rows = run_wide(opt, 40, before_suggest=tell_budget)
    models = model_rows(rows)
    assert models
    for r in models:
        assert r["log"]["suggestion_meta/cost_upper_estimate"] <= 0.25 * max(r["context"], 0) * (1 + 1e-9) or (
            r["log"]["suggestion_meta/cost_ceiling"] == pytest.approx(0.25 * max(r["context"], 0))
        )
    with pytest.raises(ValueError, match="remaining must be a number"):
        opt.set_cost_budget("a lot")  # type: ignore[arg-type]


def growth_base_now(opt: CARBS) -> float | None:
    """The cost the third costliest successful run has reached (the default growth base)."""
    costs = sorted((o.cost for o in opt.success_observations), reverse=True)
    return costs[min(3, len(costs)) - 1] if costs else None


def test_each_expansion_is_bounded_by_max_cost_growth() -> None:
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=3, max_cost_growth=2.0), WIDE)
    rows = run_wide(opt, 50, before_suggest=growth_base_now)
    for r in model_rows(rows):
        assert r["log"]["suggestion_meta/cost_upper_estimate"] <= 2.0 * r["context"] * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_growth_window_bounds_a_fixed_length_sweep(seed: int) -> None:
    # 75 trials on a problem whose loss improves up to the box's corner (1e8
    # times the start): with a window of 15 runs the costliest run grows at
    # most threefold per window, so it stays within 81x of the first 15.
    config = CARBSParams(better_direction_sign=-1, seed=seed, cost_growth_window=15)
    costs = [r["cost"] for r in run_wide(CARBS(config, WIDE), 75)]
    for n in range(16, 76):
        assert max(costs[:n]) <= 3.0 ** math.ceil(n / 15 - 1) * max(costs[:15]) * 1.5  # 1.5: cost-model error
    assert max(costs) <= 100 * max(costs[:15])
    assert max(costs) > 5 * max(costs[:15])  # ... and yet the front grows


@pytest.mark.parametrize("seed", [0, 1])
def test_cost_grows_gradually_where_the_paper_runs_away(seed: int) -> None:
    ours = [r["cost"] for r in run_wide(CARBS(CARBSParams(better_direction_sign=-1, seed=seed), WIDE), 60)]
    paper = [r["cost"] for r in run_wide(CARBS(CARBSParams.paper(better_direction_sign=-1, seed=seed), WIDE), 60)]
    # The paper's rule climbs several-fold on nearly every suggestion (to ~1e8 here).
    assert max(paper) > 1e3 * max(ours)
    assert max(ours) / max(ours[:15]) < 1e3
    # ... yet the front still grows: the costliest run is well beyond the start.
    assert max(ours) > 5 * CENTER_COST


def test_cheap_end_is_probed() -> None:
    rows = run_wide(CARBS(CARBSParams(better_direction_sign=-1, seed=4), WIDE), 40)
    cheap = [r for r in rows if r["cost"] < CENTER_COST / 4]
    assert len(cheap) >= 4
    paper_rows = run_wide(CARBS(CARBSParams.paper(better_direction_sign=-1, seed=4), WIDE), 40)
    assert len(cheap) > sum(1 for r in paper_rows if r["cost"] < CENTER_COST / 4)


def test_model_suggestions_spread_over_the_front_and_expand_only_sometimes() -> None:
    rows = model_rows(run_wide(CARBS(CARBSParams(better_direction_sign=-1, seed=5), WIDE), 70))
    expansions = [r for r in rows if r["log"]["suggestion_meta/cost_target_is_expansion"]]
    assert 0.03 < len(expansions) / len(rows) < 0.4
    targets = np.log10([r["log"]["suggestion_meta/cost_target"] for r in rows])
    assert np.ptp(targets) > 2.0
    # The paper's rule (CLAMP) does not aim at levels.
    paper = CARBS(CARBSParams.paper(better_direction_sign=-1, seed=5), WIDE)
    assert all("suggestion_meta/cost_target" not in r["log"] for r in model_rows(run_wide(paper, 10)))


def test_noise_aware_resampling_is_rare_without_noise_and_paced_with_it() -> None:
    def resamples(noise: float, resampling: str) -> int:
        opt = CARBS(CARBSParams(better_direction_sign=-1, seed=6, resampling=resampling), WIDE)
        return sum(r["log"]["suggestion_kind"] == "resample" for r in run_wide(opt, 60, noise=noise, seed=6))

    quiet, noisy, fixed = resamples(0.0, "NOISE"), resamples(0.3, "NOISE"), resamples(0.0, "FIXED")
    assert fixed >= 9
    assert quiet <= fixed / 2
    assert noisy >= fixed - 2


def test_a_lucky_point_on_the_front_is_run_again() -> None:
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=7), WIDE)
    rows = run_wide(opt, 20, noise=0.3, seed=7)
    best = min(rows, key=lambda r: r["loss"])
    lucky_input = {"n_params": 3e7, "tokens": 5e8, "lr": 2e-3, "warmup": 0.05}
    lucky_cost = wide_loss_and_cost(lucky_input)[1]
    opt.observe(ObservationInParam(lucky_input, best["loss"] - 1.0, lucky_cost))
    assert any(p.cost == pytest.approx(lucky_cost) for p in opt.get_pareto_set())
    again = []
    for _ in range(12):
        out = opt.suggest()
        params = {k: v for k, v in out.suggestion.items() if k != "suggestion_uuid"}
        if out.log["suggestion_kind"] == "resample":
            again.append(params)
        loss, cost = wide_loss_and_cost(params, 0.3, np.random.default_rng(len(again)))
        opt.observe(ObservationInParam(out.suggestion, loss, cost))
    assert any(p["n_params"] == pytest.approx(3e7) and p["tokens"] == pytest.approx(5e8) for p in again)


def test_candidates_below_the_success_floor_are_excluded() -> None:
    def run(floor: float) -> list[float]:
        opt = CARBS(CARBSParams(better_direction_sign=-1, seed=8, min_success_probability=floor), WIDE)
        rng = np.random.default_rng(8)
        probabilities = []
        for _ in range(40):
            out = opt.suggest()
            p = {k: v for k, v in out.suggestion.items() if k != "suggestion_uuid"}
            loss, cost = wide_loss_and_cost(p, 0.05, rng)
            failed = p["lr"] > 3e-3  # runs diverge above a learning rate
            if out.log["suggestion_kind"] == "model":
                probabilities.append(out.log["suggestion_meta/success_probability"])
            opt.observe(ObservationInParam(out.suggestion, loss, cost, is_failure=failed))
        return probabilities

    floored = run(0.5)
    assert floored and min(floored) >= 0.5


def test_cheap_groups_are_lumped_only_within_noise() -> None:
    def obs(x: float, y: float, c: float) -> ObservationInBasic:
        return ObservationInBasic(np.array([x]), y, c)

    # Minimising; cheap points at costs 1..5 improve by 0.1 each step.
    groups = group_observations([obs(i, 1.0 - 0.1 * i, 1.0 + i) for i in range(10)])
    paper = pareto_groups(groups, 0.2, -1, True, None)
    exact = pareto_groups(groups, 0.2, -1, True, 0.0)
    noisy = pareto_groups(groups, 0.2, -1, True, 0.15)
    assert len(exact) == 10  # no noise: the whole cheap end stays on the front
    assert len(paper) < len(exact)  # the paper lumps the cheapest 20% into one slot
    # With noise 0.15, the cheap steps of 0.1 are within noise: lumped, cheapest kept.
    assert exact[0][0].cost == 1.0 and noisy[0][0].cost == 1.0
    assert len(paper) <= len(noisy) < len(exact)


def test_cost_targeting_parts() -> None:
    rng = np.random.default_rng(0)
    front = np.log([1.0, 10.0, 100.0])
    levels = [cost_targeting.choose_target(front, i, math.log(2), 0.0, rng).log_cost for i in range(40)]
    # Levels fill [cheapest / 2, costliest] evenly: every third of it gets some.
    thirds = np.histogram(levels, bins=3, range=(math.log(0.5), math.log(100.0)))[0]
    assert (thirds >= 10).all()
    assert all(t.upper == pytest.approx(math.log(100.0)) for t in [cost_targeting.choose_target(front, 1, 0.7, 0.0, rng)])
    band = cost_targeting.expansion_band(front, math.log(100.0), math.log(2))
    expansion = cost_targeting.choose_target(front, 0, math.log(2), 1.0, rng, band)
    assert expansion.is_expansion and math.log(100.0) < expansion.log_cost <= math.log(200.0)

    def still_improving(log_cost: np.ndarray) -> np.ndarray:
        return np.asarray(log_cost, dtype=float)

    def flat_at_top(log_cost: np.ndarray) -> np.ndarray:
        return np.minimum(np.asarray(log_cost, dtype=float), math.log(10.0))

    assert cost_targeting.expansion_share(still_improving, front, math.log(2), 0.2) == pytest.approx(0.2)

    def paying_more_at_top(log_cost: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(log_cost, dtype=float))  # convex in log cost

    # The top pays far more than on average: the share grows to 2 * 0.2 - 0.1.
    assert cost_targeting.expansion_share(paying_more_at_top, front, math.log(2), 0.2) == pytest.approx(0.3)
    assert cost_targeting.expansion_share(flat_at_top, front, math.log(2), 0.2) == pytest.approx(0.1)
    assert cost_targeting.expansion_share(flat_at_top, front, math.log(2), 0.2, 0.02) == pytest.approx(0.02)
    assert cost_targeting.cost_ceiling(10.0, 2.0, 15.0, 100.0, 0.25) == pytest.approx(15.0)
    assert cost_targeting.cost_ceiling(10.0, 2.0, None, 40.0, 0.25) == pytest.approx(10.0)
    assert cost_targeting.cost_ceiling(None, None, None, None, 0.25) is None
    upper = cost_targeting.upper_log_cost(np.array([0.0]), np.array([1.0]), 0.9)
    assert upper[0] == pytest.approx(1.2816, abs=1e-3)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_cost_growth", 1.0, "max_cost_growth must be None or a finite number > 1, got 1.0"),
        ("cost_expansion_probability", 1.5, "cost_expansion_probability must be a number in [0, 1]"),
        ("cost_growth_window", 0, "cost_growth_window must be None or a positive integer, got 0"),
        (
            "min_cost_expansion_probability",
            0.5,
            "min_cost_expansion_probability must be None or a number in [0, cost_expansion_probability=0.3], got 0.5",
        ),
        ("cost_quantile", 0.2, "cost_quantile must be a number in [0.5, 1), got 0.2"),
        ("max_budget_fraction", 0.0, "max_budget_fraction must be a number in (0, 1]"),
        ("min_success_probability", 1.0, "min_success_probability must be a number in [0, 1)"),
        ("cost_targeting", "UP", "cost_targeting must be one of ['FRONT', 'CLAMP'], got 'UP'"),
        ("resampling", "OFTEN", "resampling must be one of ['NOISE', 'FIXED']"),
    ],
)
def test_new_settings_are_validated(setting: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        CARBSParams(**{setting: value})  # type: ignore[arg-type]


def test_settings_round_trip_through_the_state() -> None:
    cfg = CARBSParams(cost_targeting=CostTargetingEnum.CLAMP, resampling=ResamplingEnum.FIXED, max_cost_growth=None)
    again = CARBSParams.from_dict(cfg.to_dict())
    assert again == cfg
    opt = CARBS(cfg, WIDE)
    assert CARBS.load_from_string(opt.serialize()).config == cfg


# A multi-fidelity problem: three knobs and a fidelity 1..100 whose cost grows
# as its square; a lower fidelity reads worse by a bias that vanishes only at
# the top, so the best values lie only at the top of the cost range, while the
# knobs are cheapest to tune at the lowest fidelity.
FIDELITY = [
    Param("x0", LinearSpace(min=0.0, max=1.0, scale=1 / 3), 0.5),
    Param("x1", LinearSpace(min=0.0, max=1.0, scale=1 / 3), 0.5),
    Param("x2", LinearSpace(min=0.0, max=1.0, scale=1 / 3), 0.5),
    Param("fidelity", LogSpace(min=1, max=100, is_integer=True), 10),
]


def fidelity_loss_and_cost(p: dict, rng: np.random.Generator) -> tuple[float, float]:
    x = np.array([p["x0"], p["x1"], p["x2"]])
    knobs = -3.0 * math.exp(-8.0 * float(np.sum((x - np.array([0.2, 0.7, 0.4])) ** 2)))
    bias = 2.0 * (1.0 - p["fidelity"] / 100.0)
    return knobs + bias + 0.02 * rng.standard_normal(), (p["fidelity"] / 10.0) ** 2


def run_fidelity(opt: CARBS, n: int, seed: int) -> list[dict]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    start = {"x0": 0.5, "x1": 0.5, "x2": 0.5, "fidelity": 10}
    loss, cost = fidelity_loss_and_cost(start, rng)
    opt.observe(ObservationInParam(start, loss, cost))
    rows = [{"params": start, "cost": cost, "loss": loss}]
    for _ in range(n - 1):
        out = opt.suggest()
        params = {k: v for k, v in out.suggestion.items() if k != "suggestion_uuid"}
        loss, cost = fidelity_loss_and_cost(params, rng)
        rows.append({"params": params, "cost": cost, "loss": loss, "log": out.log})
        opt.observe(ObservationInParam(out.suggestion, loss, cost))
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_the_top_fidelity_is_reached_when_the_best_values_lie_there(seed: int) -> None:
    # Cheap runs soon hold the best value (the knobs tune fastest at fidelity
    # 1) and the front collapses to them; growth must still climb from the
    # costs already run, and the front then shows that more cost pays. (With
    # the growth bound tied to the costliest Pareto point, these seeds stayed
    # at fidelity 16 and 36.)
    rows = run_fidelity(CARBS(CARBSParams(better_direction_sign=-1, seed=seed), FIDELITY), 75, seed)
    top = [i for i, r in enumerate(rows) if r["params"]["fidelity"] >= 70]
    assert top and top[0] < 75
    assert min(r["loss"] for r in rows) < min(r["loss"] for r in rows if r["params"]["fidelity"] <= 10) - 0.5


def test_growth_base_and_expansion_band() -> None:
    costs = np.array([0.01, 2.0, 1.0, 3.0, 0.5])
    assert cost_targeting.growth_base(costs, 3) == pytest.approx(1.0)
    assert cost_targeting.growth_base(costs, 0) == pytest.approx(3.0)  # at least one run
    assert cost_targeting.growth_base(costs[:2], 3) == pytest.approx(0.01)  # fewer runs than asked
    g = math.log(3.0)
    # A front collapsed to its cheapest run still grows from the costs run.
    band = cost_targeting.expansion_band(np.log([0.01]), math.log(1.0), g)
    assert band is not None
    assert band[0] == pytest.approx(0.5 * g) and band[1] == pytest.approx(g)
    target = cost_targeting.choose_target(np.log([0.01]), 0, g, 1.0, np.random.default_rng(0), band)
    assert target.is_expansion
    assert not target.in_band(np.array([math.log(0.01), 0.0, 0.5 * g]))[0:3].any()
    assert target.in_band(np.array([0.8 * g]))[0]
    # A top already a step above the base: no room, the share tunes the top step instead.
    assert cost_targeting.expansion_band(np.log([0.1, 3.0]), 0.0, g) is None
    catch_up = cost_targeting.choose_target(np.log([0.1, 3.0]), 0, g, 1.0, np.random.default_rng(0), None)
    assert not catch_up.is_expansion and catch_up.upper == pytest.approx(math.log(3.0))
    assert catch_up.in_band(np.array([math.log(2.0)]))[0]
