"""A sweep whose trials all fail the same way stops early and says why (issue 13, item 1)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from _storage_urls import write_sweep

from carbs.runner.worker import RunSpec, SweepRunner
from carbs.storage import FailKind, TrialState
from carbs.study import Study, create_study
from carbs.sweep_config import (
    DEFAULT_FAIL_FAST,
    SweepConfigError,
    load_sweep_config,
    parse_sweep_config,
)


def _study(tmp_path: Path, mode: str, trials: int, extra: str = "") -> tuple[Study, RunSpec]:
    config = load_sweep_config(write_sweep(tmp_path, mode=mode, trials=trials, extra=extra))
    study = create_study(
        config.name,
        f"sqlite:///{tmp_path}/runs.db",
        config.params,
        metric=config.metric,
        settings=config.carbs_params(),
        config=config.run_config(),
    )
    return study, RunSpec.from_sweep(config)


def test_a_program_that_always_fails_stops_after_five_trials(tmp_path: Path) -> None:
    study, spec = _study(tmp_path, "fail", trials=30)
    summary = SweepRunner(study, spec).run()
    trials = study.trials()
    assert len(trials) == DEFAULT_FAIL_FAST == 5
    assert summary.failed == 5 and summary.completed == 0
    assert "the last 5 trials all failed the same way" in summary.stop_reason
    assert "exited with code 3: ValueError: bad batch" in summary.stop_reason
    assert "carbs trials --show 4" in summary.stop_reason  # the fix names where to look


def test_a_metric_in_no_readable_form_stops_with_the_forms_that_are_read(tmp_path: Path) -> None:
    study, spec = _study(tmp_path, "missing", trials=30, extra="fail_fast: 3\n")
    summary = SweepRunner(study, spec).run()
    assert len(study.trials()) == 3
    assert "metric 'loss' was not reported" in summary.stop_reason
    assert "loss: 0.31 or loss=0.31" in summary.stop_reason and "metric_regex" in summary.stop_reason


def test_cost_naming_a_parameter_warns_at_load_and_stops_with_the_fix(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, mode="json", trials=30, extra="cost: x\n")
    config = load_sweep_config(sweep)
    assert any("cost 'x' is a parameter name" in w for w in config.warnings)
    study, spec = _study(tmp_path, "json", trials=30, extra="cost: x\n")
    summary = SweepRunner(study, spec).run()
    assert len(study.trials()) == 5
    assert "'cost: x' names a parameter" in summary.stop_reason
    assert "cost: wall_clock" in summary.stop_reason


def test_no_stop_once_a_trial_succeeded_or_when_turned_off(tmp_path: Path) -> None:
    study, spec = _study(tmp_path, "json", trials=1)
    SweepRunner(study, spec).run()
    assert study.state_counts()[TrialState.COMPLETE] == 1
    # The same study now fails every time: a sweep that worked somewhere explores on.
    spec.command = [a.replace("json", "fail") for a in spec.command]
    spec.budget = type(spec.budget)(max_trials=8)
    summary = SweepRunner(study, spec).run()
    assert summary.failed == 7 and summary.stop_reason.startswith("trial budget reached")

    other = tmp_path / "off"
    other.mkdir()
    study, spec = _study(other, "fail", trials=7, extra="fail_fast: 0\n")
    summary = SweepRunner(study, spec).run()
    assert summary.failed == 7 and summary.stop_reason.startswith("trial budget reached")


def test_different_failures_do_not_count_as_one_cause(tmp_path: Path) -> None:
    from carbs.runner.fail_fast import FailFast
    from carbs.storage import TrialRecord, utcnow

    def failed(number: int, reason: str) -> TrialRecord:
        return TrialRecord(
            number, {"x": 0.1 * number}, TrialState.FAILED, None, 1.0, utcnow(),
            fail_kind=FailKind.ERROR, fail_reason=reason,
        )

    gate = FailFast(3, False, None, ["x"])
    # Numbers in the reason do not make causes differ; the words do.
    assert gate.observe(failed(0, "exited with code 1: ValueError: x=0.1 too big")) is None
    assert gate.observe(failed(1, "exited with code 1: ValueError: x=0.7 too big")) is None
    assert gate.observe(failed(2, "exited with code 1: KeyError: 'y'")) is None
    assert gate.observe(failed(3, "exited with code 1: KeyError: 'y'")) is None
    assert gate.observe(failed(4, "exited with code 1: KeyError: 'y'")) is not None


@pytest.mark.parametrize("value", [-1, "5", 2.5, True])
def test_fail_fast_must_be_a_whole_number(value: Any) -> None:
    data = {"name": "s", "command": "python t.py {x}", "parameters": {"x": {"space": "linear", "min": 0, "max": 1}},
            "fail_fast": value}
    with pytest.raises(SweepConfigError, match="fail_fast must be"):
        parse_sweep_config(data)


def test_cost_warning_is_logged_when_the_file_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        load_sweep_config(write_sweep(tmp_path, extra="cost: x\n"))
    assert "cost 'x' is a parameter name" in caplog.text


@pytest.mark.parametrize(
    "command,warned",
    [
        ("{python} train.py {x}", "command runs 'train.py', which is not a file"),
        ("python3 nothere.py --x {x}", "command runs 'nothere.py', which is not a file"),
        ("./run.sh {x}", "command program './run.sh' is not found"),
        ("no-such-program-here {x}", "command program 'no-such-program-here' is not found"),
        ("{python} trial.py {x}", None),  # exists
        ("echo {x}", None),  # on PATH
        ("{python} {x}.py", None),  # built from placeholders: left to run time
    ],
)
def test_a_program_that_cannot_be_found_warns_at_load(tmp_path: Path, command: str, warned: str | None) -> None:
    (tmp_path / "trial.py").write_text("print('loss: 1')\n")
    data = {"name": "s", "command": command, "budget": {"trials": 2},
            "parameters": {"x": {"space": "linear", "min": 0, "max": 1}}}
    warnings = parse_sweep_config(data, base_dir=str(tmp_path)).warnings
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warned in warnings[0] and "every trial would fail" in warnings[0]
