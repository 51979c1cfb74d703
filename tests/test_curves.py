"""Learning curves and early stopping: the rule, storage, the Python API, the runner and the CLI."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _storage_urls import as_written_by_schema, trials_of, wait_for

import carbs
from carbs import LinearSpace, Param
from carbs.runner.worker import RunSpec, SweepRunner
from carbs.stopping import Curve, EarlyStopping, FinishedRun, StoppingReference, report_noise
from carbs.storage import (
    SCHEMA_VERSION,
    Storage,
    TrialState,
    TrialStateError,
    dispose_engines,
)
from carbs.study import Study, TrialPruned, create_study, current_trial, load_study
from carbs.sweep_config import SweepConfigError, load_sweep_config, parse_sweep_config

PARAMS = [Param("x", LinearSpace(min=0.0, max=4.0, scale=1.0), search_center=1.0)]


def _run(final: float, cost: float, n: int = 10, noise: float = 0.0, seed: int = 0) -> FinishedRun:
    """A run whose loss falls as ``final + 1/k`` over ``n`` reports spread evenly up to ``cost``."""
    rng = random.Random(seed)
    costs = tuple(cost * k / n for k in range(1, n + 1))
    values = tuple(final + 1.0 / k - 1.0 / n + rng.gauss(0, noise) for k in range(1, n + 1))
    return FinishedRun(values[-1], cost, Curve(costs, values))


def _partial(run: FinishedRun, k: int) -> Curve:
    return Curve(run.curve.costs[:k], run.curve.values[:k])


# -- the rule on plain data ------------------------------------------------------------
def test_a_clearly_worse_curve_is_stopped_and_a_close_one_is_not() -> None:
    rule = EarlyStopping(min_steps=3, min_completed=3)
    done = [_run(0.1 + 0.01 * i, 10.0, noise=0.01, seed=i) for i in range(4)]
    ref = StoppingReference(rule, -1, done)
    worse = _run(1.0, 10.0, noise=0.01, seed=9)
    decision = ref.decide(_partial(worse, 3))
    assert decision.stop, decision.reason
    assert "behind the front" in decision.reason
    close = _run(0.12, 10.0, noise=0.01, seed=10)
    assert not ref.decide(_partial(close, 3)).stop


def test_min_steps_and_min_completed_hold_back_stopping() -> None:
    done = [_run(0.1, 10.0, seed=i) for i in range(4)]
    worse = _run(2.0, 10.0)
    assert StoppingReference(EarlyStopping(min_steps=3, min_completed=4), -1, done).decide(
        _partial(worse, 3)
    ).stop
    decision = StoppingReference(EarlyStopping(min_steps=4, min_completed=4), -1, done).decide(
        _partial(worse, 3)
    )
    assert not decision.stop and "3 of 4 reports" in decision.reason
    decision = StoppingReference(EarlyStopping(min_steps=3, min_completed=5), -1, done).decide(
        _partial(worse, 3)
    )
    assert not decision.stop and "fewer than 5 completed" in decision.reason


def test_a_trial_on_the_front_at_its_cost_is_never_stopped() -> None:
    # No margin at all, and still: ahead of the front at its cost means it goes on.
    rule = EarlyStopping(min_steps=1, min_completed=1, noise_sigmas=0.0, margin_scale=0.0)
    done = [_run(0.5, 10.0, seed=i) for i in range(3)]
    ref = StoppingReference(rule, -1, done)
    better = _run(0.2, 10.0)
    for k in range(1, 11):
        decision = ref.decide(_partial(better, k))
        assert not decision.stop
        assert decision.reason == "on the front at its cost"
    # The same holds when maximising.
    up = [FinishedRun(-r.output, r.cost, Curve(r.curve.costs, tuple(-v for v in r.curve.values)))
          for r in done]
    mirrored = Curve(better.curve.costs[:5], tuple(-v for v in better.curve.values[:5]))
    assert not StoppingReference(rule, 1, up).decide(mirrored).stop


def _crossing(final: float, cost: float, n: int = 10) -> FinishedRun:
    """A slow starter (e.g. a low learning rate): far behind early, best at the end."""
    costs = tuple(cost * k / n for k in range(1, n + 1))
    values = tuple(final + 3.0 * (1 - k / n) ** 2 for k in range(1, n + 1))
    return FinishedRun(values[-1], cost, Curve(costs, values))


def test_catch_up_is_learned_from_curves_that_crossed() -> None:
    rule = EarlyStopping(min_steps=3, min_completed=3)
    fast = [_run(0.5 + 0.01 * i, 10.0, seed=i) for i in range(3)]
    late = [_crossing(0.1, 10.0), _crossing(0.11, 10.0)]
    # Without a run that crossed, a slow starter looks hopeless at step 4 ...
    assert StoppingReference(rule, -1, fast).decide(_partial(_crossing(0.05, 10.0), 4)).stop
    # ... after two crossed, their deficit along the way is allowed, so the next one goes on.
    ref = StoppingReference(rule, -1, [*fast, *late])
    assert (ref.catch_up(4.0) or 0.0) > 0.5
    assert not ref.decide(_partial(_crossing(0.05, 10.0), 4)).stop
    # A curve far worse than any catch-up seen is still stopped.
    assert ref.decide(Curve((2.0, 3.0, 4.0), (9.0, 9.0, 9.0))).stop


def test_nothing_is_stopped_at_a_cost_no_front_ending_run_reached() -> None:
    rule = EarlyStopping(min_steps=3, min_completed=3)
    cheap = [_run(0.3 + 0.01 * i, 5.0, seed=i) for i in range(4)]
    ref = StoppingReference(rule, -1, cheap)
    # Far behind the cheap runs' front, but at costs 12-16, where no completed run has been.
    decision = ref.decide(Curve((12.0, 14.0, 16.0), (2.0, 1.9, 1.8)))
    assert not decision.stop
    assert "fewer than 2 trials that ended on the front were observed near cost 16" in decision.reason
    # At costs the cheap runs covered, the same values are stopped.
    assert ref.decide(Curve((2.0, 3.0, 4.0), (2.0, 1.9, 1.8))).stop


def test_noise_estimate_follows_the_reported_noise() -> None:
    rng = random.Random(0)
    curves = []
    for _ in range(20):
        values = tuple(1.0 / (k + 5) + rng.gauss(0, 0.05) for k in range(30))
        curves.append(Curve(tuple(float(k) for k in range(30)), values))
    assert report_noise(curves) == pytest.approx(0.05, rel=0.3)
    smooth = [Curve((1.0, 2.0, 3.0, 4.0), (4.0, 3.0, 2.0, 1.0))]
    assert report_noise(smooth) == 0.0


def test_settings_are_checked_with_the_key_named() -> None:
    with pytest.raises(ValueError, match="early_stopping.min_steps must be an integer >= 1, got 0"):
        EarlyStopping(min_steps=0)
    with pytest.raises(ValueError, match="unknown key 'early_stopping.patience'"):
        EarlyStopping.from_dict({"patience": 3})
    with pytest.raises(ValueError, match="early_stopping.noise_sigmas must be a number >= 0"):
        EarlyStopping.from_dict({"noise_sigmas": "a lot"})


# -- storage ----------------------------------------------------------------------------

def test_intermediate_values_are_stored_in_step_order(url: str) -> None:
    study = create_study("s", url, PARAMS)
    trial = study.ask()
    trial.report(0.9, 0, cost=1.0)
    study.report(trial.number, 0.5, 2, cost=3.0)
    with pytest.raises(ValueError, match="step 1 does not come after step 2; steps must increase"):
        trial.report(0.4, 1, cost=4.0)
    with pytest.raises(ValueError, match="intermediate value at step 3 must be a finite number, got 'low'"):
        trial.report("low", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must be an integer >= 0, got -1"):
        trial.report(0.3, -1)
    study.tell(trial, 0.45, 5.0)
    with pytest.raises(TrialStateError, match="only a RUNNING trial can report"):
        trial.report(0.1, 7, cost=6.0)
    curve = study.intermediate_values()[trial.number]
    assert [(p.step, p.value, p.cost) for p in curve] == [(0, 0.9, 1.0), (2, 0.5, 3.0)]
    assert curve[0].reported_at.tzinfo is not None
    # Deleting the study deletes its curves too.
    carbs.study.delete_study("s", url)
    again = create_study("s", url, PARAMS)
    assert again.intermediate_values() == {}


def test_a_version_1_database_is_upgraded_and_keeps_its_trials(tmp_path: Path) -> None:
    from sqlalchemy import inspect, text

    from carbs.storage.models import ADDED_COLUMNS, IntermediateRow

    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = create_study("old", url, PARAMS)
    first = study.ask()
    study.tell(first, 0.25, 3.0)
    as_written_by_schema(url, 1)  # no curves table, none of the later columns
    later = {(table, column) for step in ADDED_COLUMNS.values() for table, column, _ in step}
    with Storage(url).engine.connect() as conn:
        found = {(t, c["name"]) for t, _ in later for c in inspect(conn).get_columns(t)}
        assert conn.scalar(text("SELECT version FROM carbs_schema_version")) == SCHEMA_VERSION
        assert IntermediateRow.__tablename__ in inspect(conn).get_table_names()
    assert later <= found
    again = load_study("old", url)
    [old] = again.trials()
    assert (old.state, old.output, old.cost, old.params) == (TrialState.COMPLETE, 0.25, 3.0, first.params)
    assert again.intermediate_values() == {}
    trial = again.ask()
    trial.report(0.5, 1, cost=1.0)
    assert [p.value for p in again.intermediate_values()[trial.number]] == [0.5]


# -- the Python API ---------------------------------------------------------------------
def _objective_with_curves(steps: int = 10) -> Any:
    def objective(p: dict[str, Any]) -> tuple[float, float]:
        trial = current_trial()
        assert trial is not None
        value = math.inf
        for step in range(1, steps + 1):
            value = (p["x"] - 0.5) ** 2 + 1.0 / step
            trial.report(value, step, cost=float(step))
            if trial.should_prune():
                raise TrialPruned()
        return value, float(steps)

    return objective


def test_optimize_prunes_bad_trials_and_keeps_their_last_value_and_cost(tmp_path: Path) -> None:
    study = create_study(
        "opt", f"sqlite:///{tmp_path}/o.db", PARAMS,
        settings={"seed": 1, "num_random_samples": 8}, early_stopping={"min_completed": 3},
    )
    study.optimize(_objective_with_curves(), n_trials=25)
    trials = study.trials()
    curves = study.intermediate_values()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.params, t.output) for t in trials]
    for t in pruned:
        last = curves[t.number][-1]
        assert t.output == last.value and t.cost == last.cost < 10.0
        assert t.fail_kind is None and "behind the front" in (t.fail_reason or "")
        assert len(curves[t.number]) >= 3  # min_steps
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(len(curves[t.number]) == 10 for t in complete)
    # The best trial is a completed one, and no pruned trial would have beaten it.
    best = study.best_trial
    assert all((t.params["x"] - 0.5) ** 2 + 0.1 > best.output for t in pruned)
    # Pruned trials reach the optimizer as partial observations: their last value at their
    # point, kept from the cost model and the Pareto set; never as failures or finished runs.
    opt = study.build_optimizer()
    partial = [o for o in opt.success_observations if o.is_partial]
    assert len(partial) == len(pruned) and not opt.failure_observations
    assert sorted(o.output for o in partial) == sorted(float(t.output or 0.0) for t in pruned)
    assert len(opt.complete_observations) == len(complete)
    assert {round(p.cost, 6) for p in study.pareto_front()} <= {10.0}
    assert {round(p.cost, 6) for p in opt.get_pareto_set()} <= {10.0}


def test_optimize_early_stopping_false_turns_a_stored_rule_off(tmp_path: Path) -> None:
    study = create_study(
        "off", f"sqlite:///{tmp_path}/o.db", PARAMS, early_stopping={"min_completed": 1}
    )
    study.optimize(_objective_with_curves(5), n_trials=8, early_stopping=False)
    assert all(t.state == TrialState.COMPLETE for t in study.trials())
    assert study.early_stopping == EarlyStopping(min_completed=1)


def test_carbs_report_with_a_step_inside_optimize_is_stored(tmp_path: Path) -> None:
    study = create_study("rep", f"sqlite:///{tmp_path}/o.db", PARAMS, metric="loss")

    def objective(p: dict[str, Any]) -> float:
        for step in range(3):
            carbs.report(step=step, loss=p["x"] + step, cost=step + 1.0)
        return p["x"]

    study.optimize(objective, n_trials=2)
    curves = study.intermediate_values()
    for t in study.trials():
        assert [(p.step, p.value, p.cost) for p in curves[t.number]] == [
            (s, pytest.approx(t.params["x"] + s), s + 1.0) for s in range(3)
        ]


def test_ask_tell_users_report_and_tell_pruned(tmp_path: Path) -> None:
    study = create_study("at", f"sqlite:///{tmp_path}/o.db", PARAMS, early_stopping=True)
    trial = study.ask()
    for step in range(3):
        trial.report(2.0 - 0.1 * step, step, cost=step + 1.0)
    assert not trial.should_prune()  # no completed trial to learn from yet
    record = study.tell(trial, pruned=True, reason="my own rule")
    assert record.state == TrialState.PRUNED
    assert (record.output, record.cost, record.fail_reason) == (pytest.approx(1.8), 3.0, "my own rule")
    counts = study.state_counts()
    assert counts[TrialState.PRUNED] == 1 and counts[TrialState.COMPLETE] == 0


def test_sweep_file_early_stopping_is_checked() -> None:
    base: dict[str, Any] = {
        "name": "s", "command": "python t.py {x}",
        "parameters": {"x": {"space": "linear", "min": 0, "max": 1}},
    }
    config = parse_sweep_config({**base, "early_stopping": {}})
    assert config.early_stopping == EarlyStopping()
    assert config.run_config()["early_stopping"] == EarlyStopping().to_dict()
    assert parse_sweep_config(base).early_stopping is None
    with pytest.raises(SweepConfigError, match="unknown key 'early_stopping.min_step'.*did you mean 'min_steps'"):
        parse_sweep_config({**base, "early_stopping": {"min_step": 2}})
    with pytest.raises(SweepConfigError, match="early_stopping.min_completed must be an integer >= 1, got 'x'"):
        parse_sweep_config({**base, "early_stopping": {"min_completed": "x"}})


# -- the runner ---------------------------------------------------------------------------
# A trial program that reports one point per step. ``bad_trial`` names the trial
# that learns badly (and ignores SIGTERM, to check the escalation to SIGKILL);
# ``steps``/``pause`` set the length; ``pids`` collects the program pids.
CURVE_SCRIPT = r'''
import json, os, signal, sys, time
number = os.environ["CARBS_TRIAL_NUMBER"]
with open("pids", "a") as f:
    f.write(f"{number} {os.getpid()}\n")
bad = os.path.exists("bad_trial") and open("bad_trial").read().strip() == number
if bad:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
steps = int(open("steps").read()) if os.path.exists("steps") else 8
pause = float(open("pause").read()) if os.path.exists("pause") else 0.02
mode = sys.argv[1] if len(sys.argv) > 1 else "json"
for step in range(1, steps + 1):
    loss = (5.0 if bad else 0.1) + 1.0 / step
    if mode == "report":
        import carbs
        carbs.report(step=step, loss=loss)
    else:
        print(json.dumps({"step": step, "loss": loss}), flush=True)
    time.sleep(pause)
if mode == "badlines":
    print(json.dumps({"step": "three", "loss": 0.5}))
    print(json.dumps({"step": steps + 1, "loss": "low"}))
    print(json.dumps({"step": 2, "loss": 0.4}))
    print(json.dumps({"loss": 0.3, "done": True}))
'''


def _curve_sweep(directory: Path, mode: str = "json", trials: int = 1, extra: str = "") -> str:
    (directory / "trial.py").write_text(CURVE_SCRIPT)
    path = directory / "sweep.yaml"
    path.write_text(
        "name: toy\n"
        f"command: '{{python}} trial.py {mode}'\n"
        "metric: loss\n"
        "parameters:\n"
        "  x: {space: linear, min: 0, max: 4, center: 1}\n"
        f"budget: {{trials: {trials}}}\n"
        "heartbeat: {interval: 0.2, grace: 1.5}\n" + extra
    )
    return str(path)


def _runner(directory: Path, url: str, **spec: Any) -> tuple[Study, SweepRunner]:
    config = load_sweep_config(_curve_sweep(directory, **spec))
    study = create_study(
        config.name, url, config.params, metric=config.metric,
        settings=config.carbs_params(), config=config.run_config(), load_if_exists=True,
    )
    return study, SweepRunner(study, RunSpec.from_sweep(config))


def _seed_completed(study: Study, n: int, steps: int = 8, wide: bool = False) -> None:
    """Completed trials with good curves, as if earlier runs had finished.

    Step ``k`` costs ``0.05 k``, or with ``wide`` ``0.25 * 2**(k-1)`` (0.25 s to
    32 s), so that a program's wall-clock reports, slow start-up included, fall
    at costs these runs covered.
    """
    for _ in range(n):
        trial = study.ask()
        cost = 0.0
        for step in range(1, steps + 1):
            cost = 0.25 * 2 ** (step - 1) if wide else 0.05 * step
            trial.report(0.1 + 1.0 / step, step, cost=cost)
        study.tell(trial, 0.1 + 1.0 / steps, cost)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_runner_stops_a_clearly_worse_program_and_its_process_is_gone(tmp_path: Path) -> None:
    extra = "early_stopping: {min_completed: 3, min_steps: 3, check_interval: 0.05, kill_grace: 0.5}\n"
    (tmp_path / "steps").write_text("200")
    (tmp_path / "pause").write_text("0.05")
    study, runner = _runner(tmp_path, f"sqlite:///{tmp_path}/r.db", trials=4, extra=extra)
    _seed_completed(study, 3, wide=True)
    (tmp_path / "bad_trial").write_text("3")
    summary = runner.run()
    trial = study.trial(3)
    assert summary.pruned == 1 and trial.state == TrialState.PRUNED
    curve = study.intermediate_values([3])[3]
    assert 3 <= len(curve) < 200  # stopped long before its 200 steps
    assert trial.output == curve[-1].value and trial.output > 5.0
    assert trial.cost == curve[-1].cost and trial.cost < 8.0
    assert "behind the front" in (trial.fail_reason or "")
    pid = int((tmp_path / "pids").read_text().split()[-1])
    assert not _pid_alive(pid)  # it ignored SIGTERM: SIGKILL after the grace period


def test_runner_reads_carbs_report_steps_while_the_program_runs(tmp_path: Path) -> None:
    (tmp_path / "steps").write_text("6")
    (tmp_path / "pause").write_text("0.4")
    url = f"sqlite:///{tmp_path}/r.db"
    study, runner = _runner(tmp_path, url, mode="report")
    import threading

    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        # Points arrive while the trial is still RUNNING: the runner does not wait for the end.
        wait_for(
            lambda: len(study.intermediate_values().get(0, [])) >= 2
            and study.trial(0).state == TrialState.RUNNING,
            timeout=20, what="two points of a running trial",
        )
    finally:
        thread.join(timeout=30)
    trial = study.trial(0)
    curve = study.intermediate_values()[0]
    assert trial.state == TrialState.COMPLETE
    assert [p.step for p in curve] == [1, 2, 3, 4, 5, 6]
    assert trial.output == pytest.approx(0.1 + 1 / 6)  # the last report is the result
    costs = [p.cost for p in curve]
    assert costs == sorted(costs) and costs[-1] <= (trial.cost or 0) + 1e-6


def test_bad_intermediate_lines_are_named_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study, runner = _runner(tmp_path, f"sqlite:///{tmp_path}/r.db", mode="badlines")
    with caplog.at_level("WARNING", logger="carbs.runner.curves"):
        runner.run()
    trial = study.trial(0)
    assert trial.state == TrialState.COMPLETE and trial.output == 0.3  # the final line wins
    assert trial.user_attrs["done"] is True
    assert [p.step for p in study.intermediate_values()[0]] == list(range(1, 9))
    problems = trial.user_attrs["report_problems"]
    assert len(problems) == 3
    assert problems[0].startswith("'step' must be an integer >= 0, got 'three'")
    assert problems[1].startswith("metric 'loss' at step 9 must be a finite number, got 'low'")
    assert problems[2].startswith("step 2 does not come after step 8; steps must increase")
    assert '{"step": 2, "loss": 0.4}' in problems[2]  # the line itself is kept
    logged = [r.getMessage() for r in caplog.records]
    assert any("trial 0" in m and "got 'three'" in m for m in logged)


# -- crash safety and the CLI --------------------------------------------------------------
def test_curves_survive_kill_9_of_the_runner_and_a_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    sweep = _curve_sweep(tmp_path, trials=2)
    (tmp_path / "steps").write_text("400")
    (tmp_path / "pause").write_text("0.05")
    runner = subprocess.Popen(
        [sys.executable, "-m", "carbs.cli", "--quiet", "run", sweep, "--storage", url,
         "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def points() -> int:
            dispose_engines()
            trials = trials_of(url)
            if not trials:
                return 0
            return len(load_study("toy", url).intermediate_values().get(0, []))

        wait_for(lambda: points() >= 5, timeout=60, what="five stored points of trial 0")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        runner.kill()
        runner.communicate()
    before = load_study("toy", url).intermediate_values()[0]
    time.sleep(1.8)  # the heartbeat grace: trial 0 is reaped as stale on resume
    (tmp_path / "steps").write_text("3")
    dispose_engines()
    resumed = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "run", sweep, "--storage", url, "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    study = load_study("toy", url)
    curves = study.intermediate_values()
    assert curves[0][: len(before)] == before
    assert study.trial(0).state == TrialState.FAILED
    assert [p.step for p in curves[1]] == [1, 2, 3]
    out = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "trials", "--storage", url, "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    rows = json.loads(out)
    assert [p["step"] for p in rows[1]["curve"]] == [1, 2, 3]
    assert rows[0]["curve"][: len(before)] == [p.to_dict() for p in before]


def test_cli_counts_stopped_trials_and_export_has_curves(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    study = create_study("toy", url, PARAMS, metric="loss")
    _seed_completed(study, 2)
    trial = study.ask()
    for step in range(1, 3):
        trial.report(9.0, step, cost=0.05 * step)
    study.tell(trial, pruned=True, reason="behind the front")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "carbs.cli", *args, "--storage", url],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**os.environ, "COLUMNS": "250"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    status = cli("status")
    assert "2 complete, 0 running, 0 failed, 1 stopped early" in status
    # It ran 2 of the 8 steps the completed trials ran, for 0.1: 0.3 more was saved.
    assert "stopped early: 1 trials spent 0.1, saved ~0.3 (estimate)" in status
    assert "1 stopped early (spent 0.1, saved ~0.3)" in cli("best")
    best = json.loads(cli("best", "--format", "json"))
    assert best["counts"]["PRUNED"] == 1
    assert best["stopped_early"]["cost_saved_estimate"] == pytest.approx(0.3)
    assert "stopped: behind the front" in cli("trials")
    study.export(tmp_path / "out.json")
    exported = json.loads((tmp_path / "out.json").read_text())
    assert [len(t["curve"]) for t in exported["trials"]] == [8, 8, 2]
    assert exported["trials"][2]["state"] == "PRUNED"

