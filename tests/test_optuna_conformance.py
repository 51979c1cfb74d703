"""Optuna's own generic sampler tests (``optuna.testing.pytest_samplers``) against CARBSSampler."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("optuna")

from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from carbs.integrations.optuna import CARBSSampler


def _sampler() -> BaseSampler:
    return CARBSSampler(seed=0, warn_independent_sampling=False)


class TestCARBSSampler(BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return _sampler


# -- beyond the generic cases: what Optuna's own sampler tests also check ----------------------
_SCRIPT = """
import json, sys
import optuna
from carbs.integrations.optuna import CARBSSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    x = trial.suggest_float("x", -10, 10, step=0.5)
    n = trial.suggest_int("n", 3, 9, step=2)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    act = trial.suggest_categorical("act", ["relu", "tanh"])
    return (x - 2) ** 2 + n + (lr * 100) ** 2 + (act == "tanh")

study = optuna.create_study(sampler=CARBSSampler(seed=int(sys.argv[1])))
study.optimize(objective, n_trials=int(sys.argv[2]))
print(json.dumps([t.params for t in study.trials]))
"""


def _run_here(seed: int, n_trials: int) -> list[dict[str, object]]:
    scope: dict[str, object] = {"__name__": "conformance"}
    import contextlib
    import io
    import json
    import sys

    argv, out = sys.argv, io.StringIO()
    sys.argv = ["x", str(seed), str(n_trials)]
    try:
        with contextlib.redirect_stdout(out):
            exec(_SCRIPT, scope)
    finally:
        sys.argv = argv
    result: list[dict[str, object]] = json.loads(out.getvalue())
    return result


def test_seeded_studies_repeat_themselves_without_a_cost_attribute() -> None:
    first, again, other = _run_here(3, 10), _run_here(3, 10), _run_here(4, 10)
    assert first == again
    assert first != other
    # The model phase was reached (4 random samples by default), and stepped grids were modelled.
    assert all(p["x"] % 0.5 == 0 and p["n"] in (3, 5, 7, 9) for p in first)


def test_seeded_studies_repeat_themselves_in_another_process() -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "5", "8"], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout) == _run_here(5, 8)


def test_stepped_grids_are_searched_by_carbs_not_the_independent_sampler() -> None:
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    sampler = CARBSSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    space = {"x": FloatDistribution(-1.0, 1.0, step=0.25), "n": IntDistribution(3, 9, step=2)}
    for _ in range(6):
        trial = study.ask(space)
        study.tell(trial, trial.params["x"] ** 2 + trial.params["n"])
    assert sampler.infer_relative_search_space(study, study.trials[-1]) == space
    opt = sampler.optimizer_for(study)
    assert [p.name for p in opt.params] == ["n", "x"] and opt.observation_count == 6
    # CARBS holds positions on the grid: x = -1 + 0.25 k, n = 3 + 2 k.
    for t, obs in zip(study.trials, opt.success_observations):
        values = opt._basic_space_to_param_space(obs.real_number_input)
        assert (values["x"], values["n"]) == ((t.params["x"] + 1) / 0.25, (t.params["n"] - 3) / 2)


def test_default_cost_is_checked_and_used() -> None:
    import optuna

    with pytest.raises(ValueError, match="default_cost"):
        CARBSSampler(default_cost=0)
    with pytest.raises(ValueError, match="default_cost"):
        CARBSSampler(default_cost="seconds")
    for sampler, expected in ((CARBSSampler(seed=0), 1.0), (CARBSSampler(seed=0, default_cost=3.5), 3.5)):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=2)
        assert [o.cost for o in sampler.optimizer_for(study).success_observations] == [expected] * 2
    timed = CARBSSampler()  # unseeded: a trial costs its duration
    study = optuna.create_study(sampler=timed)
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=2)
    costs = [o.cost for o in timed.optimizer_for(study).success_observations]
    assert all(c < 1.0 for c in costs)


def test_pareto_set_speaks_the_objective_s_values() -> None:
    import optuna

    sampler = CARBSSampler(seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        drop = trial.suggest_float("drop", 0.0, 0.5, step=0.05)
        epochs = trial.suggest_int("epochs", 1, 9, step=2)
        trial.set_user_attr("cost", float(epochs))
        return (drop - 0.2) ** 2 + 1 / epochs

    study.optimize(objective, n_trials=8)
    front = sampler.pareto_set(study)
    ran = {(round(t.params["drop"], 9), t.params["epochs"]) for t in study.trials}
    assert front and all((round(p.input["drop"], 9), p.input["epochs"]) in ran for p in front)
    assert all(repr(p.input["drop"]) == repr(round(p.input["drop"], 2)) for p in front)  # 0.3, not 0.30000000000000004
    assert [p.cost for p in front] == sorted(p.cost for p in front)


def test_constant_objective_repeats_and_reseeding_changes_the_sequence() -> None:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("a", 1, 9)
        trial.suggest_int("f", 1, 9, step=2)
        trial.suggest_categorical("g", [1, 2, 3])
        return 0.0  # ties everywhere: the order of equal values must not depend on chance

    def run(sampler: CARBSSampler) -> list[dict[str, object]]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(objective, n_trials=8)
        return [t.params for t in study.trials]

    assert run(CARBSSampler(seed=1)) == run(CARBSSampler(seed=1))
    reseeded = CARBSSampler(seed=1)
    reseeded.reseed_rng()
    assert run(reseeded) != run(CARBSSampler(seed=1))
