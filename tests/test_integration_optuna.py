"""CARBSSampler: distribution conversion, state rebuilt from storage, two processes on SQLite."""

from __future__ import annotations

import importlib.util
import logging
import math
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("optuna")

import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from carbs import CARBSParams, ChoiceSpace, LinearSpace, LogSpace, Param
from carbs.integrations._optuna_space import distribution_from_param, param_from_distribution
from carbs.integrations.optuna import CARBSSampler, ConversionError, suggest_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- conversion -----------------------------------------------------------------------------
def test_distributions_convert_to_matching_spaces() -> None:
    lr, _ = param_from_distribution("lr", FloatDistribution(1e-5, 1e-1, log=True), {})
    assert isinstance(lr.space, LogSpace) and lr.search_center == pytest.approx(1e-3)
    width, _ = param_from_distribution("w", IntDistribution(8, 512, log=True), {})
    assert isinstance(width.space, LogSpace) and width.space.is_integer and width.search_center == 64
    batch, _ = param_from_distribution("b", IntDistribution(16, 256, step=16), {"b": 64})
    assert batch.space.rounding_factor == 16 and batch.search_center == 64  # type: ignore[union-attr]
    warm, codec = param_from_distribution("warm", FloatDistribution(0, 100, step=10), {})
    assert codec.kind == "float" and warm.space.is_integer
    assert isinstance(codec.from_carbs(warm.search_center), float)
    act, codec = param_from_distribution("act", CategoricalDistribution([None, "relu"]), {})
    assert isinstance(act.space, ChoiceSpace) and codec.from_carbs(act.search_center) is None
    # Grids CARBS cannot round to are searched by position: k stands for low + k * step.
    x, codec = param_from_distribution("x", FloatDistribution(-0.2, 1.0, step=0.1), {"x": 0.5})
    assert (x.space.min, x.space.max, x.space.is_integer) == (0, 12, True)  # type: ignore[union-attr]
    assert x.search_center == 7 and codec.from_carbs(7) == pytest.approx(0.5)
    assert isinstance(codec.from_carbs(3), float)
    n, codec = param_from_distribution("n", IntDistribution(1, 9, step=2), {})
    assert (n.space.min, n.space.max) == (0, 4) and n.search_center == 2  # type: ignore[union-attr]
    assert [codec.from_carbs(k) for k in range(5)] == [1, 3, 5, 7, 9]
    assert isinstance(codec.from_carbs(1), int) and codec.to_carbs(7) == 3
    with pytest.raises(ValueError, match="not on the grid"):
        codec.to_carbs(4)


def test_params_declare_the_distribution_an_objective_asks_for() -> None:
    assert distribution_from_param(
        Param("lr", LogSpace(min=1e-5, max=1.0), search_center=1e-3)
    ) == FloatDistribution(1e-5, 1.0, log=True)
    assert distribution_from_param(
        Param("n", LinearSpace(min=0, max=64, scale=8, is_integer=True, rounding_factor=4), search_center=8)
    ) == IntDistribution(0, 64, step=4)
    with pytest.raises(ConversionError, match="'lr'.*min > 0"):
        distribution_from_param(Param("lr", LogSpace(max=1.0), search_center=0.1))
    with pytest.raises(ConversionError, match="'x'.*finite bounds"):
        distribution_from_param(Param("x", LinearSpace(), search_center=0.0))


# -- sampling in one process --------------------------------------------------------------
PARAMS = [
    Param("lr", LogSpace(min=1e-5, max=1.0, scale=1.0), search_center=1e-2),
    Param("x", LinearSpace(min=0.0, max=1.0, scale=0.25), search_center=0.5),
    Param("act", ChoiceSpace(["relu", "gelu"]), search_center="relu"),
]


def _value(p: dict[str, Any]) -> float:
    return (math.log10(p["lr"]) + 3) ** 2 + (p["x"] - 0.7) ** 2 + (0.3 if p["act"] == "relu" else 0.0)


def _values(trials: list[FrozenTrial]) -> list[float]:
    values = [t.value for t in trials]
    assert all(v is not None for v in values)
    return [float(v) for v in values if v is not None]


def _objective(trial: Any) -> float:
    p = suggest_params(trial, PARAMS)
    trial.set_user_attr("cost", 1.0 + p["x"])
    return _value(p)


def test_fixed_params_guide_the_search_from_the_first_trial() -> None:
    sampler = CARBSSampler(PARAMS, seed=0, carbs_params=CARBSParams(num_random_samples=4))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(_objective, n_trials=12)
    first = study.trials[0].params
    # Random sampling would spread lr over five decades; CARBS starts at the center.
    assert abs(math.log10(first["lr"]) + 2) < 1.0 and abs(first["x"] - 0.5) < 0.3
    values = _values(study.trials)
    assert min(values[6:]) < min(values[:4])  # the models beat the random phase
    opt = sampler.optimizer_for(study)
    assert opt.observation_count == 12 and opt.config.better_direction_sign == -1
    assert opt.get_pareto_set()[0].cost >= 1.0  # cost came from the user attribute


def test_inferred_space_and_independent_fallback(caplog: pytest.LogCaptureFixture) -> None:
    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
        width = trial.suggest_int("width", 1, 10)
        act = trial.suggest_categorical("act", [None, "relu"])
        if trial.number % 2:  # a conditional parameter CARBS does not model
            trial.suggest_float("extra", 0.0, 1.0)
        trial.set_user_attr("cost", float(width))
        return (math.log10(lr) + 2.5) ** 2 + 0.1 * (width - 7) ** 2 + (0.5 if act is None else 0.0)

    sampler = CARBSSampler(seed=1, search_center={"width": 3})
    study = optuna.create_study(direction="minimize", sampler=sampler)
    with caplog.at_level(logging.WARNING, logger="carbs.integrations.optuna"):
        study.optimize(objective, n_trials=14)
    assert set(sampler.infer_relative_search_space(study, study.trials[-1])) == {"lr", "width", "act"}
    assert sampler.optimizer_for(study).params[2].search_center == 3  # sorted names: act, lr, width
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("'extra'" in w for w in warnings) == 1  # warned once
    assert not any("'lr'" in w for w in warnings)
    assert study.best_value < min(_values(study.trials[:3]))


def test_trial_states_map_to_observations_failures_and_pending() -> None:
    sampler = CARBSSampler(PARAMS, seed=0, default_cost="duration")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = datetime(2024, 1, 1)
    good = {"lr": 1e-3, "x": 0.6, "act": "gelu"}
    dists = {p.name: distribution_from_param(p) for p in PARAMS}
    timed = create_trial(params=good, distributions=dists, value=1.0)
    timed.datetime_start, timed.datetime_complete = start, start + timedelta(seconds=42)
    study.add_trial(timed)  # no cost attribute: its duration is the cost
    study.add_trial(
        create_trial(
            params={**good, "x": 0.1}, distributions=dists, value=2.0, user_attrs={"cost": 7.0}
        )
    )
    study.add_trial(create_trial(params={**good, "x": 0.2}, distributions=dists, state=TrialState.FAIL))
    study.add_trial(create_trial(params={**good, "x": 0.3}, distributions=dists, state=TrialState.PRUNED))
    study.add_trial(create_trial(params={**good, "x": 0.4}, distributions=dists, state=TrialState.RUNNING))
    # Out of the current bounds: skipped, not an error.
    study.add_trial(create_trial(params={**good, "lr": 10.0}, distributions={**dists, "lr": FloatDistribution(1e-5, 100.0, log=True)}, value=5.0))
    opt = sampler.optimizer_for(study)
    assert opt.config.better_direction_sign == 1
    assert sorted(o.cost for o in opt.success_observations) == [7.0, 42.0]
    assert len(opt.failure_observations) == 2
    assert len(opt.outstanding_suggestions) == 1


def test_multi_objective_studies_are_refused() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=CARBSSampler(PARAMS))
    with pytest.raises(ValueError, match="one objective"):
        study.optimize(lambda t: (suggest_params(t, PARAMS)["x"], 1.0), n_trials=1)


# -- two processes on one SQLite storage ------------------------------------------------------
_WORKER = textwrap.dedent(
    """
    import math, os, sys, time
    from pathlib import Path
    import optuna
    from carbs import CARBSParams, ChoiceSpace, LinearSpace, LogSpace, Param
    from carbs.integrations.optuna import CARBSSampler, suggest_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    PARAMS = [
        Param("lr", LogSpace(min=1e-5, max=1.0, scale=1.0), search_center=1e-2),
        Param("x", LinearSpace(min=0.0, max=1.0, scale=0.25), search_center=0.5),
        Param("act", ChoiceSpace(["relu", "gelu"]), search_center="relu"),
    ]

    def objective(trial):
        p = suggest_params(trial, PARAMS)
        time.sleep(0.05)  # keep trials of the two workers overlapping
        trial.set_user_attr("cost", 1.0 + p["x"])
        return (math.log10(p["lr"]) + 3) ** 2 + (p["x"] - 0.7) ** 2 + (0.3 if p["act"] == "relu" else 0.0)

    storage = optuna.storages.RDBStorage(sys.argv[1], engine_kwargs={"connect_args": {"timeout": 60}})
    # The same seed in both workers: trials still differ, as each is seeded by its number.
    sampler = CARBSSampler(PARAMS, seed=0, carbs_params=CARBSParams(resample_frequency=0))
    study = optuna.load_study(study_name="shared", storage=storage, sampler=sampler)
    # Start together, so that the two workers' trials really interleave.
    ready = Path(sys.argv[3])
    (ready / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    study.optimize(objective, n_trials=int(sys.argv[2]))
    """
)


def test_two_processes_share_one_sqlite_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=url, direction="minimize")
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    ready = tmp_path / "ready"
    ready.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), url, "8", str(ready)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for w in workers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    trials = sorted(optuna.load_study(study_name="shared", storage=url).trials, key=lambda t: t.number)
    assert len(trials) == 16 and all(t.state == TrialState.COMPLETE for t in trials)
    points = {(round(t.params["lr"], 12), round(t.params["x"], 12), t.params["act"]) for t in trials}
    assert len(points) == 16  # no two trials got the same point
    overlapping = [
        (a, b)
        for a in trials
        for b in trials
        if a.number < b.number and b.datetime_start < a.datetime_complete  # type: ignore[operator]
    ]
    assert overlapping  # the two workers really ran side by side
    values = _values(trials)
    assert min(values[8:]) < min(values[:4])  # better than the random phase


def _load_example(relative: str) -> ModuleType:
    """Import an example script as a module, to run its ``main`` small."""
    path = Path(__file__).resolve().parent.parent / "examples" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = _load_example("optuna/optuna_carbs.py")
    url = f"sqlite:///{tmp_path / 'example.db'}"
    study = example.main(storage=url, trials=6, seed=0)
    assert len(study.trials) == 6 and "Pareto set" in capsys.readouterr().out
    # A second run (another worker, or later) continues the same study.
    assert len(example.main(storage=url, trials=2, seed=1).trials) == 8


# -- pruners --------------------------------------------------------------------------------
def test_sampler_works_with_optunas_pruners_and_pruned_trials_are_partial() -> None:
    params = [Param("x", LinearSpace(min=0.0, max=4.0, scale=1.0), search_center=1.0)]
    sampler = CARBSSampler(params, carbs_params=CARBSParams(num_random_samples=4), seed=0)
    study = optuna.create_study(
        sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=3)
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 4.0)
        value = math.inf
        for step in range(1, 9):
            value = (x - 0.5) ** 2 + 1.0 / step
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("cost", 8.0)
        return value

    study.optimize(objective, n_trials=20)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and TrialState.COMPLETE in states and TrialState.FAIL not in states
    for t in pruned:
        assert t.intermediate_values and max(t.intermediate_values) < 8
    # Pruned trials are partial observations: their last value, kept from the cost model.
    opt = sampler.optimizer_for(study)
    assert not opt.failure_observations
    partial = [o for o in opt.success_observations if o.is_partial]
    assert sorted(o.output for o in partial) == sorted(
        t.intermediate_values[max(t.intermediate_values)] for t in pruned
    )
    assert len(opt.complete_observations) == states.count(TrialState.COMPLETE)
