"""The stopping rule with a final-cost estimate, and how stopped trials feed the optimizer."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from carbs import CARBS, CARBSParams, LinearSpace, LogSpace, ObservationInParam, Param
from carbs.stopping import Curve, EarlyStopping, FinalCost, FinishedRun, StoppingReference


def _run(
    final: float, epochs: int, shape: float = 2.0, noise: float = 0.005, seed: int = 0
) -> FinishedRun:
    """A run of ``epochs`` steps costing 1 each: ``final + (2.3 - final) (1 - t)^shape``."""
    rng = random.Random(seed)
    costs = tuple(float(k) for k in range(1, epochs + 1))
    values = tuple(
        final + (2.3 - final) * (1 - k / epochs) ** shape + rng.gauss(0, noise)
        for k in range(1, epochs + 1)
    )
    return FinishedRun(values[-1], float(epochs), Curve(costs, values), (math.log(epochs),))


def _upto(run: FinishedRun, steps: int) -> Curve:
    return Curve(run.curve.costs[:steps], run.curve.values[:steps])


RULE = EarlyStopping(min_steps=3, min_completed=4)


def test_final_cost_range_follows_a_power_law_and_widens_away_from_the_runs() -> None:
    runs = [_run(0.5, e, seed=e) for e in (8, 10, 12, 16, 20)]
    fit = FinalCost(runs)
    low, high = fit.range((math.log(14),)) or (0.0, 0.0)
    assert low < 14.0 < high and high / low < 1.5
    # Far outside the finished runs' schedules the range is wider.
    far_low, far_high = fit.range((math.log(200),)) or (0.0, 0.0)
    assert far_low < 200.0 < far_high and far_high / far_low > high / low
    # All runs alike: nothing says how cost changes, so a different point gets a huge range.
    same = FinalCost([_run(0.5, 10, seed=i) for i in range(5)])
    wide = same.range((math.log(60),))
    assert wide is not None and wide[1] > 1e3 * wide[0]
    assert FinalCost(runs[:3]).range((math.log(10),)) is None  # too few runs to fit a spread
    assert fit.range(None) is None


def test_a_long_slow_starter_is_judged_at_its_fraction_not_against_nearly_done_short_runs() -> None:
    # Short runs cost 10 and end at 0.5-0.56; one 60-step run ended at 0.2 (a slow starter).
    done = [_run(0.5 + 0.02 * i, 10, seed=i) for i in range(4)] + [_run(0.2, 60, seed=9)]
    done += [_run(0.21, 40, seed=10)]
    ref = StoppingReference(RULE, -1, done)
    late = _run(0.19, 60, seed=11)
    curve = _upto(late, 5)  # at cost 5 it is far behind the short runs at cost 5
    assert curve.values[-1] - (ref.front.at(5.0) or 0.0) > 0.5
    decision = ref.decide(curve, late.x)
    assert not decision.stop, decision.reason
    # A short run as far behind at the same cost is half done, and hopeless: stopped.
    hopeless = _run(1.6, 10, seed=12)
    decision = ref.decide(_upto(hopeless, 5), hopeless.x)
    assert decision.stop, decision.reason
    assert "behind the front" in decision.reason and decision.bound is not None
    assert decision.bound > 0.5  # minimising: its best plausible final is behind the front


def test_a_trial_at_its_expected_end_or_on_the_front_is_not_stopped() -> None:
    rule = EarlyStopping(min_steps=1, min_completed=4, noise_sigmas=0.0, margin_scale=0.0)
    done = [_run(0.5 + 0.05 * i, 10, seed=i) for i in range(5)] + [_run(0.45, 12, seed=7)]
    ref = StoppingReference(rule, -1, done)
    bad = _run(1.5, 10, seed=20)
    assert ref.decide(_upto(bad, 4), bad.x).stop
    # Its last report: the run may be done, and a finished result must not be lost.
    decision = ref.decide(bad.curve, bad.x)
    assert not decision.stop and "expected for its final cost" in decision.reason
    good = _run(0.3, 10, shape=3.0, seed=21)  # fast: ahead of the front at every cost
    for k in range(1, 10):
        assert ref.decide(_upto(good, k), good.x).reason == "on the front at its cost"


def test_catch_up_at_a_fraction_is_learned_from_runs_that_ended_on_the_front() -> None:
    # Two slow starters (shape 1) ended on the front; the others (shape 3) dropped fast and
    # ended behind. A slow one at 30% of its run looks worse than the fast ones did.
    fast = [_run(0.6 + 0.05 * i, 10 + 2 * (i % 2), shape=3.0, seed=i) for i in range(4)]
    slow = [_run(0.3, 10, shape=1.0, seed=7), _run(0.32, 12, shape=1.0, seed=8)]
    ref = StoppingReference(RULE, -1, [*fast, *slow])
    assert (ref.fraction_catch_up(0.3) or 0.0) >= 0.0
    nxt = _run(0.28, 11, shape=1.0, seed=9)
    assert not ref.decide(_upto(nxt, 3), nxt.x).stop
    # Without the slow ones, the same curve is judged by fast runs only, and stopped.
    alone = StoppingReference(RULE, -1, [*fast, _run(0.55, 12, shape=3.0, seed=5)])
    assert alone.decide(_upto(nxt, 3), nxt.x).stop
    # No front-ending runs reported by that fraction: no evidence, nothing stopped.
    assert StoppingReference(RULE, -1, fast[:2] + fast[2:]).fraction_catch_up(0.0) is None


# -- stopped trials in the optimizer ----------------------------------------------------
def _optimizer() -> CARBS:
    params = [
        Param("x", LinearSpace(min=0.0, max=4.0, scale=1.0), search_center=1.0),
        Param("n", LogSpace(min=1.0, max=64.0, scale=1.0), search_center=8.0),
    ]
    return CARBS(CARBSParams(better_direction_sign=-1, seed=0, num_random_samples=4), params)


def test_a_partial_observation_feeds_the_output_model_only() -> None:
    opt = _optimizer()
    rng = np.random.default_rng(0)
    for _ in range(12):
        x, n = float(rng.uniform(0, 2)), float(np.exp(rng.uniform(0, np.log(64))))
        opt.observe(ObservationInParam({"x": x, "n": n}, (x - 1) ** 2 + 1 / n, cost=n))
    # Stopped at a tenth of its cost: a cost model that learnt it would think n=40 is cheap.
    stopped = ObservationInParam({"x": 3.5, "n": 40.0}, 5.0, cost=4.0, is_partial=True)
    opt.observe(stopped)
    assert opt.success_observations[-1].is_partial and not opt.failure_observations
    assert len(opt.complete_observations) == 12
    assert all(p.input["x"] != 3.5 for p in opt.get_pareto_set())
    model, _ = opt._fitted_surrogate()
    X = opt.search_space.to_basic({"x": 3.5, "n": 40.0})[None, :]
    pred = model.predict(X)
    assert pred.cost_estimate[0] > 20.0  # the cost of a finished run there, not 4
    assert pred.target_estimate[0] > 2.0  # a poor result there
    # It survives a save and load.
    again = CARBS.load_from_string(opt.serialize())
    assert [o.is_partial for o in again.success_observations] == [False] * 12 + [True]


def test_partial_observations_are_checked() -> None:
    opt = _optimizer()
    with pytest.raises(ValueError, match="is_partial and is_failure cannot both be set"):
        opt.observe(ObservationInParam({"x": 1.0, "n": 2.0}, 1.0, 1.0, is_failure=True, is_partial=True))
    with pytest.raises(ValueError, match="observation.is_partial must be a bool, got 'yes'"):
        opt.observe(ObservationInParam({"x": 1.0, "n": 2.0}, 1.0, 1.0, is_partial="yes"))  # type: ignore[arg-type]


def test_the_models_mark_a_region_whose_runs_were_stopped_as_poor() -> None:
    # Finished runs get better towards x=3 (a search would extrapolate into x>3); every run
    # tried at x>3.3 was stopped with a poor value.
    def fill(with_stopped: bool) -> CARBS:
        opt = _optimizer()
        rng = np.random.default_rng(1)
        for _ in range(10):
            x, n = float(rng.uniform(1.0, 3.0)), float(np.exp(rng.uniform(0, np.log(64))))
            opt.observe(ObservationInParam({"x": x, "n": n}, 2.0 - 0.5 * x + 1 / n, cost=n))
        for _ in range(6):
            x, n = float(rng.uniform(3.3, 4.0)), float(np.exp(rng.uniform(0, np.log(64))))
            if with_stopped:
                opt.observe(ObservationInParam({"x": x, "n": n}, 3.0, cost=n / 5, is_partial=True))
        return opt

    X = fill(True).search_space.to_basic({"x": 3.7, "n": 32.0})[None, :]
    told, _ = fill(True)._fitted_surrogate()
    untold, _ = fill(False)._fitted_surrogate()
    worst_finished = 2.0 - 0.5 * 1.0 + 1.0
    assert told.predict(X).target_estimate[0] > worst_finished
    assert untold.predict(X).target_estimate[0] < 1.0  # without them it looks like the best place
    assert told.predict(X).surrogate_output[0] < untold.predict(X).surrogate_output[0] - 1.0


def test_the_leave_one_out_front_matches_a_front_built_without_each_run() -> None:
    from carbs.stopping import Front, LeaveOneOutFront

    rng = random.Random(3)
    runs = [
        _run(rng.uniform(0.2, 0.8), rng.randint(3, 20), shape=rng.uniform(0.5, 3), noise=0.05, seed=i)
        for i in range(12)
    ]
    for sign in (-1, 1):
        loo = LeaveOneOutFront(runs, sign)
        for i in range(len(runs)):
            naive = Front([r for j, r in enumerate(runs) if j != i], sign)
            for cost in (0.5, 1.0, 2.5, 4.0, 7.0, 11.0, 19.0, 25.0):
                assert loo.at(cost, i) == naive.at(cost), (sign, i, cost)
