"""WandbLogger in offline mode, checked against the run file W&B writes locally."""

from __future__ import annotations

import importlib.util
import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("wandb")
pytest.importorskip("matplotlib")

from wandb.proto import wandb_internal_pb2

from carbs import (
    CARBS,
    CARBSParams,
    LinearSpace,
    LogSpace,
    ObservationInParam,
    Param,
    WandbLoggingParams,
)
from carbs.integrations._pareto_plot import observed_front
from carbs.integrations.wandb import WandbLogger

# The .wandb file is a LevelDB-style log: 32 KiB blocks of chunks, each with a
# 7-byte header (crc32, length, type), after a 7-byte file header.
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _parsed(run_file: Path) -> list[Any]:
    out = []
    for raw in _records(run_file):
        record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
        record.ParseFromString(raw)
        out.append(record)
    return out


def _history(run_dir: Path) -> list[dict[str, Any]]:
    (run_file,) = run_dir.glob("*.wandb")
    # finish() returns before the writer of a process's second and later runs
    # has flushed; the run is complete once its exit record is there.
    deadline = time.monotonic() + 60
    records = _parsed(run_file)
    while not any(r.WhichOneof("record_type") == "exit" for r in records):
        assert time.monotonic() < deadline, f"{run_file} has no exit record"
        time.sleep(0.1)
        records = _parsed(run_file)
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    return tmp_path


def _run_dir(root: Path) -> Path:
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    return run_dir


def test_plain_loop_logs_rows_best_so_far_and_pareto_plot(offline: Path) -> None:
    logger = WandbLogger(
        project="carbs-test", dir=str(offline), better_direction_sign=-1, pareto_plot_every=3
    )
    runs = [  # (width, loss, seconds, failed)
        (8, 0.9, 1.0, False),
        (16, 0.7, 2.0, False),
        (32, 0.0, 3.0, True),
        (64, 0.8, 4.0, False),
        (128, 0.4, 8.0, False),
    ]
    for width, loss, seconds, failed in runs:
        logger.observe(ObservationInParam({"width": width}, loss, seconds, failed))
    logger.finish()

    rows = [r for r in _history(_run_dir(offline)) if "observation_count" in r]
    assert [r["observation_count"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["observation/width"] for r in rows] == [8, 16, 32, 64, 128]
    assert [r["observation/is_failure"] for r in rows] == [0, 0, 1, 0, 0]
    assert "observation/output" not in rows[2]
    assert [r["best_observation/output"] for r in rows] == [0.9, 0.7, 0.7, 0.7, 0.4]
    assert rows[-1]["cumulative_cost"] == 18.0
    plots = [r for r in _history(_run_dir(offline)) if "pareto_plot/_type" in r]
    assert len(plots) == 1  # after the third success
    assert plots[0]["pareto_plot/_type"] == "image-file"
    assert (_run_dir(offline) / "files" / plots[0]["pareto_plot/path"]).stat().st_size > 1000


def test_carbs_logs_through_the_seam_when_enabled(offline: Path) -> None:
    params = [
        Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), search_center=1e-3),
        Param("depth", LinearSpace(min=1, max=8, scale=2, is_integer=True), search_center=3),
    ]
    config = CARBSParams(
        better_direction_sign=-1,
        is_wandb_logging_enabled=True,
        wandb_params=WandbLoggingParams(project_name="carbs-test", run_name="seam", root_dir=str(offline)),
    )
    opt = CARBS(config, params)
    for _ in range(3):
        s = opt.suggest().suggestion
        opt.observe(ObservationInParam(s, float(s["depth"]), cost=1.0 + s["depth"]))
    logger = WandbLogger.for_optimizer(opt)
    logger.log_pareto_plot(opt.get_pareto_set())
    logger.finish()

    history = _history(_run_dir(offline))
    observed = [r for r in history if "observation/output" in r]
    suggested = [r for r in history if "suggestion_kind" in r]
    assert len(observed) == 3 and len(suggested) == 3
    assert {"observation/lr", "observation/depth", "observation/cost"} <= set(observed[0])
    assert observed[-1]["best_observation/output"] == min(r["observation/output"] for r in observed)
    assert [r["pareto_plot_step"] for r in history if "pareto_plot/_type" in r] == [3]


def test_log_study_logs_each_finished_trial_once_in_finishing_order(
    offline: Path, tmp_path: Path
) -> None:
    import carbs

    study = carbs.create_study(
        "wandb-log",
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        params=[Param("x", LinearSpace(min=0.0, max=4.0, scale=1.0), search_center=1.0)],
        direction="maximize",
    )
    first, second, third, fourth = (study.ask() for _ in range(4))
    logger = WandbLogger(project="carbs-test", dir=str(offline), pareto_plot_every=0)
    assert logger.log_study(study) == 0  # all running
    for step in (1, 2):
        second.report(0.3 * step, step, cost=1.5 * step)
    study.tell(second, output=0.7, cost=3.0)
    assert logger.log_study(study) == 1
    study.tell(first, output=0.5, cost=2.0)
    study.tell(third, failed=True, cost=1.0)
    fourth.report(0.1, 0, cost=0.5)
    study.tell(fourth, pruned=True)
    assert logger.log_study(study) == 3
    assert logger.log_study(study) == 0
    logger.finish()
    history = _history(_run_dir(offline))
    rows = [r for r in history if "observation_count" in r]
    assert [r["trial_number"] for r in rows] == [1, 0, 2, 3]
    assert [r["trial_state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAILED", "PRUNED"]
    assert [r["observation/x"] for r in rows[:3]] == [second.params["x"], first.params["x"], third.params["x"]]
    assert [r["observation/is_failure"] for r in rows] == [0, 0, 1, 1]
    curve = [
        (r["curve/trial_number"], r["curve/step"], r["curve/value"], r["curve/cost"])
        for r in history if "curve/step" in r
    ]
    assert curve == [(1, 1, 0.3, 1.5), (1, 2, 0.6, 3.0), (3, 0, 0.1, 0.5)]
    assert [r["best_observation/output"] for r in rows] == [0.7, 0.7, 0.7, 0.7]  # maximising
    assert rows[2]["cumulative_cost"] == 6.0


def test_logging_into_an_existing_run_keeps_its_steps_and_leaves_it_open(offline: Path) -> None:
    import wandb

    run = wandb.init(project="carbs-test", dir=str(offline))
    for step in range(3):
        run.log({"train/loss": 1.0 / (step + 1)})
    logger = WandbLogger(run=run, better_direction_sign=-1, pareto_plot_every=0)
    logger.observe(ObservationInParam({"x": 1.0}, 0.5, 2.0))
    logger.finish()  # not ours to close
    run.log({"train/loss": 0.1})
    run.finish()
    history = _history(_run_dir(offline))
    assert [r.get("train/loss") for r in history if "train/loss" in r] == [1.0, 0.5, 1.0 / 3, 0.1]
    observed = [r for r in history if "observation_count" in r]
    assert len(observed) == 1 and observed[0]["_step"] == 3  # after the run's own rows
    assert observed[0]["best_observation/output"] == 0.5


def test_observed_front_keeps_points_that_beat_every_cheaper_one() -> None:
    points = [(2.0, 0.4), (1.0, 0.5), (2.0, 0.6), (3.0, 0.55), (4.0, 0.7)]
    assert observed_front(points, sign=1) == [(1.0, 0.5), (2.0, 0.6), (4.0, 0.7)]
    assert observed_front(points, sign=-1) == [(1.0, 0.5), (2.0, 0.4)]
    assert observed_front([], sign=1) == []


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="better_direction_sign"):
        WandbLogger(run=object(), better_direction_sign=0)
    with pytest.raises(ValueError, match="pareto_plot_every"):
        WandbLogger(run=object(), pareto_plot_every=-1)
    plain = CARBS(CARBSParams(), [Param("x", LinearSpace(min=0.0, max=1.0), search_center=0.5)])
    with pytest.raises(ValueError, match="is_wandb_logging_enabled"):
        WandbLogger.for_optimizer(plain)


def _load_example(relative: str) -> ModuleType:
    """Import an example script as a module, to run its ``main`` small."""
    path = Path(__file__).resolve().parent.parent / "examples" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs(offline: Path) -> None:
    opt = _load_example("wandb/wandb_carbs.py").main(runs=5, root_dir=str(offline))
    history = _history(_run_dir(offline))
    assert len([r for r in history if "observation/output" in r]) == opt.observation_count == 5
    assert len([r for r in history if "suggestion_kind" in r]) == 5
    assert [r["pareto_plot_step"] for r in history if "pareto_plot/_type" in r] == [5]
