"""Property-based fuzzing of every input a user or a file can hand to carbs.

Search-space definitions, observations, optimizer state files and sweep
files are generated at random, mostly wrong. Each must either be accepted as
something valid (checked) or rejected with a ``ValueError``/``TypeError``
whose message names the offending field; never another exception, never
silent acceptance of garbage, never code execution.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbs import (
    CARBS,
    SUGGESTION_ID_DICT_KEY,
    CARBSParams,
    ChoiceSpace,
    LinearSpace,
    LogitSpace,
    LogSpace,
    ObservationInParam,
    Param,
    SpaceError,
    StateError,
)
from carbs.optimizer.space import ParamSpace, ParamValue, space_from_dict
from carbs.sweep_config import SweepConfigError, load_sweep_config, parse_sweep_config

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def _in_a_scratch_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Mutated states can switch on checkpointing (into a relative ``checkpoint_dir``):
    keep those files out of the working directory."""
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("fuzz-cwd"))
    try:
        yield
    finally:
        os.chdir(cwd)

# Values a careless or hostile file can contain (JSON allows arbitrarily large ints).
HUGE_INT = st.integers(min_value=10**309, max_value=10**400) | st.integers(max_value=-(10**309), min_value=-(10**400))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["inf", "-inf", "nan", "1e-3", "0x10", ""]),
)
# What a JSON or YAML file can hold.
JSON_HOSTILE = st.one_of(
    SCALARS,
    HUGE_INT,
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2),
)
# What Python callers can pass besides.
HOSTILE = st.one_of(
    JSON_HOSTILE,
    st.builds(np.float64, st.floats()),
    st.builds(np.int64, st.integers(-(2**62), 2**62)),
    st.just(np.array([1.0, 2.0])),
    st.complex_numbers(max_magnitude=5),
)
PLAUSIBLE = st.one_of(st.floats(min_value=-1e12, max_value=1e12), st.integers(-5, 5))

SPACE_FIELDS = ["min", "max", "scale", "base", "is_integer", "rounding_factor", "choices", "colour"]


def json_paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path of keys/indices into a nested JSON-like value."""
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from json_paths(v, (*prefix, i))


def mutate(obj: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    """A deep copy of ``obj`` with the item at ``path`` replaced by ``value`` or removed."""
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def check_space(space: Any) -> None:
    """A constructed space is internally consistent and survives a round trip."""
    if isinstance(space, ChoiceSpace):
        assert len(space.choices) >= 2
        for c in space.choices:
            assert space.from_basic_rows(space.to_basic_one("p", c)[None, :]) == [c]
        return
    assert space.min < space.max
    assert math.isfinite(space.scale) and space.scale > 0
    assert space_from_dict(json.loads(json.dumps(space.to_dict()))) == space
    lo, hi = space.basic_bounds()
    assert lo < hi or (space.is_integer and lo <= hi)
    for value in (space.min, space.max):
        if not math.isfinite(value) or space.is_integer:
            continue
        if (isinstance(space, LogSpace) and value <= 0) or (isinstance(space, LogitSpace) and value in (0.0, 1.0)):
            continue
        back = space.param_from_basic(space.basic_from_param(value), is_rounded=False)
        assert math.isclose(back, value, rel_tol=1e-6, abs_tol=1e-300), (value, back)


def names_a_field(message: str, fields: Any) -> bool:
    """The error message mentions one of the given field names or the space type."""
    return any(str(f) in message for f in fields)


# ---------------------------------------------------------------------------
# Search-space definitions
# ---------------------------------------------------------------------------
@FUZZ
@given(
    st.sampled_from(["LinearSpace", "LogSpace", "LogitSpace", "ChoiceSpace", "SplineSpace", 7]),
    st.dictionaries(st.sampled_from(SPACE_FIELDS), JSON_HOSTILE | PLAUSIBLE, max_size=4),
)
def test_space_dicts_build_a_valid_space_or_name_the_field(kind: Any, fields: dict[str, Any]) -> None:
    data = {"type": kind, **fields}
    try:
        space = space_from_dict(data)
    except SpaceError as e:
        assert names_a_field(str(e), [*fields, "type"]), str(e)
        return
    except TypeError as e:  # a required dataclass field left out
        assert "choices" in str(e), str(e)
        return
    check_space(space)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@FUZZ
@given(
    st.sampled_from([LinearSpace, LogSpace, LogitSpace]),
    st.dictionaries(st.sampled_from(["min", "max", "scale", "base", "is_integer", "rounding_factor"]), HOSTILE | PLAUSIBLE, max_size=3),
)
def test_real_space_constructors(cls: Any, kwargs: dict[str, Any]) -> None:
    if cls is LogitSpace:
        kwargs = {k: v for k, v in kwargs.items() if k in ("min", "max", "scale")}
    if cls is not LogSpace:
        kwargs.pop("base", None)
    try:
        space = cls(**kwargs)
    except SpaceError as e:
        assert names_a_field(str(e), [*kwargs, cls.__name__]), str(e)
        return
    check_space(space)


@FUZZ
@given(st.one_of(HOSTILE, st.lists(JSON_HOSTILE, max_size=4), st.tuples(JSON_HOSTILE, JSON_HOSTILE)), HOSTILE | PLAUSIBLE)
def test_choice_space_constructor(choices: Any, scale: Any) -> None:
    try:
        space = ChoiceSpace(choices, scale=scale)
    except SpaceError as e:
        assert names_a_field(str(e), ["choices", "scale"]), str(e)
        return
    check_space(space)


@FUZZ
@given(HOSTILE, HOSTILE | PLAUSIBLE, st.sampled_from(range(4)))
def test_param_names_and_search_centers(name: Any, center: Any, which: int) -> None:
    spaces: list[ParamSpace] = [
        LinearSpace(min=-1.0, max=1.0),
        LogSpace(min=1e-5, max=1.0),
        LinearSpace(min=1, max=9, is_integer=True),
        ChoiceSpace(["a", 1, True]),
    ]
    space = spaces[which]
    try:
        param = Param(name, space, center)
    except SpaceError as e:
        assert names_a_field(str(e), ["name", "search_center"]), str(e)
        return
    assert isinstance(param.name, str) and param.name
    opt = CARBS(CARBSParams(seed=0), [param])
    out = opt.suggest().suggestion
    if isinstance(space, ChoiceSpace):
        assert out[param.name] in space.choices
    else:
        assert space.min <= out[param.name] <= space.max


# ---------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------
OBS_PARAMS = [
    Param("lr", LogSpace(min=1e-5, max=1.0), search_center=1e-3),
    Param("n", LinearSpace(min=1, max=10, is_integer=True), search_center=5),
    Param("act", ChoiceSpace(["relu", "gelu", 1]), search_center="relu"),
]
GOOD_INPUT: dict[str, ParamValue] = {"lr": 1e-3, "n": 3, "act": "gelu"}


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["lr", "n", "act", "momentum", SUGGESTION_ID_DICT_KEY]), HOSTILE, max_size=3),
    st.sets(st.sampled_from(["lr", "n", "act"])),
    HOSTILE,
    HOSTILE,
    st.booleans() | HOSTILE,
)
def test_hostile_observations_are_rejected_naming_the_field(
    overrides: dict[str, Any], dropped: set[str], output: Any, cost: Any, is_failure: Any
) -> None:
    values = {**GOOD_INPUT, **overrides}
    for key in dropped:
        values.pop(key, None)
    opt = CARBS(CARBSParams(seed=0), OBS_PARAMS)
    before = opt.get_state_dict()
    try:
        opt.observe(ObservationInParam(values, output, cost, is_failure))
    except (ValueError, TypeError) as e:
        fields = ["lr", "n", "act", "momentum", "unknown parameter", "missing parameter", "output", "cost", "is_failure"]
        assert names_a_field(str(e), fields), str(e)
        assert opt.get_state_dict() == before  # nothing half-recorded
        return
    # Accepted: what was stored must be clean.
    stored = (opt.success_observations + opt.failure_observations)[0]
    assert np.all(np.isfinite(stored.real_number_input))
    is_success = bool(opt.success_observations)
    # A failure may cost 0 (clients of the reference report no cost for one).
    assert math.isfinite(stored.cost) and (stored.cost > 0 or (not is_success and stored.cost == 0))
    assert not is_success or math.isfinite(stored.output)
    assert is_success == (not is_failure and math.isfinite(float(output)))
    assert set(opt.search_space.from_basic(stored.real_number_input)[0]) == {"lr", "n", "act"}
    opt.search_space.to_basic(
        {k: v for k, v in opt.suggest().suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
    )


@FUZZ
@given(
    st.sampled_from([math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")]),
    st.floats(min_value=1e-12, max_value=1e12),
)
def test_non_finite_outputs_are_failure_records(output: float, cost: float) -> None:
    opt = CARBS(CARBSParams(seed=0), OBS_PARAMS)
    opt.observe(ObservationInParam(dict(GOOD_INPUT), output, cost))
    assert len(opt.failure_observations) == 1 and not opt.success_observations
    assert opt.failure_observations[0].cost == pytest.approx(cost)


@FUZZ
@given(st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 10**400])))
def test_bad_costs_are_value_errors(cost: float) -> None:
    opt = CARBS(CARBSParams(seed=0), OBS_PARAMS)
    with pytest.raises(ValueError, match="observation.cost"):
        opt.observe(ObservationInParam(dict(GOOD_INPUT), 1.0, cost))
    assert opt.observation_count == 0


# ---------------------------------------------------------------------------
# Optimizer state files
# ---------------------------------------------------------------------------
def _reference_state() -> dict[str, Any]:
    opt = CARBS(CARBSParams(seed=0, num_random_samples=2), OBS_PARAMS)
    rng = np.random.default_rng(0)
    for i in range(8):
        s = opt.suggest().suggestion
        output = math.nan if i == 3 else float(rng.normal())
        opt.observe(ObservationInParam(s, output, 1.0 + i))
    opt.suggest()
    return opt.get_state_dict()


STATE = _reference_state()
STATE_TEXT = json.dumps(STATE)
STATE_PATHS = list(json_paths(STATE))


def loaded_or_state_error(load: Any) -> CARBS | None:
    """Run ``load``; a success must give a working optimizer, a failure a StateError."""
    try:
        opt = load()
    except StateError:
        return None
    assert isinstance(opt, CARBS)
    out = opt.suggest()
    opt.search_space.to_basic({k: v for k, v in out.suggestion.items() if k != SUGGESTION_ID_DICT_KEY})
    opt.observe(ObservationInParam(out.suggestion, 0.5, 2.0))
    opt.suggest()
    assert all(math.isfinite(o.cost) and o.cost > 0 for o in opt.success_observations)
    assert all(math.isfinite(o.cost) and o.cost >= 0 for o in opt.failure_observations)
    assert all(math.isfinite(o.output) for o in opt.success_observations)
    return opt


@FUZZ
@given(st.sampled_from(STATE_PATHS), JSON_HOSTILE, st.booleans())
def test_state_with_a_field_changed_or_removed(path: tuple[Any, ...], value: Any, delete: bool) -> None:
    state = mutate(STATE, path, value, delete)
    loaded_or_state_error(lambda: CARBS.load_state_dict(state))


@FUZZ
@given(st.integers(0, len(STATE_TEXT)), st.binary(min_size=1, max_size=8), st.integers(0, len(STATE_TEXT)))
def test_truncated_and_corrupted_state_text(cut: int, junk: bytes, pos: int) -> None:
    data = STATE_TEXT.encode()
    if cut < len(data):
        with pytest.raises(StateError):
            CARBS.load_from_string(data[:cut].decode("utf-8", "ignore"))
    corrupted = data[:pos] + junk + data[pos + len(junk):]
    loaded_or_state_error(lambda: CARBS.load_state_dict(json_or_state_error(corrupted)))


def json_or_state_error(data: bytes) -> dict[str, Any]:
    """Parse state bytes as the file loader does."""
    from carbs.optimizer.serialization import loads

    return loads(data)


@pytest.mark.parametrize("version", [0, -1, 3, 99, "1", 1.0, True, None, [1]])
def test_wrong_versions_are_named(version: Any) -> None:
    with pytest.raises(StateError, match="version"):
        CARBS.load_state_dict({**STATE, "version": version})
    without = {k: v for k, v in STATE.items() if k != "version"}
    with pytest.raises(StateError, match="version"):
        CARBS.load_state_dict(without)


class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickled_payloads_are_refused_and_never_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "state.json"
    path.write_bytes(pickle.dumps(_Payload(str(marker)), protocol=protocol))
    with pytest.raises(StateError):
        CARBS.load_from_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"py/object": "os.system", "format": "carbs.state", "version": 1}',
        '!!python/object/apply:os.system ["touch pwned"]',
        "\x00\x01\x02",
        "",
        "null",
        "[]",
        '"carbs.state"',
    ],
)
def test_crafted_state_text_is_a_state_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(StateError):
            CARBS.load_from_file(path)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()


def test_crafted_state_cannot_switch_on_network_logging() -> None:
    state = copy.deepcopy(STATE)
    state["config"]["is_wandb_logging_enabled"] = True
    opt = CARBS.load_state_dict(state)
    assert opt.config.is_wandb_logging_enabled is False


# ---------------------------------------------------------------------------
# Sweep files
# ---------------------------------------------------------------------------
SWEEP: dict[str, Any] = {
    "name": "fuzz",
    "command": "python train.py --lr {lr} --width {width} --opt {opt}",
    "metric": "loss",
    "direction": "minimize",
    "cost": "wall_clock",
    "parameters": {
        "lr": {"space": "log", "min": 1e-5, "max": 1.0, "center": 1e-3},
        "width": {"space": "log", "min": 8, "max": 1024, "integer": True},
        "x": {"space": "linear", "min": -1, "max": 1, "scale": 0.5},
        "p": {"space": "logit", "min": 0.01, "max": 0.9},
        "opt": {"space": "choice", "choices": ["adam", "sgd"]},
    },
    "budget": {"trials": 10, "cost": 100.0, "time": "2h"},
    "workers": 2,
    "trial_timeout": "30m",
    "seed": 1,
    "settings": {"num_random_samples": 3},
    "heartbeat": {"interval": 1, "grace": 5},
    "env": {"A": "1"},
}
SWEEP_PATHS = list(json_paths(SWEEP))
SWEEP_VALUES = st.one_of(
    SCALARS,
    HUGE_INT,
    st.sampled_from(["{lr}", "{nope}", "{", "}", "'", "1e-5", "-1", "30x", "2h", "$(touch pwned)"]),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2),
)


def check_sweep(config: Any) -> None:
    """An accepted sweep holds a usable search space and settings."""
    assert config.command and all(isinstance(t, str) for t in config.command)
    assert config.params and len({p.name for p in config.params}) == len(config.params)
    assert config.direction in ("minimize", "maximize")
    assert config.workers >= 1
    opt = CARBS(config.carbs_params(), config.params)
    opt.suggest()


@FUZZ
@given(st.sampled_from(SWEEP_PATHS), SWEEP_VALUES, st.sampled_from(["set", "delete", "add"]))
def test_sweep_dicts_are_valid_or_name_the_key(path: tuple[Any, ...], value: Any, op: str) -> None:
    if op == "add":
        parent = path[:-1]
        node: Any = SWEEP
        for key in parent:
            node = node[key]
        if not isinstance(node, dict):
            return
        data = mutate(SWEEP, (*parent, "colour"), value, delete=False)
        field = "colour"
    else:
        data = mutate(SWEEP, path, value, delete=op == "delete")
        field = str(path[-1]) if isinstance(path[-1], str) else str(path[-2])
    try:
        config = parse_sweep_config(data, base_dir=os.getcwd())
    except SweepConfigError as e:
        message = str(e)
        assert field in message or any(str(k) in message for k in path if isinstance(k, str)), message
        return
    check_sweep(config)


@FUZZ
@given(st.text(max_size=200), st.sampled_from([".yaml", ".toml"]))
def test_arbitrary_sweep_file_text(tmp_path_factory: pytest.TempPathFactory, text: str, ext: str) -> None:
    path = tmp_path_factory.mktemp("sweep") / f"sweep{ext}"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_sweep_config(path)
    except SweepConfigError as e:
        assert str(path) in str(e) or "sweep" in str(e)
        return
    check_sweep(config)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.yaml", "!!python/object/apply:os.system ['touch pwned']\n", "not valid YAML"),
        ("b.yaml", "name: x\ncommand: !!python/object/apply:os.system ['touch pwned']\n", "not valid YAML"),
        ("c.yaml", "name: [unclosed\n", "not valid YAML"),
        ("d.toml", "name = 'x'\n[parameters\n", "not valid TOML"),
        ("e.yaml", "- just\n- a list\n", "mapping"),
        ("f.json", "{}", "must end in .yaml"),
        ("g.yaml", "name: x\ncommand: python t.py {lr}\nparameters: {lr: {space: log, min: -1, max: 1}}\n", "parameters.lr"),
        ("h.yaml", "name: x\ncommand: python t.py {lr}\nparameters: {lr: {space: linear, min: 1, max: 0}}\n", "parameters.lr"),
        ("i.yaml", "name: x\ncommand: python t.py {nope}\nparameters: {lr: {space: linear, min: 0, max: 1}}\n", "nope"),
        ("j.yaml", "name: x\nparameters: {lr: {space: linear, min: 0, max: 1}}\n", "command"),
        ("k.yaml", "name: x\ncommand: t {lr}\nparameters: {lr: {space: linear, min: 0, max: 1}}\nworkers: 0\n", "workers"),
        ("l.yaml", "name: x\ncommand: t {lr}\nparameters: {lr: {space: [log], min: 1, max: 2}}\n", "parameters.lr.space"),
        ("m.yaml", "name: x\ncommand: t {lr}\nparameters: {lr: {space: linear, min: 0, max: " + "9" * 401 + "}}\n", "finite"),
        ("n.yaml", "name: x\ncommand: t {lr}\nparameters: {lr: {space: linear, min: 0, max: 1}}\ntrial_timeout: 1e400s\n", "trial_timeout"),
    ],
)
def test_malformed_sweep_files_are_clear_errors(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(SweepConfigError, match=match):
            load_sweep_config(path)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()


def test_missing_sweep_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match="cannot read sweep file"):
        load_sweep_config(tmp_path / "absent.yaml")
