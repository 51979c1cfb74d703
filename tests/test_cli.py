"""The ``carbs`` command: run, status, best, trials, their output formats and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _storage_urls import write_sweep

from carbs.cli import _COMMAND_MODULES, build_parser, main
from carbs.cli.common import EXIT_NO_RESULTS, EXIT_OK, EXIT_STORAGE, EXIT_STUDY, EXIT_USAGE
from carbs.storage import TrialState
from carbs.study import load_study


def carbs_cli(*args: str, cwd: Any, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``carbs`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "carbs.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A sweep run once by ``carbs run`` in a subprocess: 4 trials of the toy program."""
    tmp = tmp_path_factory.mktemp("cli")
    sweep = write_sweep(tmp, trials=4, workers=2)
    proc = carbs_cli("run", sweep, "--storage", "runs.db", cwd=tmp)
    return {"dir": tmp, "db": str(tmp / "runs.db"), "proc": proc, "sweep": sweep}


def test_run_prints_best_and_front(finished: dict[str, Any]) -> None:
    proc = finished["proc"]
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "created study toy" in proc.stderr
    assert "stopped: trial budget reached (4/4 trials)" in proc.stderr
    assert "study toy: 4 complete, 0 failed, 0 running" in proc.stdout
    assert "best trial" in proc.stdout and "Pareto front" in proc.stdout
    trials = load_study("toy", finished["db"]).trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4


def test_trials_formats(finished: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    db = finished["db"]
    assert main(["trials", "--storage", db, "--format", "json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [r["number"] for r in rows] == [0, 1, 2, 3] and rows[0]["state"] == "COMPLETE"
    assert main(["trials", "--storage", db, "--study", "toy", "--format", "csv"]) == EXIT_OK
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 4 and float(table[0]["output"]) == pytest.approx(rows[0]["output"])
    assert "params_x" in table[0] and "user_attrs_acc" in table[0]
    assert main(["trials", "--storage", db, "--format", "table", "--state", "FAILED"]) == EXIT_OK
    assert "0 trials" in capsys.readouterr().out
    assert main(["trials", "--storage", db]) == EXIT_OK
    assert "COMPLETE" in capsys.readouterr().out


def test_status_and_best(finished: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    db = finished["db"]
    assert main(["status", "--storage", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert "trials: 4 complete, 0 running, 0 failed  (budget 4)" in out and "best: trial" in out
    assert main(["best", "--storage", db, "--format", "json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    best = min(load_study("toy", db).trials(), key=lambda t: t.output or 0.0)
    assert data["best_trial"]["number"] == best.number and data["metric"] == "loss"
    assert data["pareto_front"] and data["pareto_front"][0]["cost"] > 0
    assert main(["best", "--storage", db]) == EXIT_OK
    assert f"best trial {best.number}" in capsys.readouterr().out


def test_error_exit_codes(
    finished: dict[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = finished["db"]
    assert main(["status", "--storage", db, "--study", "nope"]) == EXIT_STUDY
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["trials", "--storage", "/nonexistent-dir/x.db"]) == EXIT_STORAGE
    assert "no storage at /nonexistent-dir/x.db" in capsys.readouterr().err
    assert main([]) == EXIT_USAGE
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncommand: python t.py {y}\nparameters:\n  x: {space: linear, min: 0, max: 1}\n")
    assert main(["run", str(bad), "--storage", str(tmp_path / "b.db")]) == EXIT_USAGE
    assert "placeholder {y} is not a parameter" in capsys.readouterr().err
    # The same study name with another search space is refused unless asked for.
    other = Path(write_sweep(tmp_path, trials=4))
    other.write_text(other.read_text().replace("min: -1", "min: -2"))
    assert main(["run", str(other), "--storage", db, "--no-progress"]) == EXIT_STUDY
    assert "--allow-space-change" in capsys.readouterr().err
    # Budget already spent: resuming with --allow-space-change starts no trial.
    code = main(["run", str(other), "--storage", db, "--no-progress", "--allow-space-change"])
    assert code == EXIT_OK and "resuming study toy" in capsys.readouterr().err
    # A study with no COMPLETE trial: `best` says so with its own exit code.
    empty = tmp_path / "empty.db"
    sweep = write_sweep(tmp_path, mode="fail", trials=1, name="broken")
    assert main(["run", sweep, "--storage", str(empty), "--no-progress"]) == EXIT_NO_RESULTS
    assert "exited with code 3" in capsys.readouterr().err
    assert main(["best", "--storage", str(empty)]) == EXIT_NO_RESULTS
    assert "no trial has completed yet" in capsys.readouterr().out
    assert main(["best", "--storage", str(empty), "--format", "json"]) == EXIT_NO_RESULTS
    assert json.loads(capsys.readouterr().out)["best_trial"] is None


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert {"carbs.cli.run", "carbs.cli.inspect"} <= set(_COMMAND_MODULES)
    for command in ("run", "worker", "status", "best", "trials"):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([command, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "exit codes:" in out and f"usage: carbs {command}" in out


def test_live_progress_display(finished: dict[str, Any]) -> None:
    from rich.console import Console

    from carbs.cli.progress import ProgressDisplay
    from carbs.sweep_config import Budget

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    study = load_study("toy", finished["db"])
    with ProgressDisplay(study, Budget(max_trials=4, max_cost=10.0), 2, console):
        pass
    out = buffer.getvalue()
    assert "4 done, 0 running, 0 failed  (budget 4)" in out
    assert "best" in out and "/ 10" in out and "ETA" in out
