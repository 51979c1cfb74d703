"""The Study API on real SQLite files and (with CARBS_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from typing import Any

import pytest

import carbs
from carbs import LinearSpace, LogSpace, Param
from carbs.storage import FailKind, StudyExistsError, StudyNotFoundError, TrialState
from carbs.study import (
    BudgetExhausted,
    StudyDefinitionError,
    create_study,
    load_study,
    trial_observation,
)
from carbs.sweep_config import Budget

PARAMS = [
    Param("x", LinearSpace(min=-1, max=1, scale=0.5), search_center=0.0),
    Param("c", LogSpace(min=0.01, max=1.0), search_center=0.1),
]


def objective(p: dict[str, Any]) -> tuple[float, float]:
    """A bowl whose output improves with cost."""
    return (p["x"] - 0.3) ** 2 + 0.01 / p["c"], p["c"] * 10



def test_lazy_exports() -> None:
    assert carbs.create_study is create_study and carbs.load_study is load_study
    assert carbs.Study.__name__ == "Study" and callable(carbs.report)


def test_trial_observation_is_what_the_models_learn_from_a_stored_trial(tmp_path: Any) -> None:
    study = create_study("s", f"sqlite:///{tmp_path / 'o.db'}", params=PARAMS)
    trials = [study.ask() for _ in range(5)]
    study.tell(trials[0], 0.5, 2.0)
    study.report(trials[1], 0.9, step=1, cost=0.25)
    study.tell(trials[1], pruned=True)
    study.tell(trials[2], failed=True, cost=1.5)
    study.tell(trials[3], failed=True, fail_kind=FailKind.INTERRUPTED)
    done, stopped, failed, interrupted, running = (trial_observation(study.trial(t.number)) for t in trials)
    assert done is not None and (done.output, done.cost, done.is_partial) == (0.5, 2.0, False)
    assert done.input == trials[0].params
    assert stopped is not None and (stopped.output, stopped.cost, stopped.is_partial) == (0.9, 0.25, True)
    assert failed is not None and failed.is_failure and failed.cost == 1.5
    assert interrupted is None and running is None


def test_ask_tell_and_results(url: str) -> None:
    study = carbs.create_study("s", url, params=PARAMS, direction="minimize", metric="loss")
    assert study.better_direction_sign == -1 and [p.name for p in study.params] == ["x", "c"]
    t0, t1 = study.ask(), study.ask()
    assert (t0.number, t1.number) == (0, 1) and t0.params != t1.params
    assert study.trial(0).state == TrialState.RUNNING
    study.tell(t0, *objective(t0.params))
    study.tell(t1, float("nan"), 1.0)
    bad = study.trial(1)
    assert bad.state == TrialState.FAILED and bad.fail_kind == FailKind.BAD_OUTPUT
    assert "not finite" in (bad.fail_reason or "")
    with pytest.raises(carbs.study.TrialStateError, match="already COMPLETE"):
        study.tell(t0, 1.0, 1.0)
    t2 = study.ask()
    with pytest.raises(ValueError, match="cost must be > 0"):
        study.tell(t2, 1.0, 0.0)
    study.tell(t2, None, failed=True, reason="out of memory")
    assert study.trial(2).fail_reason == "out of memory" and study.trial(2).cost is not None
    assert [o.is_failure for o in study.observations()] == [False, True, True]

    again = carbs.load_study("s", url)
    assert again.best_trial.number == 0
    front = again.pareto_front()
    assert len(front) == 1 and front[0].input == pytest.approx(t0.params)


def test_optimize_limits_and_resume(url: str) -> None:
    study = create_study("opt", url, params=PARAMS, settings={"seed": 1})
    seen: list[int] = []
    study.optimize(objective, n_trials=6, callbacks=[lambda s, t: seen.append(t.number)])
    assert seen == list(range(6))
    study.optimize(objective, max_cost=0.5)  # every trial costs at least 0.1
    assert 7 <= len(study.trials()) <= 11
    study.optimize(objective, n_trials=4, n_workers=2)
    trials = study.trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert [t.number for t in trials] == list(range(len(trials)))
    # A restarted process rebuilds the optimizer from the stored trials only.
    resumed = load_study("opt", url)
    assert len(resumed.build_optimizer().success_observations) == len(trials)
    best = resumed.best_trial
    assert best.output == min(t.output for t in trials if t.output is not None)
    start = time.monotonic()
    resumed.optimize(lambda p: (time.sleep(0.05), 1.0)[1], timeout=0.3)
    assert time.monotonic() - start < 3


def test_objective_errors_fail_the_trial(url: str) -> None:
    study = create_study("err", url, params=PARAMS)

    def broken(p: dict[str, Any]) -> float:
        raise RuntimeError("diverged")

    study.optimize(broken, n_trials=2)
    failed = study.trials([TrialState.FAILED])
    assert len(failed) == 2 and failed[0].fail_kind == FailKind.ERROR
    assert "RuntimeError: diverged" in (failed[0].fail_reason or "")
    assert "diverged" in (failed[0].stderr_tail or "")
    with pytest.raises(ValueError, match="no COMPLETE trial"):
        _ = study.best_trial

    def fatal(p: dict[str, Any]) -> float:
        raise SystemExit(9)

    with pytest.raises(SystemExit):
        study.optimize(fatal, n_trials=1, catch=())
    assert study.trial(2).state == TrialState.FAILED
    with pytest.raises(ValueError, match="n_trials"):
        study.optimize(objective, n_trials=-1)


def test_definition_checks(url: str) -> None:
    create_study("d", url, params=PARAMS, metric="loss")
    with pytest.raises(StudyExistsError, match="load_if_exists"):
        create_study("d", url, params=PARAMS, metric="loss")
    same = create_study("d", url, params=PARAMS, metric="loss", load_if_exists=True)
    assert same.metric == "loss"
    other = [Param("x", LinearSpace(min=-2, max=2, scale=0.5), search_center=0.0), PARAMS[1]]
    with pytest.raises(StudyDefinitionError, match=r"search space of \['x'\].*allow_space_change"):
        create_study("d", url, params=other, metric="loss", load_if_exists=True)
    with pytest.raises(StudyDefinitionError, match="direction minimize -> maximize"):
        create_study("d", url, params=PARAMS, direction="max", metric="loss", load_if_exists=True)
    changed = create_study(
        "d", url, params=other, metric="loss", load_if_exists=True, allow_space_change=True
    )
    assert changed.params[0].space.max == 2
    with pytest.raises(StudyNotFoundError, match="no study named 'nope'.*'d'"):
        load_study("nope", url)
    with pytest.raises(ValueError, match="direction must be"):
        create_study("e", url, params=PARAMS, direction="down")
    with pytest.raises(ValueError, match="duplicate"):
        create_study("e", url, params=[PARAMS[0], PARAMS[0]])


def test_budget_and_export(url: str, tmp_path: Any) -> None:
    study = create_study("b", url, params=PARAMS)
    budget = Budget(max_trials=3)
    trials = [study.ask(budget=budget) for _ in range(3)]
    with pytest.raises(BudgetExhausted, match="trial budget reached"):
        study.ask(budget=budget)
    study.tell(trials[0], 0.5, 2.0, user_attrs={"acc": 0.9})
    study.tell(trials[1], None, 1.0, fail_kind=FailKind.INTERRUPTED, reason="interrupted")
    # An interrupted trial does not use up the budget.
    study.ask(budget=budget)
    csv_path, json_path = tmp_path / "t.csv", tmp_path / "t.json"
    study.export(csv_path)
    study.export(json_path)
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("number,state,output,cost") and "params_x" in lines[0]
    assert "user_attrs_acc" in lines[0] and len(lines) == 5
    data = json.loads(json_path.read_text())
    assert data["study"] == "b" and data["trials"][0]["user_attrs"] == {"acc": 0.9}
    frame = study.trials_dataframe()
    assert list(frame["state"]) == ["COMPLETE", "FAILED", "RUNNING", "RUNNING"]
    with pytest.raises(ValueError, match="'csv' or 'json'"):
        study.export(tmp_path / "t.xlsx")


def _ask_then_tell(url: str, n: int, barrier: Any, out: Any) -> None:
    """One worker process: ask ``n`` trials, wait for the others, then tell them all."""
    study = load_study("conc", url)
    trials = [study.ask() for _ in range(n)]
    barrier.wait(timeout=120)
    for t in trials:
        study.tell(t, *objective(t.params))
    out.put([(t.number, json.dumps(t.params, sort_keys=True)) for t in trials])


@pytest.mark.parametrize("processes,per_process", [(3, 6)])
def test_concurrent_ask_from_processes(url: str, processes: int, per_process: int) -> None:
    """Points asked by several processes while all are RUNNING are all different."""
    study = create_study("conc", url, params=PARAMS)
    study.optimize(objective, n_trials=3)  # so that the model, not only the center, is used
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_ask_then_tell, args=(url, per_process, barrier, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    handed = [item for _ in procs for item in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    numbers = sorted(n for n, _ in handed)
    points = [p for _, p in handed]
    assert numbers == list(range(3, 3 + processes * per_process))
    assert len(set(points)) == len(points), "a point was handed out twice while RUNNING"
    trials = study.trials()
    assert len(trials) == 3 + processes * per_process
    assert all(t.state == TrialState.COMPLETE and math.isfinite(t.output or math.nan) for t in trials)
    assert os.getpid() not in {int(t.worker.split(":")[1]) for t in trials[3:] if t.worker}
