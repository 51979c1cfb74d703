"""The CARBS optimizer: API, validation, state, pending suggestions, determinism."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from carbs import (
    CARBS,
    CARBSParams,
    ChoiceSpace,
    LinearSpace,
    LogitSpace,
    LogSpace,
    ObservationInParam,
    OutstandingSuggestionEstimatorEnum,
    Param,
    SpaceError,
    StateError,
)
from carbs.optimizer import serialization
from carbs.optimizer.config import CostTargetingEnum, ResamplingEnum
from carbs.optimizer.surrogate import SurrogateModel

DATA = Path(__file__).parent / "data"


def make_params() -> list[Param]:
    return [
        Param("lr", LogSpace(min=1e-5, max=1.0, scale=0.5), 1e-3),
        Param("width", LogSpace(min=8, max=1024, is_integer=True, scale=0.5), 64),
        Param("epochs", LinearSpace(min=1, max=100, scale=10, is_integer=True), 5),
        Param("dropout", LogitSpace(min=0.0, max=0.9), 0.1),
        Param("opt", ChoiceSpace(["adam", "sgd", "lion"]), "adam"),
    ]


def objective(p: dict) -> tuple[float, float]:
    """A loss that improves with width and epochs (at a cost) and has a best lr."""
    loss = (
        (math.log10(p["lr"]) + 2.5) ** 2
        + 1.0 / math.sqrt(p["epochs"])
        + 3.0 / math.sqrt(p["width"])
        + (0.0 if p["opt"] == "adam" else 0.2)
        + abs(p["dropout"] - 0.1)
    )
    return loss, p["epochs"] * p["width"] / 64


def run(opt: CARBS, n: int) -> None:
    for _ in range(n):
        s = opt.suggest().suggestion
        loss, cost = objective(s)
        opt.observe(ObservationInParam(input=s, output=loss, cost=cost))


def strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "suggestion_uuid"}


def new(**kw: object) -> CARBS:
    return CARBS(CARBSParams(better_direction_sign=-1, **kw), make_params())  # type: ignore[arg-type]


def test_reference_defaults() -> None:
    c = CARBSParams.paper()
    assert (c.better_direction_sign, c.seed, c.num_random_samples, c.initial_search_radius) == (1, 0, 4, 0.3)
    assert (c.exploration_bias, c.num_candidates_for_suggestion_per_dim, c.resample_frequency) == (1.0, 100, 5)
    assert c.cost_targeting == CostTargetingEnum.CLAMP and c.resampling == ResamplingEnum.FIXED
    assert c.max_cost_growth is None and c.cost_quantile == 0.5 and c.min_success_probability == 0.0
    assert c.cheap_probe_fraction == 0.0 and not c.is_pareto_cheap_grouping_within_noise
    assert c.max_suggestion_cost is None and c.min_pareto_cost_fraction == 0.2
    assert c.is_pareto_group_selection_conservative and c.is_expected_improvement_pareto_value_clamped
    assert c.outstanding_suggestion_estimator == OutstandingSuggestionEstimatorEnum.THOMPSON
    assert not c.is_wandb_logging_enabled and not c.is_saved_on_every_observation


def test_suggestions_are_valid_and_in_bounds() -> None:
    opt = new(seed=3)
    space = opt.search_space
    for _ in range(25):
        out = opt.suggest()
        s = out.suggestion
        assert "suggestion_uuid" in s and s["suggestion_uuid"] in opt.outstanding_suggestions
        values = strip(s)
        space.to_basic(values)  # raises if out of bounds or not representable
        assert isinstance(values["width"], int) and isinstance(values["epochs"], int)
        assert values["opt"] in ("adam", "sgd", "lion")
        loss, cost = objective(values)
        opt.observe(ObservationInParam(input=s, output=loss, cost=cost))
    assert not opt.outstanding_suggestions
    assert opt.observation_count == 25
    kinds = {opt.suggest().log["suggestion_kind"] for _ in range(1)}
    assert kinds <= {"model", "resample"}


def test_random_phase_samples_around_the_center() -> None:
    opt = new(num_random_samples=50)
    rows = np.stack([opt.search_space.to_basic(strip(opt.suggest().suggestion)) for _ in range(40)])
    spread = np.std(rows[:, :4], axis=0)
    assert np.all(spread < 0.5) and np.all(spread > 0.1)


@pytest.mark.parametrize(
    ("obs", "match"),
    [
        (ObservationInParam({"lr": 1e-3}, 1.0), r"missing parameter\(s\) \['width', 'epochs', 'dropout', 'opt'\]"),
        (
            ObservationInParam({"lr": 1e-3, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adam", "bs": 3}, 1.0),
            r"unknown parameter\(s\) \['bs'\]",
        ),
        (
            ObservationInParam({"lr": 5.0, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adam"}, 1.0),
            r"parameter 'lr': value 5.0 is outside the bounds",
        ),
        (
            ObservationInParam({"lr": 1e-3, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adam"}, 1.0, cost=0),
            r"observation.cost must be finite and > 0 \(or 0 for a failure\), got 0",
        ),
        (
            ObservationInParam({"lr": 1e-3, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adam"}, 1.0, cost=math.inf),
            r"observation.cost must be finite and > 0 \(or 0 for a failure\), got inf",
        ),
        (
            ObservationInParam({"lr": 1e-3, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adam"}, "bad"),  # type: ignore[arg-type]
            r"observation.output must be a number, got 'bad'",
        ),
        (
            ObservationInParam({"lr": 1e-3, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adamw"}, 1.0),
            r"parameter 'opt': value 'adamw' is not one of the choices",
        ),
    ],
)
def test_bad_observations_are_rejected_with_the_field_named(obs: ObservationInParam, match: str) -> None:
    opt = new()
    with pytest.raises(ValueError, match=match):
        opt.observe(obs)
    assert opt.observation_count == 0


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"CARBSParams.better_direction_sign must be 1 \(maximise\) or -1"):
        CARBSParams(better_direction_sign=0)
    with pytest.raises(ValueError, match=r"CARBSParams.initial_search_radius must be a number in \(0, 1e6\], got 1e\+200"):
        CARBSParams(initial_search_radius=1e200)
    with pytest.raises(ValueError, match=r"CARBSParams.initial_search_radius must be a number in \(0, 1e6\], got -1"):
        CARBSParams(initial_search_radius=-1)
    with pytest.raises(ValueError, match="CARBSParams.max_suggestion_cost must be None or a finite number > 0"):
        CARBSParams(max_suggestion_cost=0)
    assert CARBSParams(outstanding_suggestion_estimator="MEAN").outstanding_suggestion_estimator.value == "MEAN"  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match="duplicate parameter names"):
        CARBS(CARBSParams(), [Param("a", LinearSpace(), 0), Param("a", LinearSpace(), 0)])
    with pytest.raises(SpaceError, match="search center"):
        new().set_search_center({"lr": 1e-3})


def test_non_finite_outputs_and_failures_are_failures() -> None:
    opt = new()
    for output, failed in ((math.nan, False), (math.inf, False), (0.5, True)):
        s = opt.suggest().suggestion
        opt.observe(ObservationInParam(s, output, 1.0, is_failure=failed))
    assert len(opt.failure_observations) == 3 and not opt.success_observations
    assert opt.cumulative_cost == 0 and opt.total_cost == 3


def test_unknown_suggestion_uuid_warns(caplog: pytest.LogCaptureFixture) -> None:
    opt = new()
    with caplog.at_level(logging.WARNING):
        opt.forget_suggestion({"suggestion_uuid": "nope"})
        s = strip(opt.suggest().suggestion)
        s["suggestion_uuid"] = "also-unknown"
        opt.observe(ObservationInParam(s, 1.0, 1.0))
    assert "unknown suggestion_uuid 'nope'" in caplog.text
    assert opt.observation_count == 1


def test_observe_does_not_mutate_the_callers_dict() -> None:
    opt = new()
    s = opt.suggest().suggestion
    copy = dict(s)
    opt.observe(ObservationInParam(s, 1.0, 1.0))
    assert s == copy


def test_same_seed_same_suggestions_and_no_global_rng_side_effects() -> None:
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    a, b = new(seed=7), new(seed=7)
    random.seed(123)
    np.random.seed(123)
    run(a, 12)
    run(b, 12)
    assert (random.random(), np.random.rand()) == expected
    assert strip(a.suggest().suggestion) == strip(b.suggest().suggestion)
    c = new(seed=8)
    run(c, 12)
    assert strip(c.suggest().suggestion) != strip(a.suggest().suggestion)


def test_batch_suggestions_differ_and_are_pending() -> None:
    opt = new(resample_frequency=0)
    run(opt, 12)
    batch = opt.suggest_batch(4)
    points = [tuple(sorted(strip(b.suggestion).items())) for b in batch]
    assert len(set(points)) == 4
    assert len(opt.outstanding_suggestions) == 4
    with pytest.raises(ValueError, match="suggest_batch: n must be a positive integer, got 0"):
        opt.suggest_batch(0)


@pytest.mark.parametrize("estimator", list(OutstandingSuggestionEstimatorEnum))
def test_pending_estimators_spread_parallel_suggestions(estimator: OutstandingSuggestionEstimatorEnum) -> None:
    opt = new(resample_frequency=0, outstanding_suggestion_estimator=estimator, seed=1)
    run(opt, 15)
    rows = [opt.search_space.to_basic(strip(opt.suggest().suggestion)) for _ in range(4)]
    assert len({r.tobytes() for r in rows}) == 4


def test_resampling_reruns_a_pareto_point() -> None:
    opt = new(resample_frequency=3, resampling="FIXED")
    kinds = []
    for _ in range(20):
        out = opt.suggest()
        kinds.append(out.log["suggestion_kind"])
        loss, cost = objective(strip(out.suggestion))
        opt.observe(ObservationInParam(out.suggestion, loss, cost))
    assert kinds.count("resample") >= 3
    assert max(p.sample_count for p in opt.get_pareto_set(is_conservative=False)) >= 2


def test_max_suggestion_cost_excludes_expensive_candidates() -> None:
    opt = new(max_suggestion_cost=20.0, resample_frequency=0)
    run(opt, 20)
    costs = []
    for _ in range(5):
        out = opt.suggest()
        costs.append(objective(strip(out.suggestion))[1])
        assert out.log["suggestion_meta/cost_estimate"] <= 20.0
        opt.observe(ObservationInParam(out.suggestion, *objective(strip(out.suggestion))))
    assert np.median(costs) < 40


def test_impossible_cost_ceiling_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    opt = new(max_suggestion_cost=1e-6, resample_frequency=0)
    run(opt, 8)
    with caplog.at_level(logging.WARNING):
        out = opt.suggest()
    assert "is under the ceiling 1e-06" in caplog.text
    assert out.log["suggestion_kind"] == "model"


def test_model_failure_falls_back_to_sampling(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    opt = new(resample_frequency=0)
    run(opt, 6)

    def boom(*_: object, **__: object) -> None:
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(SurrogateModel, "fit_observations", boom)
    with caplog.at_level(logging.WARNING):
        out = opt.suggest()
    assert out.log["suggestion_kind"] == "fallback"
    assert "surrogate models could not be used" in caplog.text
    opt.search_space.to_basic(strip(out.suggestion))


def test_degenerate_data_never_breaks_suggest() -> None:
    opt = new(num_random_samples=1, resample_frequency=0)
    s = opt.suggest().suggestion
    opt.observe(ObservationInParam(s, 1.0, 1.0))
    for _ in range(6):  # one observation, then identical outputs and costs
        s = opt.suggest().suggestion
        opt.observe(ObservationInParam(s, 1.0, 1.0))
    opt.search_space.to_basic(strip(opt.suggest().suggestion))


def test_failure_model_steers_away_from_failing_region() -> None:
    # Runs with width > 256 fail (out of memory); the best outputs are at large width.
    params = [Param("width", LogSpace(min=8, max=4096, is_integer=True, scale=0.5), 64), Param("lr", LogSpace(min=1e-4, max=1e-1, scale=0.5), 1e-2)]
    opt = CARBS(CARBSParams(better_direction_sign=-1, seed=0, resample_frequency=0), params)
    widths = []
    for i in range(40):
        s = opt.suggest().suggestion
        if i >= 25:
            widths.append(s["width"])
        failed = s["width"] > 256
        opt.observe(ObservationInParam(s, 10.0 / math.sqrt(s["width"]) + abs(math.log10(s["lr"]) + 2), 1.0 + s["width"] / 64, is_failure=failed))
    assert opt.failure_observations, "the search should have hit the failing region"
    assert np.mean(np.array(widths) > 256) < 0.4


def test_thread_safe_suggest_and_observe() -> None:
    opt = new(resample_frequency=0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(6):
                s = opt.suggest().suggestion
                opt.observe(ObservationInParam(s, *objective(strip(s))))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert opt.observation_count == 24 and not opt.outstanding_suggestions


def test_pareto_set_moves_to_higher_cost() -> None:
    paper = CARBS(CARBSParams.paper(better_direction_sign=-1, seed=2), make_params())
    run(paper, 15)
    early = max(p.cost for p in paper.get_pareto_set())
    run(paper, 35)
    assert max(p.cost for p in paper.get_pareto_set()) > 2 * early
    # Aiming at levels across the front grows it more slowly but keeps it wide.
    opt = new(seed=2)
    run(opt, 50)
    front = opt.get_pareto_set()
    assert len(front) >= 5
    assert max(p.cost for p in front) / min(p.cost for p in front) > 10


def test_state_round_trip_resumes_identically(tmp_path: Path) -> None:
    opt = new(seed=4)
    run(opt, 10)
    opt.suggest_batch(2)
    path = tmp_path / "state.json"
    opt.save_to_file(path)
    loaded = CARBS.load_from_file(path)
    assert json.loads(path.read_text())["version"] == 1
    assert loaded.observation_count == 10 and len(loaded.outstanding_suggestions) == 2
    assert loaded.cumulative_cost == pytest.approx(opt.cumulative_cost)
    assert strip(loaded.suggest().suggestion) == strip(opt.suggest().suggestion)
    again = CARBS.load_from_string(opt.serialize())
    assert CARBS.load_from_string(again.serialize()).get_state_dict() == again.get_state_dict()
    assert [o.output for o in again.success_observations] == [o.output for o in opt.success_observations]
    assert set(again.outstanding_suggestions) == set(opt.outstanding_suggestions)


def test_state_files_from_version_1_keep_loading() -> None:
    opt = CARBS.load_from_file(DATA / "state_v1.json")
    assert opt.observation_count == 6 and len(opt.failure_observations) == 1
    assert [p.name for p in opt.params] == ["lr", "width", "opt"]
    opt.search_space.to_basic(strip(opt.suggest().suggestion))


def test_a_state_with_stopped_runs_is_version_2_which_a_version_1_reader_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opt = new(seed=3)
    run(opt, 5)
    finished_only = json.loads(opt.serialize())
    s = opt.suggest().suggestion
    opt.observe(ObservationInParam(s, *objective(strip(s)), is_partial=True))
    with_stopped = json.loads(opt.serialize())
    assert finished_only["version"] == 1 and with_stopped["version"] == 2
    assert not any("is_partial" in o for o in finished_only["success_observations"])
    assert CARBS.load_state_dict(with_stopped).success_observations[-1].is_partial
    # A carbs that knows only version 1 keeps reading states of finished runs only,
    # and refuses the one whose stopped run it would take as finished.
    monkeypatch.setattr(serialization, "FORMAT_VERSION", 1)
    assert CARBS.load_state_dict(finished_only).observation_count == 5
    with pytest.raises(StateError, match="format version 2 is newer than this package supports"):
        CARBS.load_state_dict(with_stopped)


def test_a_version_1_state_that_marks_stopped_runs_keeps_them_stopped() -> None:
    # Written by the releases that had is_partial before the version was bumped for it.
    state = json.loads((DATA / "state_v1.json").read_text())
    state["success_observations"][0]["is_partial"] = True
    opt = CARBS.load_state_dict(state)
    assert [o.is_partial for o in opt.success_observations] == [True] + [False] * 4
    assert json.loads(opt.serialize())["version"] == 2


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x80\x04\x95 pickled", "pickled"),
        (b"PK\x03\x04 torch zip", "pickled"),
        (b'{"format": "carbs.state", "version": 99}', "format version 99 is newer"),
        (b'{"format": "something"}', "not a CARBS state"),
        (b'{"format": "carbs.state", "version": 1', "not valid JSON"),
        (b'{"format": "carbs.state", "version": 1, "config": {}}', "malformed"),
    ],
)
def test_bad_state_files_are_clear_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=match):
        CARBS.load_from_file(path)


def test_autosave_on_every_observation(tmp_path: Path) -> None:
    opt = new(is_saved_on_every_observation=True, checkpoint_dir=str(tmp_path))
    run(opt, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carbs_1obs.json", "carbs_2obs.json"]


def test_warm_start_with_an_added_parameter(tmp_path: Path) -> None:
    prior = CARBS(CARBSParams(better_direction_sign=-1), make_params()[:3])
    for _ in range(6):
        s = prior.suggest().suggestion
        prior.observe(ObservationInParam(s, *objective({**strip(s), "dropout": 0.1, "opt": "adam"})))
    path = tmp_path / "prior.json"
    prior.save_to_file(path)
    opt = new()
    opt.warm_start(path, is_prior_observation_valid=True, added_parameters={"dropout": 0.2, "opt": "sgd"})
    assert len(opt.success_observations) == 6
    center = opt.search_space.from_basic(opt.search_center_in_basic)[0]
    assert center["opt"] == "sgd" and center["dropout"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"pass added_parameters for \['dropout', 'opt'\]"):
        new().warm_start(path, is_prior_observation_valid=True)


def test_initialize_from_observations_centers_on_the_best() -> None:
    opt = new()
    base = {"lr": 1e-3, "width": 64, "epochs": 5, "dropout": 0.1, "opt": "adam"}
    opt.initialize_from_observations(
        [ObservationInParam({**base, "lr": 1e-4}, 3.0, 1.0), ObservationInParam({**base, "lr": 3e-3}, 1.0, 1.0)]
    )
    assert opt.search_space.from_basic(opt.search_center_in_basic)[0]["lr"] == pytest.approx(3e-3)


def test_unreachable_integer_neighbour_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        CARBS(CARBSParams(), [Param("layers", LinearSpace(min=1, max=10, is_integer=True, scale=0.5), 3)])
    assert "parameter 'layers': one integer step" in caplog.text


def test_wandb_flag_without_wandb_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "carbs.integrations.wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'carbs-tuner\[wandb\]'"):
        CARBS(CARBSParams(is_wandb_logging_enabled=True), make_params())
