"""The sweep runner on real trial programs, and the sweep file parser."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
from _storage_urls import write_sweep

import carbs
from carbs.runner.command import render_command
from carbs.runner.results import read_results_file
from carbs.runner.worker import RunSpec, SweepRunner
from carbs.storage import FailKind, TrialState
from carbs.study import Study, create_study
from carbs.sweep_config import SweepConfigError, load_sweep_config, parse_sweep_config


def _run(tmp_path: Any, mode: str, trials: int = 1, **spec: Any) -> tuple[Study, Any]:
    config = load_sweep_config(write_sweep(tmp_path, mode=mode, trials=trials, extra=""))
    study = create_study(
        config.name,
        f"sqlite:///{tmp_path}/runs.db",
        config.params,
        metric=config.metric,
        settings=config.carbs_params(),
        config=config.run_config(),
    )
    run_spec = RunSpec.from_sweep(config)
    for key, value in spec.items():
        setattr(run_spec, key, value)
    summary = SweepRunner(study, run_spec).run()
    return study, summary


@pytest.mark.parametrize("mode", ["json", "file", "report"])
def test_results_reach_the_study(tmp_path: Any, mode: str) -> None:
    study, summary = _run(tmp_path, mode, trials=2 if mode == "json" else 1)
    trials = study.trials()
    assert summary.completed == len(trials) and summary.failed == 0
    assert summary.stop_reason.startswith("trial budget reached")
    for t in trials:
        assert t.state == TrialState.COMPLETE
        assert t.output == pytest.approx((t.params["x"] - 0.3) ** 2)
        assert t.cost is not None and 0 < t.cost < 30  # wall-clock seconds
    if mode == "json":
        assert trials[0].user_attrs == {"acc": pytest.approx(1 - (trials[0].output or 0))}
    if mode == "report":
        assert trials[0].user_attrs == {"extra": 1}


def test_reported_cost_key(tmp_path: Any) -> None:
    study, _ = _run(tmp_path, "cost", cost="flops")
    t = study.trial(0)
    assert t.cost == pytest.approx(10.0 + t.params["x"])


@pytest.mark.parametrize(
    "mode,kind,reason",
    [
        ("fail", FailKind.ERROR, "exited with code 3"),
        ("nan", FailKind.BAD_OUTPUT, "'loss' is not finite"),
        ("missing", FailKind.BAD_OUTPUT, "'loss' was not reported; reported keys: ['other']"),
        ("string", FailKind.BAD_OUTPUT, "'loss' must be a number, got 'low'"),
        ("badjson", FailKind.BAD_OUTPUT, "not valid JSON"),
    ],
)
def test_failure_modes(tmp_path: Any, mode: str, kind: FailKind, reason: str) -> None:
    study, summary = _run(tmp_path, mode)
    t = study.trial(0)
    assert summary.failed == 1 and t.state == TrialState.FAILED
    assert t.fail_kind == kind and reason in (t.fail_reason or "")
    if mode == "fail":
        assert t.stderr_tail == "Traceback: something broke\nValueError: bad batch"


def test_timeout_kills_the_trial(tmp_path: Any) -> None:
    study, _ = _run(tmp_path, "hang", trial_timeout=1.0, kill_grace=1.0)
    t = study.trial(0)
    assert t.fail_kind == FailKind.TIMEOUT and t.fail_reason == "timed out after 1 s"
    assert t.cost is not None and 0.9 < t.cost < 10
    pid = int((tmp_path / "pids").read_text().split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_program_fails_the_trial(tmp_path: Any) -> None:
    study, _ = _run(tmp_path, "json", command=["no-such-program-xyz", "{x}"])
    t = study.trial(0)
    assert t.fail_kind == FailKind.ERROR and "cannot start 'no-such-program-xyz'" in (t.fail_reason or "")


def test_trial_environment_and_command(tmp_path: Any) -> None:
    # Literal braces in a command are doubled, as in str.format.
    script = (
        "import json, os; print(json.dumps({{'loss': 1.0, 'env': os.environ['CARBS_PARAMS'], "
        "'id': os.environ['CARBS_TRIAL_ID']}}))"
    )
    study, _ = _run(tmp_path, "json", command=["{python}", "-c", script])
    t = study.trial(0)
    assert json.loads(t.user_attrs["env"]) == pytest.approx(t.params) and t.user_attrs["id"] == "0"
    argv = render_command(
        ["{python}", "--lr={lr}", "{lr:.2g}", "--n", "{n}", "{study}/{trial_id}"],
        {"lr": 0.000123456789, "n": 3},
        trial_number=7,
        study="s",
        results_file="r.json",
    )
    assert argv == [sys.executable, "--lr=0.000123456789", "0.00012", "--n", "3", "s/7"]


def test_report_without_runner_prints_a_json_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("CARBS_RESULTS_FILE", raising=False)
    carbs.report(loss=0.5, step=3)
    assert json.loads(capsys.readouterr().out) == {"loss": 0.5, "step": 3}
    path = tmp_path / "r.json"
    monkeypatch.setenv("CARBS_RESULTS_FILE", str(path))
    carbs.report(loss=0.4)
    carbs.report({"loss": 0.3})
    assert read_results_file(str(path)) == ({"loss": 0.3}, None)
    with pytest.raises(ValueError, match="at least one value"):
        carbs.report()
    with pytest.raises(TypeError, match="not JSON-compatible"):
        carbs.report(loss=object())


BASE = {"name": "s", "command": "python t.py --x {x}", "parameters": {"x": {"space": "linear", "min": 0, "max": 1}}}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"epochs": 3}, "unknown key 'epochs'"),
        ({"budgte": {"trials": 3}}, "unknown key 'budgte' (did you mean 'budget'?)"),
        ({"command": None}, "command is missing"),
        ({"command": "python t.py {y}"}, "command placeholder {y} is not a parameter"),
        ({"parameters": {"x": {"space": "linear", "min": 2, "max": 1}}}, "min (2) must be below max (1)"),
        ({"parameters": {"x": {"space": "log", "min": 0, "max": 1}}}, "parameters.x.min must be > 0"),
        ({"parameters": {"x": {"space": "cubic"}}}, "parameters.x.space must be one of"),
        ({"parameters": {"x": {"space": "linear", "min": "a", "max": 1}}}, "parameters.x.min must be a number, got 'a'"),
        ({"budget": {"trials": "ten"}}, "budget.trials must be a whole number, got 'ten'"),
        ({"budget": {"time": "soon"}}, "budget.time must be seconds or a duration"),
        ({"direction": "down"}, "direction must be 'minimize' or 'maximize', got 'down'"),
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"settings": {"seed": 3}}, "settings.seed is set with the top-level key 'seed'"),
        ({"heartbeat": {"interval": 5, "grace": 2}}, "heartbeat.grace (2 s) must be longer"),
    ],
)
def test_sweep_file_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    data = {**BASE, **change}
    with pytest.raises(SweepConfigError) as info:
        parse_sweep_config(data, source="sweep.yaml")
    assert message in str(info.value) and str(info.value).startswith("sweep.yaml: ")


def test_sweep_file_parsing(tmp_path: Any) -> None:
    config = parse_sweep_config(
        {
            **BASE,
            "parameters": {
                "x": {"space": "linear", "min": 0, "max": 1},
                "lr": {"space": "log", "min": "1e-5", "max": 1, "center": 1e-3},
                "unused": {"space": "choice", "choices": ["a", "b"]},
            },
            "command": "python t.py --x {x} --lr {lr}",
            "budget": {"trials": 5, "time": "2m"},
            "trial_timeout": "90s",
        }
    )
    assert [p.name for p in config.params] == ["x", "lr", "unused"]
    assert config.params[1].search_center == 1e-3 and config.budget.max_time == 120
    assert config.trial_timeout == 90 and config.command[-1] == "{lr}"
    assert any("'unused' is not used" in w for w in config.warnings)
    toml = tmp_path / "s.toml"
    toml.write_text('command = "python t.py {x}"\n[parameters.x]\nspace = "linear"\nmin = 0\nmax = 1\n')
    assert load_sweep_config(toml).name == "s"
    with pytest.raises(SweepConfigError, match="must end in .yaml"):
        load_sweep_config(tmp_path / "s.txt")


def test_many_json_lines_keep_the_last_values_in_bounded_memory(tmp_path: Any) -> None:
    from carbs.runner.process import _MAX_REPORTED_KEYS, run_process

    script = (
        "import json\n"
        "print(json.dumps({'val_loss': 9.0}))\n"
        "for i in range(5000):\n"
        "    print(json.dumps({f'step_{i}': i, 'epoch': i}))\n"
        "print(json.dumps({'val_loss': 0.25}))\n"
    )
    result = run_process([sys.executable, "-c", script], env=dict(os.environ), cwd=str(tmp_path))
    assert result.returncode == 0
    assert len(result.reported) <= _MAX_REPORTED_KEYS
    assert result.reported["val_loss"] == 0.25
    assert result.reported["epoch"] == 4999
    assert "step_0" not in result.reported and result.reported["step_4999"] == 4999


def test_judge_program_keeps_the_stdout_tail_only_of_a_failure_with_a_silent_stderr(tmp_path: Any) -> None:
    from carbs.runner.process import ProcessResult
    from carbs.runner.results import TextValues
    from carbs.runner.worker import judge_program

    spec = RunSpec(command=["true"], metric="loss")
    missing = str(tmp_path / "results.json")

    def judge(result: ProcessResult) -> tuple[FailKind | None, str]:
        outcome, tail = judge_program(spec, result, missing, TextValues(["loss"], "loss"))
        return outcome.fail_kind, tail

    failed = ProcessResult(1, 1.0, stdout_tail="step 3\nloss went nan")
    assert judge(failed) == (FailKind.ERROR, "(stdout)\nstep 3\nloss went nan")
    assert judge(ProcessResult(1, 1.0, stdout_tail="out", stderr_tail="ValueError: x"))[1] == "ValueError: x"
    done = ProcessResult(0, 1.0, reported={"loss": 0.5}, stdout_tail='{"loss": 0.5}')
    assert judge(done) == (None, "")
