"""What a trial prints: metrics in plain text (issue 13, item 4) and its error shown everywhere (item 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from carbs.cli import main
from carbs.cli.common import EXIT_NO_RESULTS, EXIT_OK, EXIT_USAGE
from carbs.runner.process import ProcessResult
from carbs.runner.results import TextValues, evaluate
from carbs.sweep_config import Budget, SweepConfigError, parse_sweep_config


def _read(lines: list[str], metric: str = "val_loss", regex: str | None = None, cost: str | None = None,
          reported: dict[str, object] | None = None, tmp_path: Path | None = None) -> tuple[float | None, str | None]:
    text = TextValues([metric] + ([cost] if cost else []), metric, regex)
    for line in lines:
        text.feed(line)
    outcome = evaluate(
        ProcessResult(0, 1.0, reported=dict(reported or {})),
        metric=metric,
        cost_key=cost,
        results_file=str((tmp_path or Path("/nonexistent")) / "results.json"),
        timeout=None,
        text_values=text.values(),
    )
    return outcome.output, outcome.reason


@pytest.mark.parametrize(
    "line",
    [
        "val_loss: 0.31",
        "val_loss=0.31",
        "epoch 3 train_loss: 0.9 val_loss: 0.31 acc: 0.8",
        "step 10, val_loss=0.31, lr=0.001",
        "{'val_loss': 0.31, 'acc': 0.5}",  # a printed Python dict
        "val_loss = 3.1e-1",
    ],
)
def test_plain_text_forms_are_read(line: str) -> None:
    assert _read(["starting", line, "done"]) == (pytest.approx(0.31), None)


def test_text_forms_do_not_match_longer_names_and_the_last_one_wins() -> None:
    assert _read(["best_val_loss: 0.1", "val_loss_ema: 0.2", "val_loss: 0.5", "val_loss: 0.4"])[0] == 0.4
    output, reason = _read(["best_val_loss: 0.1", "val_loss_ema: 0.2"])
    assert output is None and reason is not None and "was not reported" in reason


def test_json_wins_over_text_and_regex_wins_over_plain_text() -> None:
    assert _read(["val_loss: 0.9"], reported={"val_loss": 0.2})[0] == 0.2
    assert _read(["val_loss: 0.9", "validation loss is 0.25"], regex=r"validation loss is (\S+)")[0] == 0.25
    assert _read(["final (loss 0.7)"], regex=r"loss (?P<value>[0-9.]+)")[0] == 0.7


def test_a_broken_json_line_is_not_half_read() -> None:
    output, reason = _read(['{"val_loss": 0.3,,}'])
    assert output is None and reason is not None


def test_the_cost_key_is_read_from_text_too() -> None:
    text = TextValues(["loss", "tokens"], "loss")
    for line in ["loss=0.5 tokens=1200"]:
        text.feed(line)
    outcome = evaluate(ProcessResult(0, 1.0), metric="loss", cost_key="tokens",
                       results_file="/nonexistent/r.json", timeout=None, text_values=text.values())
    assert (outcome.output, outcome.cost) == (0.5, 1200.0)


def test_unread_metric_message_lists_the_forms_read() -> None:
    _, reason = _read(["nothing here"])
    assert reason is not None
    for form in ('{"val_loss": 0.31}', "$CARBS_RESULTS_FILE", "carbs.report()", "metric_regex",
                 "val_loss: 0.31", "val_loss=0.31"):
        assert form in reason


@pytest.mark.parametrize(
    "regex,message",
    [("loss (", "not a valid regular expression"), ("loss", "one capture group"), ("(a)(b)", "got 2")],
)
def test_metric_regex_is_checked_when_the_file_loads(regex: str, message: str) -> None:
    data = {"name": "s", "command": "python t.py {x}", "metric_regex": regex,
            "parameters": {"x": {"space": "linear", "min": 0, "max": 1}}}
    with pytest.raises(SweepConfigError, match=message):
        parse_sweep_config(data)


_PROGRAM = """
import sys
x = float(sys.argv[1])
if sys.argv[2] == "text":
    print(f"epoch 1 val_loss: {x + 1}")
    print(f"epoch 2 val_loss={x * x:.6f}, acc=0.9")
elif sys.argv[2] == "regex":
    print(f"validation loss is {x * x:.6f}!")
else:
    import json
    d = json.loads('{"a": 1}')
    print(d["missing_key"])
"""


def _sweep(tmp_path: Path, mode: str, extra: str = "") -> str:
    (tmp_path / "prog.py").write_text(_PROGRAM)
    path = tmp_path / f"{mode}.yaml"
    path.write_text(
        f"name: {mode}\ncommand: '{{python}} prog.py {{x}} {mode}'\nmetric: val_loss\n"
        "parameters:\n  x: {space: linear, min: -1, max: 1}\nbudget: {trials: 2}\n" + extra
    )
    return str(path)


def test_sweeps_read_text_and_regex_metrics_end_to_end(tmp_path: Path) -> None:
    from carbs.study import load_study

    db = str(tmp_path / "runs.db")
    assert main(["run", _sweep(tmp_path, "text"), "--storage", db, "--no-progress"]) == EXIT_OK
    trials = load_study("text", db).trials()
    assert [t.output for t in trials] == [pytest.approx(t.params["x"] ** 2, abs=1e-5) for t in trials]
    sweep = _sweep(tmp_path, "regex", extra="metric_regex: 'validation loss is ([0-9.]+)'\n")
    assert main(["run", sweep, "--storage", db, "--no-progress"]) == EXIT_OK
    trials = load_study("regex", db).trials()
    assert [t.output for t in trials] == [pytest.approx(t.params["x"] ** 2, abs=1e-5) for t in trials]
    # `carbs worker` reads the regex stored with the study.
    assert load_study("regex", db).config["metric_regex"] == "validation loss is ([0-9.]+)"


def test_the_exception_is_shown_wherever_the_failure_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "runs.db")
    assert main(["run", _sweep(tmp_path, "crash"), "--storage", db, "--no-progress"]) == EXIT_NO_RESULTS
    exception = "KeyError: 'missing_key'"
    assert f"exited with code 1: {exception}" in capsys.readouterr().err  # the run's own lines
    assert main(["status", "--storage", db]) == EXIT_OK
    assert f"failed: trial 1: error: exited with code 1: {exception}" in capsys.readouterr().out
    assert main(["trials", "--storage", db, "--format", "json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["fail_reason"] == f"exited with code 1: {exception}"
    assert main(["trials", "--storage", db]) == EXIT_OK
    assert "KeyError" in capsys.readouterr().out
    # The whole tail of one trial.
    assert main(["trials", "--storage", db, "--show", "0"]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "Traceback (most recent call last):" in shown and 'print(d["missing_key"])' in shown
    assert shown.rstrip().endswith(exception)
    assert main(["trials", "--storage", db, "--show", "7"]) == EXIT_USAGE
    assert "no trial 7 (its trials are numbered 0 to 1)" in capsys.readouterr().err


def test_live_display_shows_the_last_failure(tmp_path: Path) -> None:
    from rich.console import Console

    from carbs.cli.progress import ProgressDisplay
    from carbs.study import load_study

    db = str(tmp_path / "runs.db")
    assert main(["run", _sweep(tmp_path, "crash"), "--storage", db, "--no-progress"]) == EXIT_NO_RESULTS
    study = load_study("crash", db)
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(ProgressDisplay(study, Budget(max_trials=2), 1, console).render())
    text = console.export_text()
    assert "last failure" in text and "trial 1: error: exited with code 1: KeyError: 'missing_key'" in text

