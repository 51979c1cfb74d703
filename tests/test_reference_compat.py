"""Code written for the reference implementation (imbue-ai/carbs) runs here unchanged.

The tests use the reference's import paths and call patterns: its own test
module's (``carbs.carbs``, ``carbs.utils``), its demo notebook's
(``from carbs import ParamDictType``, the observation logs), and those of
``wandb-carbs``, which drives the reference from W&B sweeps through private
methods.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carbs import LogitSpace, ObservationInParam, ParamDictType
from carbs.carbs import CARBS
from carbs.utils import CARBSParams, LinearSpace, LogSpace, Param

# Every public name the reference's carbs/utils.py defines (and carbs re-exports).
REFERENCE_UTILS_NAMES = [
    "CARBSParams", "CARBS_CHECKPOINT_PREFIX", "CARBS_CHECKPOINT_SUFFIX", "CategoricalTuple",
    "LinearSpace", "LogSpace", "LogitSpace", "ObservationGroup", "ObservationInBasic",
    "ObservationInParam", "ObserveOutput", "OutstandingSuggestionEstimatorEnum", "Param",
    "ParamDictType", "ParamSpace", "ParamType", "RealNumberSpace", "SUGGESTION_ID_DICT_KEY",
    "SuggestOutput", "SuggestionInBasic", "SuggestionRedistributionMethodEnum",
    "SurrogateModelParams", "WandbLoggingParams", "add_dict_key_prefix",
    "aggregate_logical_and_across_dim", "assert_empty", "expected_improvement",
    "get_checkpoint_obs_count", "get_pareto_curve_plot", "get_pareto_groups",
    "get_pareto_groups_conservative", "group_observations", "load_checkpoint_from_wandb_run",
    "load_latest_checkpoint_from_wandb_run", "load_observations_from_wandb_run", "log_norm_cdf",
    "observation_group_cost", "observation_group_output", "ordered_dict_index",
    "pareto_area_from_groups", "probability_of_improvement",
]  # fmt: skip


@pytest.fixture
def carbs_config() -> CARBSParams:
    return CARBSParams(is_wandb_logging_enabled=False, is_saved_on_every_observation=False)


@pytest.fixture
def params() -> list[Param]:
    return [
        Param("p1", LogSpace(scale=1), 1e-2),
        Param("p2", LinearSpace(scale=2), 0),
        Param("p3", LogitSpace(scale=0.5), 0.5),
    ]


@pytest.fixture
def carbs_instance(carbs_config: CARBSParams, params: list[Param]) -> CARBS:
    return CARBS(carbs_config, params)


# -- names and module paths --------------------------------------------------------------
@pytest.mark.parametrize("module", ["carbs", "carbs.utils", "carbs.carbs"])
def test_every_reference_utils_name_is_importable(module: str) -> None:
    mod = __import__(module, fromlist=["_"])
    missing = [n for n in REFERENCE_UTILS_NAMES if not hasattr(mod, n)]
    assert missing == []
    star: dict[str, Any] = {}
    exec(f"from {module} import *", star)
    assert set(REFERENCE_UTILS_NAMES) <= set(star)


def test_reference_module_paths_name_the_same_objects() -> None:
    import carbs
    import carbs.model
    import carbs.utils

    assert carbs.carbs.CARBS is carbs.CARBS
    assert carbs.utils.Param is carbs.Param and carbs.ParamDictType is carbs.utils.ParamDictType
    assert carbs.model.SurrogateModelParams is carbs.SurrogateModelParams
    assert isinstance(LinearSpace(), carbs.ParamSpace) and isinstance(LogitSpace(), carbs.RealNumberSpace)


# -- the reference's own test patterns --------------------------------------------------------
def test_suggest_one(carbs_instance: CARBS) -> None:
    start = len(carbs_instance.outstanding_suggestions)
    suggestion = carbs_instance.suggest()
    assert len(carbs_instance.outstanding_suggestions) == start + 1
    assert "suggestion_uuid" in suggestion.suggestion
    for param in carbs_instance.params:
        assert param.name in suggestion.suggestion


def test_suggest_observe_ten(carbs_instance: CARBS) -> None:
    for i in range(10):
        suggestion = carbs_instance.suggest()
        carbs_instance.observe(ObservationInParam(input=suggestion.suggestion, output=i, cost=i + 1))
    assert len(carbs_instance.outstanding_suggestions) == 0
    assert len(carbs_instance.success_observations) == 10


def test_observe_success_and_failure_and_forget(carbs_instance: CARBS) -> None:
    center = {x.name: x.search_center for x in carbs_instance.params}
    carbs_instance.observe(ObservationInParam(input=dict(center), output=1, cost=1))
    carbs_instance.observe(ObservationInParam(input=dict(center), output=1, cost=1, is_failure=True))
    assert (len(carbs_instance.success_observations), len(carbs_instance.failure_observations)) == (1, 1)
    suggestion = carbs_instance.suggest()
    carbs_instance.forget_suggestion(suggestion.suggestion)
    assert carbs_instance.outstanding_suggestions == {}


def test_demo_notebook_loop_reads_the_observation_logs() -> None:
    def run_test_fn(p: ParamDictType) -> float:
        assert isinstance(p["learning_rate"], float) and isinstance(p["epochs"], int)
        return (math.log10(p["learning_rate"]) + 3) ** 2 * 512 / p["epochs"]

    opt = CARBS(
        CARBSParams(better_direction_sign=-1, is_wandb_logging_enabled=False, resample_frequency=0),
        [
            Param(name="learning_rate", space=LogSpace(scale=0.5), search_center=1e-4),
            Param(name="momentum", space=LogitSpace(), search_center=0.9),
            Param(name="epochs", space=LogSpace(is_integer=True, min=2, max=512), search_center=10),
        ],
    )
    best = math.inf
    for i in range(6):
        suggestion = opt.suggest().suggestion
        value = run_test_fn(suggestion)
        best = min(best, value)
        logs = opt.observe(ObservationInParam(input=suggestion, output=value, cost=suggestion["epochs"])).logs
        assert logs["observation_count"] == i + 1
        assert logs["observation/learning_rate"] == suggestion["learning_rate"]
        assert logs["observation/epochs"] == suggestion["epochs"]
        assert logs["observation/output"] == value
        assert logs["best_observation/output"] == best
        assert "best_observation/learning_rate" in logs and "best_observation/epochs" in logs


# -- what wandb-carbs does with a CARBS instance --------------------------------------------
def _wandb_carbs_suggestion_from_run(opt: CARBS, config: dict[str, Any], run_id: str) -> dict[str, Any]:
    suggestion = {param.name: config.get(param.name, param.search_center) for param in opt.params}
    suggestion["suggestion_uuid"] = run_id
    return suggestion


def test_wandb_carbs_replays_other_runs_as_pending_then_observed(carbs_config: CARBSParams, params: list[Param]) -> None:
    from carbs import SuggestionInBasic

    opt = CARBS(carbs_config, params)
    opt._set_seed(int(time.time()))
    runs = [("run-a", {"p1": 0.02, "p2": 1.0, "p3": 0.4}, "success", 0.5, 3.0),
            ("run-b", {"p1": 0.005}, "failure", 0.0, 0.0),
            ("run-c", {"p1": 0.01, "p2": -1.0, "p3": 0.6}, "running", 0.0, 0.0)]  # fmt: skip
    for run_id, config, state, objective, cost in runs:
        suggestion = _wandb_carbs_suggestion_from_run(opt, config, run_id)
        basic = opt._param_space_real_to_basic_space_real(suggestion)
        returned = opt._remember_suggestion(suggestion, SuggestionInBasic(basic), run_id)
        assert returned is suggestion and suggestion["suggestion_uuid"] == run_id
        np.testing.assert_allclose(opt.outstanding_suggestions[run_id].real_number_input, basic)
        # The basic row is the point's own: mapping it back gives the run's values.
        back = opt._basic_space_to_param_space(basic)
        assert back == pytest.approx({k: v for k, v in suggestion.items() if k != "suggestion_uuid"})
        if state == "running":
            continue
        # A failed run reports no cost: wandb-carbs passes 0 for it.
        opt.observe(ObservationInParam(input=suggestion, output=objective, cost=cost,
                                       is_failure=state == "failure"))  # fmt: skip
    assert list(opt.outstanding_suggestions) == ["run-c"]
    assert (len(opt.success_observations), len(opt.failure_observations)) == (1, 1)
    assert CARBS.load_from_string(opt.serialize()).failure_observations[0].cost == 0.0
    with pytest.raises(ValueError, match="observation.cost"):  # a success needs a real cost
        opt.observe(ObservationInParam(input={"p1": 0.01, "p2": 0, "p3": 0.5}, output=1.0, cost=0))
    # run-b had only p1 in its config: the others were taken at their search centers.
    failed = opt._basic_space_to_param_space(opt.failure_observations[0].real_number_input)
    assert failed == pytest.approx({"p1": 0.005, "p2": 0.0, "p3": 0.5})


def test_wandb_carbs_recovers_from_a_failed_suggest_by_popping_observations(
    carbs_config: CARBSParams, params: list[Param]
) -> None:
    opt = CARBS(carbs_config, params)
    for i in range(6):
        s = opt.suggest().suggestion
        opt.observe(ObservationInParam(input=s, output=float(i), cost=1.0 + i))
    opt.success_observations.pop(2)
    assert opt.observation_count == 5
    assert set(opt.suggest().suggestion) == {"p1", "p2", "p3", "suggestion_uuid"}


def test_set_seed_reseeds_the_optimizer_alone(carbs_config: CARBSParams, params: list[Param]) -> None:
    import random

    state = random.getstate()
    reseeded = CARBS(carbs_config, params)
    reseeded._set_seed(1234)
    assert random.getstate() == state  # global generators are not touched
    fresh = CARBS(CARBSParams(seed=1234, is_wandb_logging_enabled=False), params)
    other = CARBS(carbs_config, params)
    picks = [(o.suggest().suggestion, o) for o in (reseeded, fresh, other)]
    values = [{k: v for k, v in s.items() if k != "suggestion_uuid"} for s, _ in picks]
    assert values[0] == values[1] and values[0] != values[2]
    assert carbs_config.seed == 0  # the caller's settings object is left alone


def test_params_and_spaces_by_name(carbs_instance: CARBS, params: list[Param]) -> None:
    assert carbs_instance.params == params
    assert carbs_instance.param_space_by_name == {p.name: p.space for p in params}
    assert list(carbs_instance._real_number_space_by_name) == ["p1", "p2", "p3"]


def test_remember_suggestion_checks_the_row_shape(carbs_instance: CARBS) -> None:
    from carbs import SuggestionInBasic

    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        carbs_instance._remember_suggestion({}, SuggestionInBasic(np.zeros(2)), "x")
    with pytest.raises(ValueError, match="p2"):
        carbs_instance._param_space_real_to_basic_space_real({"p1": 0.1, "p3": 0.5})


# -- the surrogate model module ----------------------------------------------------------------
def test_surrogate_model_fits_and_predicts_with_the_reference_calls(params: list[Param]) -> None:
    from carbs.model import SurrogateModel

    opt = CARBS(CARBSParams(better_direction_sign=-1, num_random_samples=20), params)
    for _ in range(20):
        s = opt.suggest().suggestion
        loss = (math.log10(s["p1"]) + 2) ** 2 + 0.1 * s["p2"] ** 2
        opt.observe(ObservationInParam(input=s, output=loss, cost=1.0 + s["p3"]))
    model = opt.get_surrogate_model()
    assert isinstance(model, SurrogateModel)
    model.fit_observations(opt.success_observations)
    model.fit_failures(opt.success_observations, opt.failure_observations)
    model.fit_pareto_set([o for g in opt._get_pareto_groups(True) for o in g])
    X = np.stack([o.real_number_input for o in opt.success_observations])
    out = model.observe_surrogate(X)
    truth = np.array([o.output for o in opt.success_observations])
    assert np.corrcoef(out.target_estimate, truth)[0, 1] > 0.9
    costs = np.array([o.cost for o in opt.success_observations])
    assert np.corrcoef(out.cost_estimate, costs)[0, 1] > 0.9
    assert out.pareto_surrogate is not None and out.pareto_estimate is not None
    assert np.all(out.success_probability == 1.0) and np.all(out.target_var >= 0)
    assert math.isfinite(model.get_pareto_surrogate_for_cost(1.5))


# -- helpers in carbs.utils ---------------------------------------------------------------------
def test_acquisition_helpers_mean_what_they_say() -> None:
    from carbs import expected_improvement, log_norm_cdf, probability_of_improvement

    # EI of N(0, 1) over 0 is phi(0); with bias b it is EI over b.
    assert expected_improvement(np.array([0.0]), np.array([1.0]), np.array([0.0]), 0.0)[0] == pytest.approx(
        1 / math.sqrt(2 * math.pi)
    )
    rng = np.random.default_rng(0)
    draws = rng.normal(0.3, 2.0, 400_000)
    mc = np.maximum(draws - 0.5 - 0.2, 0).mean()
    assert expected_improvement(np.array([0.3]), np.array([4.0]), np.array([0.5]), 0.2)[0] == pytest.approx(mc, rel=0.01)
    assert probability_of_improvement(np.array([1.0]), np.array([1.0]), np.array([0.0]), 1)[0] == pytest.approx(0.8413, abs=1e-4)
    assert probability_of_improvement(np.array([1.0]), np.array([1.0]), np.array([0.0]), -1)[0] == pytest.approx(0.1587, abs=1e-4)
    assert log_norm_cdf(np.array([0.0]))[0] == pytest.approx(math.log(0.5))
    assert log_norm_cdf(np.array([-40.0]))[0] == pytest.approx(-804.608, abs=1e-2)


def test_small_helpers() -> None:
    from carbs import (
        add_dict_key_prefix,
        aggregate_logical_and_across_dim,
        assert_empty,
        ordered_dict_index,
    )

    assert add_dict_key_prefix({"a": 1}, "x/") == {"x/a": 1}
    assert aggregate_logical_and_across_dim(np.array([[True, True], [True, False]])).tolist() == [True, False]
    assert_empty([])
    with pytest.raises(AssertionError, match="left over"):
        assert_empty([1], "left over")
    assert ordered_dict_index(OrderedDict(a=1, b=2), "b") == 1
    with pytest.raises(KeyError):
        ordered_dict_index(OrderedDict(a=1), "z")


def test_pareto_group_functions_follow_the_reference_docstring_example() -> None:
    from carbs import (
        ObservationInBasic,
        get_pareto_groups,
        get_pareto_groups_conservative,
        group_observations,
        observation_group_cost,
        observation_group_output,
        pareto_area_from_groups,
    )

    def obs(x: float, output: float, cost: float) -> ObservationInBasic:
        return ObservationInBasic(np.array([x]), output, cost)

    observations = [obs(0, 0, 1), obs(0, 1, 1), obs(1, 0.6, 2), obs(2, 0.55, 3), obs(2, 0.75, 3), obs(3, 0.8, 4)]
    groups = group_observations(observations)
    assert sorted(len(g) for g in groups) == [1, 1, 2, 2]
    by_x = {float(g[0].real_number_input[0]): g for g in groups}
    assert observation_group_output(by_x[0]) == 0.5 and observation_group_cost(by_x[2]) == 3
    plain = get_pareto_groups(groups, 0.2, 1)
    careful = get_pareto_groups_conservative(groups, 0.2, 1)
    assert [float(g[0].real_number_input[0]) for g in plain] == [0, 1, 2, 3]
    assert [float(g[0].real_number_input[0]) for g in careful] == [0, 2, 3]
    assert isinstance(plain, tuple)
    # Staircase area: 0.5 * (3 - 1) + 0.65 * (4 - 3).
    assert pareto_area_from_groups(careful) == pytest.approx(1.65)


def test_pareto_curve_plot_is_saved_under_the_observation_count(tmp_path: Path, carbs_instance: CARBS) -> None:
    pytest.importorskip("matplotlib")
    from carbs import get_pareto_curve_plot

    for i in range(5):
        s = carbs_instance.suggest().suggestion
        carbs_instance.observe(ObservationInParam(input=s, output=float(i), cost=1.0 + i))
    groups = carbs_instance._get_pareto_groups(True)
    path = get_pareto_curve_plot(carbs_instance.success_observations, groups, str(tmp_path), obs_count=5)
    assert path == str(tmp_path / "pareto_curve_5.png") and Path(path).stat().st_size > 1000
    assert get_pareto_curve_plot(carbs_instance.success_observations, groups) is None


def test_checkpoint_names_match_what_observe_writes(tmp_path: Path, params: list[Param]) -> None:
    from carbs import get_checkpoint_obs_count

    opt = CARBS(CARBSParams(is_saved_on_every_observation=True, checkpoint_dir=str(tmp_path)), params)
    for i in range(3):
        opt.observe(ObservationInParam(input=opt.suggest().suggestion, output=float(i), cost=1.0))
    counts = sorted(get_checkpoint_obs_count(p.name) for p in tmp_path.iterdir())
    assert counts == [1, 2, 3]
    with pytest.raises(ValueError, match="carbs_<count>obs.json"):
        get_checkpoint_obs_count("model.pt")


class _FakeRun:
    def __init__(self, history: Any, files: list[str]) -> None:
        self._history = history
        self._files = files

    def history(self) -> Any:
        return self._history

    def files(self) -> list[Any]:
        return [types.SimpleNamespace(name=n) for n in self._files]


def _fake_wandb(monkeypatch: pytest.MonkeyPatch, run: _FakeRun, restored: list[tuple[str, str, str]]) -> None:
    module = types.ModuleType("wandb")

    class Api:
        def run(self, path: str) -> _FakeRun:
            assert path == "team/proj/abc"
            return run

    def restore(name: str, run_path: str, replace: bool, root: str) -> Any:
        restored.append((name, run_path, root))
        target = Path(root) / name
        target.write_text("{}")
        return open(target)  # wandb.restore returns an open file

    module.Api = Api  # type: ignore[attr-defined]
    module.restore = restore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", module)


def test_observations_round_trip_through_the_logged_rows(
    monkeypatch: pytest.MonkeyPatch, carbs_instance: CARBS
) -> None:
    pd = pytest.importorskip("pandas")
    from carbs import load_observations_from_wandb_run

    rows, observed = [], []
    for i in range(6):
        s = carbs_instance.suggest().suggestion
        failed = i == 3
        obs = ObservationInParam(input=s, output=float(i), cost=2.0 + i, is_failure=failed)
        rows.append(carbs_instance.observe(obs).logs)
        if not failed:
            observed.append(({k: v for k, v in s.items() if k != "suggestion_uuid"}, float(i), 2.0 + i))
    _fake_wandb(monkeypatch, _FakeRun(pd.DataFrame(rows), []), [])
    loaded = load_observations_from_wandb_run("team/proj/abc", add_params={"extra": 7})
    assert [(o.input, o.output, o.cost) for o in loaded] == [
        ({**values, "extra": 7}, output, cost) for values, output, cost in observed
    ]


def test_latest_checkpoint_is_downloaded_and_reference_pickles_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from carbs import load_latest_checkpoint_from_wandb_run

    restored: list[tuple[str, str, str]] = []
    run = _FakeRun(None, ["carbs_9obs.json", "carbs_10obs.json", "config.yaml", "carbs_2obs.json"])
    _fake_wandb(monkeypatch, run, restored)
    path = load_latest_checkpoint_from_wandb_run("team/proj/abc", temp_dir=str(tmp_path))
    assert path == str(tmp_path / "carbs_10obs.json") and restored == [("carbs_10obs.json", "team/proj/abc", str(tmp_path))]
    _fake_wandb(monkeypatch, _FakeRun(None, ["carbs_3obs.pt"]), restored)
    with pytest.raises(FileNotFoundError, match="load_observations_from_wandb_run"):
        load_latest_checkpoint_from_wandb_run("team/proj/abc")
