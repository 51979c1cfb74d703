"""The tuner actually tunes: CARBS against random search at equal cumulative cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carbs import CARBS, CARBSParams, LinearSpace, LogSpace, ObservationInParam, Param

PARAMS = [
    Param("x", LinearSpace(min=-2.0, max=2.0, scale=0.5), 1.0),
    Param("y", LinearSpace(min=-2.0, max=2.0, scale=0.5), -1.0),
    Param("lr", LogSpace(min=1e-5, max=1e-1, scale=0.5), 1e-2),
    Param("epochs", LogSpace(min=1, max=200, is_integer=True, scale=0.3), 2),
]


def loss_and_cost(p: dict, rng: np.random.Generator) -> tuple[float, float]:
    """A training-like loss: more epochs help with diminishing returns and cost linearly;
    the best learning rate shrinks as training gets longer (a drifting nuisance knob)."""
    best_log_lr = -2.0 - 0.5 * math.log10(p["epochs"])
    loss = (
        (p["x"] - 0.3) ** 2
        + 0.5 * (p["y"] + 0.2) ** 2
        + 0.8 * (math.log10(p["lr"]) - best_log_lr) ** 2
        + 2.0 / math.sqrt(p["epochs"])
        + 0.01 * rng.normal()
    )
    return loss, float(p["epochs"]) * (1.0 + 0.05 * rng.random())


def best_within_budget(suggest, observe, budget: float, seed: int) -> float:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1000 + seed)
    spent, best = 0.0, math.inf
    while spent < budget:
        p = suggest()
        loss, cost = loss_and_cost(p, rng)
        if spent + cost > budget:
            break
        spent += cost
        best = min(best, loss)
        observe(p, loss, cost)
    return best


def carbs_best(budget: float, seed: int) -> float:
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=seed), PARAMS)
    return best_within_budget(
        lambda: opt.suggest().suggestion,
        lambda p, y, c: opt.observe(ObservationInParam(p, y, c)),
        budget,
        seed,
    )


def random_best(budget: float, seed: int) -> float:
    rng = np.random.default_rng(seed)

    def suggest() -> dict:
        return {
            "x": rng.uniform(-2, 2),
            "y": rng.uniform(-2, 2),
            "lr": 10 ** rng.uniform(-5, -1),
            "epochs": int(round(10 ** rng.uniform(0, math.log10(200)))),
        }

    return best_within_budget(suggest, lambda *_: None, budget, seed)


@pytest.mark.slow
def test_carbs_beats_random_search_at_equal_cost() -> None:
    budget = 400.0
    seeds = range(4)
    ours = np.array([carbs_best(budget, s) for s in seeds])
    theirs = np.array([random_best(budget, s) for s in seeds])
    # A broken tuner (random or stuck at the cheap start) stays near the random baseline.
    assert ours.mean() < theirs.mean() - 0.3, (ours, theirs)
    assert (ours < theirs).all(), (ours, theirs)


@pytest.mark.slow
def test_pareto_front_climbs_in_cost_and_tracks_the_drifting_optimum() -> None:
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=0), PARAMS)
    rng = np.random.default_rng(0)
    max_costs = []
    for i in range(60):
        s = opt.suggest().suggestion
        opt.observe(ObservationInParam(s, *loss_and_cost(s, rng)))
        if i in (19, 59):
            max_costs.append(max(p.cost for p in opt.get_pareto_set()))
    # The front grows gradually (one bounded step at a time, once its top is tuned).
    assert max_costs[1] > 1.4 * max_costs[0]
    front = opt.get_pareto_set()
    assert len(front) >= 3
    # Along the front, more epochs go with a smaller learning rate, as the loss says.
    epochs = np.log10([p.input["epochs"] for p in front])
    lrs = np.log10([p.input["lr"] for p in front])
    assert np.corrcoef(epochs, lrs)[0, 1] < 0
