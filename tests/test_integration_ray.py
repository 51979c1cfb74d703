"""CARBSSearcher: space conversion, the Searcher protocol, and a real local Ray Tune run."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("ray.tune")

from _netns import only_loopback, private_network
from ray import tune

from carbs import CARBSParams, ChoiceSpace, LinearSpace, LogSpace, Param, StateError
from carbs.integrations.ray import (
    CARBSSearcher,
    ConversionError,
    convert_ray_search_space,
)


def _by_name(params: list[Param]) -> dict[str, Param]:
    return {p.name: p for p in params}


# -- conversion ---------------------------------------------------------------------
def test_convert_maps_each_tune_domain_to_its_space() -> None:
    params, codecs = convert_ray_search_space(
        {
            "lr": tune.loguniform(1e-4, 1e-1),
            "dropout": tune.uniform(0.0, 0.5),
            "model": {"width": tune.lograndint(8, 513), "depth": tune.randint(1, 6)},
            "batch": tune.qrandint(16, 256, 16),
            "warmup": tune.quniform(0, 100, 10),
            "noise": tune.randn(2.0, 0.5),
            "opt": tune.choice(["adam", "sgd"]),
            "seed": 7,
        }
    )
    p = _by_name(params)
    assert set(p) == {"lr", "dropout", "model/width", "model/depth", "batch", "warmup", "noise", "opt"}
    assert isinstance(p["lr"].space, LogSpace) and (p["lr"].space.min, p["lr"].space.max) == (1e-4, 1e-1)
    assert p["lr"].search_center == pytest.approx(10**-2.5)
    assert isinstance(p["dropout"].space, LinearSpace) and p["dropout"].search_center == 0.25
    width = p["model/width"].space
    assert isinstance(width, LogSpace) and width.is_integer and (width.min, width.max) == (8, 512)
    assert p["model/width"].search_center == 64
    depth = p["model/depth"].space
    assert isinstance(depth, LinearSpace) and depth.is_integer and (depth.min, depth.max) == (1, 5)
    batch = p["batch"].space
    assert isinstance(batch, LinearSpace) and batch.rounding_factor == 16 and (batch.min, batch.max) == (16, 256)
    assert p["batch"].search_center % 16 == 0
    warmup = p["warmup"].space
    assert codecs["warmup"].kind == "float" and isinstance(warmup, LinearSpace)
    assert warmup.is_integer and warmup.rounding_factor == 10 and (warmup.min, warmup.max) == (0, 100)
    assert isinstance(p["noise"].space, LinearSpace) and p["noise"].space.scale == 0.5
    assert p["noise"].search_center == 2.0
    assert isinstance(p["opt"].space, ChoiceSpace) and p["opt"].search_center == "adam"


def test_convert_non_scalar_categories_round_trip_through_json() -> None:
    params, codecs = convert_ray_search_space({"act": tune.choice([None, "relu", [1, 2]])})
    assert codecs["act"].kind == "json"
    choices = params[0].space.choices  # type: ignore[union-attr]
    assert [codecs["act"].from_carbs(c) for c in choices] == [None, "relu", [1, 2]]


def test_convert_uses_given_search_center_nested_or_flat() -> None:
    space = {"optim": {"lr": tune.loguniform(1e-5, 1.0)}, "act": tune.choice(["a", "b"])}
    params, _ = convert_ray_search_space(space, {"optim": {"lr": 3e-4}, "act": "b"})
    assert _by_name(params)["optim/lr"].search_center == 3e-4
    assert _by_name(params)["act"].search_center == "b"
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['optim/momentum'\]"):
        convert_ray_search_space(space, {"optim/momentum": 0.9})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (tune.grid_search([1, 2]), "grid_search"),
        (tune.sample_from(lambda _: 1), "sample_from"),
        (tune.quniform(0.0, 1.0, 0.1), "not a whole number"),
        (tune.randint(3, 4), "single value"),
        (tune.choice(["only"]), "at least 2 categories"),
        (tune.choice([(1, 2), (3, 4)]), "JSON round trip"),
        ([tune.uniform(0, 1)], "inside lists"),
    ],
)
def test_convert_rejects_what_it_cannot_represent(entry: Any, message: str) -> None:
    with pytest.raises(ConversionError, match=message) as info:
        convert_ray_search_space({"x": entry})
    assert "'x'" in str(info.value)


# -- the Searcher protocol without a cluster -----------------------------------------------
def _suggest(searcher: CARBSSearcher, trial_id: str) -> dict[str, Any]:
    config = searcher.suggest(trial_id)
    assert config is not None
    return config


def _loss(config: dict[str, Any]) -> float:
    return (math.log10(config["lr"]) + 2.5) ** 2 + 0.1 * config["depth"]


def _native_params() -> list[Param]:
    return [
        Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), search_center=1e-3),
        Param("depth", LinearSpace(min=1, max=8, scale=2, is_integer=True), search_center=3),
    ]


def test_metric_and_mode_come_from_tune_and_set_direction() -> None:
    searcher = CARBSSearcher(_native_params())
    with pytest.raises(RuntimeError, match="metric"):
        searcher.suggest("t0")
    assert searcher.set_search_properties("loss", "min", {"constant": 1})
    searcher.suggest("t0")
    assert searcher.carbs is not None and searcher.carbs.config.better_direction_sign == -1
    # Native params and a Tune search space at once: Tune is told to refuse.
    assert not CARBSSearcher(_native_params()).set_search_properties(
        "loss", "min", {"lr": tune.uniform(0, 1)}
    )
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        CARBSSearcher(_native_params(), metric="loss", mode="minimize")
    with pytest.raises(ValueError, match="one metric"):
        CARBSSearcher(_native_params(), metric=["a", "b"], mode="min")  # type: ignore[arg-type]


def test_concurrent_trials_are_pending_and_failures_recorded() -> None:
    searcher = CARBSSearcher(_native_params(), metric="loss", mode="min", cost_metric="flops")
    configs = {f"t{i}": _suggest(searcher, f"t{i}") for i in range(3)}
    assert searcher.carbs is not None
    assert set(searcher.carbs.outstanding_suggestions) == {"t0", "t1", "t2"}
    assert len({json.dumps(c, sort_keys=True) for c in configs.values()}) == 3
    searcher.on_trial_complete("t0", {"loss": _loss(configs["t0"]), "flops": 5.0})
    searcher.on_trial_complete("t1", None, error=True)
    searcher.on_trial_complete("t2", {"time_total_s": 2.0})  # no metric: a failure
    opt = searcher.carbs
    assert not opt.outstanding_suggestions
    assert len(opt.success_observations) == 1 and opt.success_observations[0].cost == 5.0
    assert len(opt.failure_observations) == 2
    assert opt.failure_observations[1].cost == 2.0  # fell back to time_total_s
    searcher.on_trial_complete("t0", {"loss": 1.0})  # a repeated completion is ignored
    assert opt.observation_count == 3


def test_save_and_restore_keep_observations_and_pending_trials(tmp_path: Path) -> None:
    searcher = CARBSSearcher(
        metric="loss", mode="max", carbs_params=CARBSParams(seed=3, num_random_samples=2)
    )
    assert searcher.set_search_properties(
        None, None, {"optim": {"lr": tune.loguniform(1e-5, 1.0)}, "depth": tune.randint(1, 9)}
    )
    for i in range(5):
        config = _suggest(searcher, f"t{i}")
        flat = {"lr": config["optim"]["lr"], "depth": config["depth"]}
        searcher.on_trial_complete(f"t{i}", {"loss": -_loss(flat), "time_total_s": 1.0 + i})
    pending = _suggest(searcher, "pending")
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    restored = CARBSSearcher()
    restored.restore(str(path))
    assert restored.metric == "loss" and restored.mode == "max"
    # Given its param_space again (for the constants), it keeps its saved space.
    again_space = {"optim": {"lr": tune.loguniform(1e-5, 1.0)}, "depth": tune.randint(1, 9), "c": 1}
    assert restored.set_search_properties(None, None, again_space)
    with pytest.raises(ValueError, match=r"searches \['depth', 'width'\].*\['depth', 'optim/lr'\]"):
        restored.set_search_properties(None, None, {"width": tune.randint(1, 9), "depth": tune.randint(1, 9)})
    assert restored.carbs is not None and restored.carbs.observation_count == 5
    assert set(restored.carbs.outstanding_suggestions) == {"pending"}
    # The same state gives the same next suggestion (up to the float round trip).
    again, original = _suggest(restored, "next"), _suggest(searcher, "next")
    assert again["depth"] == original["depth"]
    assert again["optim"]["lr"] == pytest.approx(original["optim"]["lr"], rel=1e-9)
    restored.on_trial_complete("pending", {"loss": -1.0, "time_total_s": 1.0})
    assert restored.carbs.observation_count == 6
    assert set(pending) == {"optim", "depth"}
    # Into a new Tuner, trials pending at save time never report: they can be dropped.
    fresh = CARBSSearcher()
    fresh.restore(str(path))
    assert fresh.forget_pending_trials() == ["pending"]
    assert fresh.carbs is not None and not fresh.carbs.outstanding_suggestions
    path.write_text('{"format": "something else"}')
    with pytest.raises(StateError, match="not a CARBSSearcher state"):
        CARBSSearcher().restore(str(path))


# -- points_to_evaluate, evaluated_rewards, add_evaluated_point ----------------------------------
def test_points_to_evaluate_come_first_then_carbs_suggests() -> None:
    points = [{"lr": 0.01, "depth": 5}, {"depth": 2}, {"lr": 3.3e-4, "depth": 7}]
    searcher = CARBSSearcher(_native_params(), metric="loss", mode="min", points_to_evaluate=points)
    first = [_suggest(searcher, f"p{i}") for i in range(3)]
    assert first[0] == {"lr": pytest.approx(0.01), "depth": 5}
    assert first[1] == {"lr": pytest.approx(1e-3), "depth": 2}  # lr left out: its search center
    assert first[2] == {"lr": pytest.approx(3.3e-4), "depth": 7}
    opt = searcher.carbs
    assert opt is not None and set(opt.outstanding_suggestions) == {"p0", "p1", "p2"}
    for i, config in enumerate(first):
        searcher.on_trial_complete(f"p{i}", {"loss": _loss(config), "time_total_s": 2.0})
    assert opt.observation_count == 3 and not opt.outstanding_suggestions
    assert sorted(o.output for o in opt.success_observations) == sorted(_loss(c) for c in first)
    fourth = _suggest(searcher, "t3")  # now CARBS's own, around its search center
    assert fourth not in first


def test_points_to_evaluate_follow_a_converted_space_nested_and_rounded() -> None:
    space = {"optim": {"lr": tune.loguniform(1e-5, 1.0)}, "batch": tune.qrandint(16, 256, 16), "c": 1}
    searcher = CARBSSearcher(
        metric="loss", mode="min", points_to_evaluate=[{"optim": {"lr": 0.02}, "batch": 70}, {"optim/lr": 1e-4}]
    )
    assert searcher.set_search_properties(None, None, space)
    assert _suggest(searcher, "a") == {"optim": {"lr": pytest.approx(0.02)}, "batch": 64}
    second = _suggest(searcher, "b")
    assert second["optim"]["lr"] == pytest.approx(1e-4) and second["batch"] % 16 == 0
    bad = CARBSSearcher(metric="loss", mode="min", points_to_evaluate=[{"optim": {"lr": 5.0}}])
    with pytest.raises(ValueError, match=r"points_to_evaluate\[0\].*'optim/lr'.*outside the bounds"):
        bad.set_search_properties(None, None, space)


def test_evaluated_rewards_are_observed_instead_of_run(caplog: pytest.LogCaptureFixture) -> None:
    points = [{"lr": 1e-2, "depth": 2}, {"lr": 1e-3, "depth": 4}, {"lr": 1e-4, "depth": 1}]
    rewards: list[Any] = [{"loss": 0.5, "time_total_s": 30.0}, 0.25, {"loss": float("nan")}]
    searcher = CARBSSearcher(
        _native_params(), metric="loss", mode="min", points_to_evaluate=points, evaluated_rewards=rewards
    )
    with caplog.at_level("WARNING", logger="carbs.integrations.ray"):
        config = _suggest(searcher, "t0")
    opt = searcher.carbs
    assert opt is not None
    assert [(o.output, o.cost) for o in opt.success_observations] == [(0.5, 30.0), (0.25, 1.0)]
    assert len(opt.failure_observations) == 1  # a reward that is not a finite number
    assert any("give no cost" in r.getMessage() for r in caplog.records)
    assert config not in points and set(opt.outstanding_suggestions) == {"t0"}


def test_add_evaluated_point_records_successes_failures_and_pruned_runs() -> None:
    searcher = CARBSSearcher(_native_params())
    with pytest.raises(RuntimeError, match="metric"):
        searcher.add_evaluated_point({"lr": 1e-3, "depth": 3}, 0.4)
    searcher = CARBSSearcher(_native_params(), metric="loss", mode="min")
    searcher.add_evaluated_point({"lr": 1e-3, "depth": 3}, 0.4, cost=12.0)
    searcher.add_evaluated_point({"lr": 1e-2, "depth": 3}, 9.0, error=True)
    searcher.add_evaluated_point({"lr": 1e-4}, 0.7, pruned=True, intermediate_values=[0.9, 0.8, 0.7])
    opt = searcher.carbs
    assert opt is not None and not opt.outstanding_suggestions
    assert [(o.output, o.cost, o.is_partial) for o in opt.success_observations] == [
        (0.4, 12.0, False), (0.7, 1.0, True)
    ]
    assert len(opt.failure_observations) == 1
    with pytest.raises(ValueError, match="unknown parameter.*'width'"):
        searcher.add_evaluated_point({"width": 3}, 0.1)
    with pytest.raises(ValueError, match="cost must be a number > 0"):
        searcher.add_evaluated_point({"depth": 3}, 0.1, cost=0.0)
    with pytest.raises(ValueError, match="'depth'.*outside the bounds"):
        searcher.add_evaluated_point({"depth": 30}, 0.1)
    assert opt.observation_count == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"evaluated_rewards": [1.0]}, "needs points_to_evaluate"),
        ({"points_to_evaluate": [{"depth": 2}], "evaluated_rewards": [1.0, 2.0]}, "2 values for 1 points"),
        ({"points_to_evaluate": {"depth": 2}}, "must be a list of config dicts"),
        ({"points_to_evaluate": [3]}, r"points_to_evaluate\[0\] must be a config dict"),
        ({"points_to_evaluate": [{"depth": 2}, {"size": 1}]}, r"points_to_evaluate\[1\] names unknown parameter"),
    ],
)
def test_points_to_evaluate_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CARBSSearcher(_native_params(), metric="loss", mode="min", **kwargs)


def test_queued_points_survive_save_and_restore(tmp_path: Path) -> None:
    points = [{"lr": 0.01, "depth": 5}, {"lr": 0.001, "depth": 6}]
    searcher = CARBSSearcher(_native_params(), metric="loss", mode="min", points_to_evaluate=points)
    _suggest(searcher, "p0")
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    restored = CARBSSearcher()
    restored.restore(str(path))
    assert _suggest(restored, "p1") == {"lr": pytest.approx(0.001), "depth": 6}
    assert set(restored.carbs.outstanding_suggestions) == {"p0", "p1"}  # type: ignore[union-attr]


# -- a real Ray Tune run ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    import ray

    # Ray's socket paths must stay short, so not under pytest's tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="carbsray", dir="/tmp")
    # The local cluster runs in a network namespace of its own (only loopback).
    with private_network():
        assert only_loopback()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=temp_dir,
            log_to_driver=False,
            configure_logging=False,
        )
        try:
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


class _RecordingSearcher(CARBSSearcher):
    """Notes how many trials were pending each time a new one was asked for, and the configs."""

    pending_counts: list[int]
    handed_out: list[dict[str, Any] | None]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not hasattr(self, "pending_counts"):
            self.pending_counts, self.handed_out = [], []
        self.pending_counts.append(len(self._live))
        config = super().suggest(trial_id)
        self.handed_out.append(config)
        return config


def test_tuner_runs_concurrent_trials_then_restores_and_continues(
    ray_cluster: Any, tmp_path: Path
) -> None:
    marker = str(tmp_path / "crashed-once")

    def trainable(config: dict[str, Any]) -> None:
        try:  # the first trial to start crashes: errored trials become CARBS failures
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            raise RuntimeError("out of memory")
        loss = (config["x"] - 0.7) ** 2 + 0.05 * config["width"] / 64
        tune.report({"loss": loss, "tokens": float(config["width"])})

    space = {"x": tune.uniform(0.0, 1.0), "width": tune.lograndint(16, 257), "tag": "fixed"}
    searcher = _RecordingSearcher(cost_metric="tokens", carbs_params=CARBSParams(seed=1))
    storage = tmp_path / "results"
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=searcher,
            num_samples=12,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="carbs", storage_path=str(storage), verbose=0),
    )
    grid = tuner.fit()
    results = [grid[i] for i in range(len(grid))]
    assert len(results) == 12
    assert sum(1 for r in results if r.error is not None) == 1
    assert max(searcher.pending_counts) >= 1  # a trial was asked for while another ran
    opt = searcher.carbs
    assert opt is not None and opt.config.better_direction_sign == -1
    assert opt.observation_count == 12 and not opt.outstanding_suggestions
    assert len(opt.failure_observations) == 1 and len(opt.success_observations) == 11
    assert all(o.cost >= 16 for o in opt.success_observations)  # the tokens metric, not seconds
    assert all((r.config or {}).get("tag") == "fixed" for r in results)
    # Tune's best trial is the one CARBS considers best.
    best_metrics = grid.get_best_result().metrics
    assert best_metrics is not None
    assert best_metrics["loss"] == pytest.approx(min(o.output for o in opt.success_observations))

    # Tune saved the searcher with the experiment; a new one picks up from there.
    restored = CARBSSearcher()
    restored.restore_from_dir(str(storage / "carbs"))
    assert restored.carbs is not None and restored.carbs.observation_count == 12
    more = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=restored, num_samples=2, max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(name="carbs_more", storage_path=str(storage), verbose=0),
    ).fit()
    assert len(more) == 2 and all(more[i].error is None for i in range(2))
    assert restored.carbs.observation_count == 14
    assert not restored.carbs.outstanding_suggestions
    assert all((more[i].config or {}).get("tag") == "fixed" for i in range(2))


def test_searcher_runs_under_asha_and_tells_trials_it_stopped_as_partial(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from ray.tune.schedulers import ASHAScheduler

    def trainable(config: dict[str, Any]) -> None:
        for step in range(1, 9):
            tune.report({"loss": (config["x"] - 0.2) ** 2 + 1.0 / step, "step": step})

    searcher = CARBSSearcher(cost_metric="step", carbs_params=CARBSParams(seed=2),
                             time_attr="step", max_t=8)
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0.0, 4.0)},
        tune_config=tune.TuneConfig(
            metric="loss", mode="min", search_alg=searcher, num_samples=10,
            max_concurrent_trials=2,
            scheduler=ASHAScheduler(time_attr="step", max_t=8, grace_period=2, reduction_factor=2),
        ),
        run_config=tune.RunConfig(name="asha", storage_path=str(tmp_path), verbose=0),
    ).fit()
    steps = [grid[i].metrics["step"] for i in range(len(grid))]
    stopped = sum(1 for s in steps if s < 8)
    assert 0 < stopped < len(steps)
    opt = searcher.carbs
    assert opt is not None and opt.observation_count == 10 and not opt.failure_observations
    # Each trial at the cost it reached; the ones ASHA cut short are partial, the full runs not.
    seen = sorted((o.cost, o.is_partial) for o in opt.success_observations)
    assert seen == sorted((float(s), s < 8) for s in steps)


def test_searcher_tells_a_trial_cut_short_below_max_t_as_partial() -> None:
    # The calls Tune makes: on_trial_result for every result it lets continue,
    # then on_trial_complete with the last result (a repeat of the last one
    # passed when the trainable returned by itself).
    def run(searcher: CARBSSearcher, trial_id: str, steps: int, returned: bool) -> None:
        config = searcher.suggest(trial_id)
        assert config is not None
        results = [{"loss": 1.0 / s, "step": s} for s in range(1, steps + 1)]
        for result in results[: steps if returned else steps - 1]:
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, {**results[-1], "done": True})

    searcher = CARBSSearcher(_native_params(), metric="loss", mode="min", cost_metric="step",
                             time_attr="step", max_t=8)
    run(searcher, "cut", 3, returned=False)  # stopped by the scheduler at step 3
    run(searcher, "short", 3, returned=True)  # a schedule of 3 steps, ended by itself
    run(searcher, "full", 8, returned=False)  # stopped at max_t: a full run
    opt = searcher.carbs
    assert opt is not None
    assert [(o.cost, o.is_partial) for o in opt.success_observations] == [
        (3.0, True), (3.0, False), (8.0, False)
    ]
    # Without max_t every last result is a finished run; the setting survives a save.
    plain = CARBSSearcher(_native_params(), metric="loss", mode="min", cost_metric="step")
    run(plain, "cut", 3, returned=False)
    assert plain.carbs is not None and not plain.carbs.success_observations[0].is_partial
    restored = CARBSSearcher()
    restored.set_state(searcher.get_state())
    run(restored, "again", 2, returned=False)
    assert restored.carbs is not None and restored.carbs.success_observations[-1].is_partial
    for bad in (0, -1.0, math.nan, "8", True):
        with pytest.raises(ValueError, match="max_t must be a number > 0"):
            CARBSSearcher(max_t=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_attr must be a non-empty string, got ''"):
        CARBSSearcher(time_attr="")


def test_interrupted_experiment_resumes_with_tuner_restore(
    ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tune turns SIGINT into "save the experiment and stop" unless this is set.
    monkeypatch.delenv("TUNE_DISABLE_SIGINT_HANDLER", raising=False)
    driver, counter = os.getpid(), tmp_path / "started"

    def trainable(config: dict[str, Any]) -> None:
        with open(counter, "a") as f:
            f.write("trial\n")
        if len(counter.read_text().splitlines()) == 4:
            os.kill(driver, signal.SIGINT)  # Ctrl+C while this trial runs
            time.sleep(2)
        tune.report({"loss": (config["x"] - 0.7) ** 2})

    storage = tmp_path / "results"
    first = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=CARBSSearcher(carbs_params=CARBSParams(seed=2, resample_frequency=0)),
            num_samples=8,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="resumable", storage_path=str(storage), verbose=0),
    ).fit()
    assert len(first) < 8
    saved = CARBSSearcher()
    saved.restore_from_dir(str(storage / "resumable"))
    assert saved.carbs is not None and saved.carbs.outstanding_suggestions  # the interrupted trial

    grid = tune.Tuner.restore(str(storage / "resumable"), trainable).fit()
    results = [grid[i] for i in range(len(grid))]
    assert len(results) == 8 and all(r.error is None for r in results)
    assert len({(r.config or {})["x"] for r in results}) == 8  # no point handed out twice
    final = CARBSSearcher()
    final.restore_from_dir(str(storage / "resumable"))
    assert final.carbs is not None and final.carbs.observation_count == 8
    assert not final.carbs.outstanding_suggestions  # the interrupted trials reported on resume


def test_tuner_runs_points_to_evaluate_first_and_learns_from_evaluated_ones(
    ray_cluster: Any, tmp_path: Path
) -> None:
    def trainable(config: dict[str, Any]) -> None:  # _loss itself, which workers cannot import
        loss = (math.log10(config["lr"]) + 2.5) ** 2 + 0.1 * config["depth"]
        tune.report({"loss": loss, "flops": float(config["depth"])})

    points = [{"lr": 0.03, "depth": 6}, {"lr": 2e-4, "depth": 2}]
    searcher = _RecordingSearcher(
        _native_params(),
        metric="loss",
        mode="min",
        cost_metric="flops",
        points_to_evaluate=points,
        carbs_params=CARBSParams(seed=2),
    )
    searcher.add_evaluated_point({"lr": 1e-3, "depth": 1}, _loss({"lr": 1e-3, "depth": 1}), cost=1.0)
    grid = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=4, max_concurrent_trials=1, reuse_actors=True
        ),
        run_config=tune.RunConfig(name="carbs_points", storage_path=str(tmp_path), verbose=0),
    ).fit()
    results = [grid[i] for i in range(len(grid))]
    assert len(results) == 4 and all(r.error is None for r in results)
    assert searcher.handed_out[:2] == [{"lr": pytest.approx(0.03), "depth": 6}, {"lr": pytest.approx(2e-4), "depth": 2}]
    ran = sorted((r.config["depth"], r.config["lr"]) for r in results if r.config)
    assert ran == sorted((c["depth"], c["lr"]) for c in searcher.handed_out if c)
    opt = searcher.carbs
    assert opt is not None and opt.observation_count == 5 and not opt.outstanding_suggestions
    assert sorted(o.cost for o in opt.success_observations)[:2] == [1.0, 1.0]


def _load_example(relative: str) -> ModuleType:
    """Import an example script as a module, to run its ``main`` small."""
    path = Path(__file__).resolve().parent.parent / "examples" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs(ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = _load_example("ray_tune/tune_carbs.py").main(trials=2, storage=str(tmp_path))
    assert len(grid) == 2 and not grid.errors
    assert "Pareto set" in capsys.readouterr().out
