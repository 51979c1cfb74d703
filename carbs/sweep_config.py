"""Sweep files: a YAML or TOML description of a sweep, parsed and validated.

Every problem is reported with the dotted path of the offending key and the
value found, e.g. ``sweep.yaml: parameters.lr.min must be a number, got 'abc'``.
The reference of the format is ``docs/sweeps.md``.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import shlex
import shutil
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from carbs.optimizer.config import CARBSParams
from carbs.optimizer.space import (
    ChoiceSpace,
    LinearSpace,
    LogitSpace,
    LogSpace,
    Param,
    ParamSpace,
    SpaceError,
)
from carbs.stopping import EarlyStopping

logger = logging.getLogger(__name__)

# Placeholders every command may use besides the parameter names.
# ``{python}`` is the interpreter running carbs, so the trial uses the same
# environment whether or not it is activated.
BUILTIN_PLACEHOLDERS = ("trial_id", "trial_number", "study", "results_file", "python")

_TOP_KEYS = (
    "name",
    "command",
    "parameters",
    "metric",
    "metric_regex",
    "direction",
    "cost",
    "budget",
    "workers",
    "trial_timeout",
    "storage",
    "seed",
    "settings",
    "heartbeat",
    "env",
    "workdir",
    "log_dir",
    "fail_fast",
    "early_stopping",
    "launcher",
    "gpus_per_trial",
    "gpus",
    "retries",
    "retry_on",
    "trials_dir",
)
_BUDGET_KEYS = ("trials", "cost", "time")
_HEARTBEAT_KEYS = ("interval", "grace")
_SPACE_KEYS: dict[str, tuple[str, ...]] = {
    "linear": ("space", "min", "max", "scale", "center", "integer", "rounding_factor"),
    "log": ("space", "min", "max", "scale", "base", "center", "integer", "rounding_factor"),
    "logit": ("space", "min", "max", "scale", "center"),
    "choice": ("space", "choices", "scale", "center"),
}
_DIRECTIONS = {
    "minimize": "minimize",
    "minimise": "minimize",
    "min": "minimize",
    "maximize": "maximize",
    "maximise": "maximize",
    "max": "maximize",
}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SETTINGS_OWN_KEYS = ("better_direction_sign", "seed")
# Consecutive same-cause failures that stop a sweep nothing has succeeded in yet.
DEFAULT_FAIL_FAST = 5
# ``cost: gpu_seconds``: wall-clock seconds times the GPUs a trial holds.
GPU_SECONDS = "gpu_seconds"
# Failures a trial is to blame for; retried only when listed in ``retry_on``.
# (Interrupted, stale and lost trials are always retried when ``retries`` > 0.)
OWN_FAULT_KINDS = ("error", "timeout", "bad_output")
INFRASTRUCTURE_KINDS = ("interrupted", "stale", "lost")
LAUNCHER_TYPES = ("local", "ray", "slurm")
_LAUNCHER_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("type",),
    "ray": ("type", "address", "resources"),
    "slurm": (
        "type",
        "partition",
        "account",
        "time",
        "gpus_per_node",
        "cpus_per_task",
        "mem",
        "sbatch",
        "setup",
        "trials_per_job",
        "poll_interval",
        "python",
    ),
}


class SweepConfigError(ValueError):
    """A sweep file is invalid; the message names the key and the value."""


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed trial's point is run again (as a new trial linked by ``retry_of``).

    Attributes:
        max_retries: re-runs of one point at most (0: never).
        on: failure kinds that are retried: always the infrastructure ones
            (interrupted, stale, lost), plus those of ``retry_on``.
    """

    max_retries: int = 0
    on: tuple[str, ...] = INFRASTRUCTURE_KINDS

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"max_retries": self.max_retries, "on": list(self.on)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RetryPolicy:
        """The inverse of :meth:`to_dict` (``None``: no retries)."""
        if not data:
            return cls()
        return cls(int(data.get("max_retries", 0)), tuple(data.get("on", INFRASTRUCTURE_KINDS)))


@dataclass(frozen=True)
class LauncherConfig:
    """Where trials run: ``type`` (local, ray, slurm) and its validated options."""

    type: str = "local"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, with the sweep file's key names."""
        return {"type": self.type, **self.options}


@dataclass(frozen=True)
class Budget:
    """When a sweep stops.

    Attributes:
        max_trials: total trials of the study (interrupted and stale ones excluded).
        max_cost: total cost of the study's finished trials.
        max_time: wall-clock seconds of one ``carbs run`` / ``carbs worker`` call.
    """

    max_trials: int | None = None
    max_cost: float | None = None
    max_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, with the sweep file's key names."""
        return {"trials": self.max_trials, "cost": self.max_cost, "time": self.max_time}


@dataclass
class SweepConfig:
    """A validated sweep.

    Attributes:
        name: the study name.
        command: the command template as an argument list; ``{name}`` placeholders
            are replaced per trial.
        params: the search space.
        metric: key of the reported value that is optimised.
        metric_regex: a regular expression that finds the metric in a stdout line
            (one capture group), for output in no form the runner reads by itself.
        direction: ``"minimize"`` or ``"maximize"``.
        cost: ``None`` for wall-clock seconds, else the key of a reported value.
        budget: when to stop.
        workers: trials run in parallel by one ``carbs run``.
        trial_timeout: seconds after which a trial is killed and FAILED.
        storage: storage URL (``None``: the default SQLite file).
        seed: seeds the optimizer.
        settings: extra ``CARBSParams`` settings.
        heartbeat_interval / heartbeat_grace: seconds between heartbeats, and of
            silence after which a RUNNING trial is declared stale.
        env: extra environment variables for the trial program.
        workdir: absolute directory the command runs in.
        log_dir: directory for per-trial stdout/stderr files (``None``: not kept).
        fail_fast: stop after this many consecutive trials fail for the same reason
            while none has succeeded (``0``: never).
        early_stopping: the stopping rule (``None``: trials always run to the end).
        launcher: where trials run (local processes, a Ray cluster, Slurm jobs).
        gpus_per_trial: GPUs each trial holds (0: none).
        gpus: the local GPU ids handed out (``None``: those found on the machine).
        retries: when lost (or, if asked, failed) trials are run again.
        trials_dir: parent of the per-trial directories (``$CARBS_TRIAL_DIR``).
        source: the file the config came from.
        warnings: problems worth telling the user that do not stop the sweep.
    """

    name: str
    command: list[str]
    params: list[Param]
    metric: str = "objective"
    metric_regex: str | None = None
    direction: str = "minimize"
    cost: str | None = None
    budget: Budget = field(default_factory=Budget)
    workers: int = 1
    trial_timeout: float | None = None
    storage: str | None = None
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: float = 10.0
    heartbeat_grace: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = field(default_factory=os.getcwd)
    log_dir: str | None = None
    fail_fast: int = DEFAULT_FAIL_FAST
    early_stopping: EarlyStopping | None = None
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    gpus_per_trial: int = 0
    gpus: list[str] | None = None
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    trials_dir: str | None = None
    source: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def better_direction_sign(self) -> int:
        """``1`` to maximise, ``-1`` to minimise."""
        return 1 if self.direction == "maximize" else -1

    def carbs_params(self) -> CARBSParams:
        """The optimizer settings this sweep asks for."""
        return CARBSParams(
            better_direction_sign=self.better_direction_sign, seed=self.seed, **self.settings
        )

    def run_config(self) -> dict[str, Any]:
        """How trials are run, as stored with the study (so ``carbs worker`` can join)."""
        return {
            "command": list(self.command),
            "cost": self.cost,
            "metric_regex": self.metric_regex,
            "budget": self.budget.to_dict(),
            "workers": self.workers,
            "trial_timeout": self.trial_timeout,
            "heartbeat": {"interval": self.heartbeat_interval, "grace": self.heartbeat_grace},
            "env": dict(self.env),
            "workdir": self.workdir,
            "log_dir": self.log_dir,
            "fail_fast": self.fail_fast,
            "early_stopping": (
                self.early_stopping.to_dict() if self.early_stopping is not None else None
            ),
            "launcher": self.launcher.to_dict(),
            "gpus_per_trial": self.gpus_per_trial,
            "retries": self.retries.to_dict(),
            "trials_dir": self.trials_dir,
        }


def compile_metric_regex(pattern: str) -> re.Pattern[str]:
    """A ``metric_regex`` with one capture group (or a group named ``value``); ``ValueError`` otherwise."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"metric_regex {pattern!r} is not a valid regular expression: {e}") from None
    if "value" not in compiled.groupindex and compiled.groups != 1:
        raise ValueError(
            f"metric_regex {pattern!r} must have one capture group (or one named 'value') "
            f"around the number, got {compiled.groups}"
        )
    return compiled


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            place = f"{where}.{key}" if where else str(key)
            raise SweepConfigError(
                f"unknown key {place!r}{_suggest(str(key), allowed)}; allowed keys: {list(allowed)}"
            )


def _number(where: str, value: Any, *, positive: bool = False) -> float:
    """A finite number; numeric strings are accepted because YAML reads ``1e-5`` as text."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise SweepConfigError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepConfigError(f"{where} must be a number, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise SweepConfigError(f"{where} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise SweepConfigError(f"{where} must be > 0, got {value!r}")
    return int(value) if isinstance(value, int) else float(value)


def _integer(where: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SweepConfigError(f"{where} must be a whole number, got {value!r}")
    if value < minimum:
        raise SweepConfigError(f"{where} must be >= {minimum}, got {value!r}")
    return value


def _boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SweepConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SweepConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"{where} must be a mapping of keys to values, got {value!r}")
    return value


def parse_duration(where: str, value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise SweepConfigError(
                f"{where} must be seconds or a duration like '30m' or '2h', got {value!r}"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        if not math.isfinite(seconds):
            raise SweepConfigError(f"{where} must be a finite duration, got {value!r}")
        if seconds <= 0:
            raise SweepConfigError(f"{where} must be > 0, got {value!r}")
        return seconds
    return float(_number(where, value, positive=True))


def _param(name: str, spec: Any) -> Param:
    where = f"parameters.{name}"
    spec = _mapping(where, spec)
    kind = spec.get("space")
    if kind is None:
        raise SweepConfigError(
            f"{where}.space is missing; use one of {sorted(_SPACE_KEYS)}"
        )
    if not isinstance(kind, str) or kind not in _SPACE_KEYS:
        raise SweepConfigError(
            f"{where}.space must be one of {sorted(_SPACE_KEYS)}, got {kind!r}"
            + _suggest(str(kind), tuple(_SPACE_KEYS))
        )
    _check_keys(where, spec, _SPACE_KEYS[kind])
    try:
        space = _space(where, kind, spec)
        center = _center(where, space, spec)
        return Param(name=name, space=space, search_center=center)
    except SpaceError as e:
        raise SweepConfigError(f"{where}: {e}") from None


def _space(where: str, kind: str, spec: Mapping[str, Any]) -> ParamSpace:
    if kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise SweepConfigError(
                f"{where}.choices must be a list of at least 2 values, got {choices!r}"
            )
        kwargs: dict[str, Any] = {"choices": choices}
        if "scale" in spec:
            kwargs["scale"] = _number(f"{where}.scale", spec["scale"], positive=True)
        return ChoiceSpace(**kwargs)
    kwargs = {}
    for key in ("min", "max", "base", "rounding_factor"):
        if key in spec:
            kwargs[key] = _number(f"{where}.{key}", spec[key])
    if "integer" in spec:
        kwargs["is_integer"] = _boolean(f"{where}.integer", spec["integer"])
    lo, hi = kwargs.get("min"), kwargs.get("max")
    if lo is not None and hi is not None and lo >= hi:
        raise SweepConfigError(f"{where}: min ({lo!r}) must be below max ({hi!r})")
    if "scale" in spec:
        kwargs["scale"] = _number(f"{where}.scale", spec["scale"], positive=True)
    elif kind == "linear" and lo is not None and hi is not None:
        # One basic unit = a quarter of the range: the default search radius
        # (0.3 units) then explores about 7% of the range per step.
        kwargs["scale"] = (hi - lo) / 4.0
    if kind == "linear":
        return LinearSpace(**kwargs)
    if kind == "log":
        if lo is not None and lo <= 0:
            raise SweepConfigError(f"{where}.min must be > 0 for a log space, got {lo!r}")
        return LogSpace(**kwargs)
    return LogitSpace(**kwargs)


def _center(where: str, space: ParamSpace, spec: Mapping[str, Any]) -> Any:
    if "center" in spec:
        value = spec["center"]
        if isinstance(space, ChoiceSpace):
            return value
        number = _number(f"{where}.center", value)
        return int(round(number)) if space.is_integer else number
    if isinstance(space, ChoiceSpace):
        return space.choices[0]
    lo, hi = space.min, space.max
    if isinstance(space, LogSpace) and lo > 0 and math.isfinite(hi):
        center = math.sqrt(lo * hi)
    elif isinstance(space, LogitSpace):
        center = (max(lo, 1e-6) + min(hi, 1 - 1e-6)) / 2.0
    elif math.isfinite(lo) and math.isfinite(hi) and not isinstance(space, LogSpace):
        center = (lo + hi) / 2.0
    else:
        raise SweepConfigError(
            f"{where}.center is required when the space has no finite min and max"
        )
    if space.is_integer:
        step = space.rounding_factor
        return int(max(lo, min(hi, round(center / step) * step)))
    return center


def _command(value: Any, param_names: list[str]) -> tuple[list[str], set[str]]:
    if value is None:
        raise SweepConfigError(
            "command is missing: give the program to run, e.g. "
            "command: python train.py --lr {lr}"
        )
    if isinstance(value, str):
        try:
            tokens = shlex.split(value)
        except ValueError as e:
            raise SweepConfigError(f"command {value!r} cannot be split into arguments: {e}") from None
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        tokens = list(value)
    else:
        raise SweepConfigError(f"command must be a string or a list of strings, got {value!r}")
    if not tokens:
        raise SweepConfigError(f"command must not be empty, got {value!r}")
    used: set[str] = set()
    allowed = set(param_names) | set(BUILTIN_PLACEHOLDERS)
    for token in tokens:
        try:
            parsed = list(string.Formatter().parse(token))
        except ValueError as e:
            raise SweepConfigError(
                f"command argument {token!r} has a malformed placeholder: {e} "
                "(write {{ and }} for literal braces)"
            ) from None
        for _literal, name, _spec, _conv in parsed:
            if name is None:
                continue
            if name not in allowed:
                raise SweepConfigError(
                    f"command placeholder {{{name}}} is not a parameter; parameters are "
                    f"{param_names}, built-in placeholders are {list(BUILTIN_PLACEHOLDERS)}"
                    + _suggest(name, tuple(sorted(allowed)))
                    + " (write {{ and }} for literal braces)"
                )
            used.add(name)
    return tokens, used


def parse_sweep_config(
    data: Any, *, source: str | None = None, base_dir: str | None = None
) -> SweepConfig:
    """Validate a sweep description (the parsed YAML/TOML mapping)."""
    try:
        return _parse(data, source, base_dir)
    except SweepConfigError as e:
        if source:
            raise SweepConfigError(f"{source}: {e}") from None
        raise


def _parse(data: Any, source: str | None, base_dir: str | None) -> SweepConfig:
    data = _mapping("the sweep file", data)
    _check_keys("", data, _TOP_KEYS)
    base_dir = os.path.abspath(base_dir or os.getcwd())

    raw_params = data.get("parameters")
    if not raw_params:
        raise SweepConfigError("parameters is missing or empty: define at least one parameter")
    raw_params = _mapping("parameters", raw_params)
    params = [_param(str(name), spec) for name, spec in raw_params.items()]
    names = [p.name for p in params]

    command, used = _command(data.get("command"), names)
    warnings = [
        f"parameter {n!r} is not used in the command; the program can still read it "
        "from the CARBS_PARAMS environment variable"
        for n in names
        if n not in used
    ]

    if "name" in data:
        name = _text("name", data["name"])
    elif source:
        name = os.path.splitext(os.path.basename(source))[0]
    else:
        raise SweepConfigError("name is missing: give the study a name")

    metric = _text("metric", data.get("metric", "objective"))
    direction_raw = data.get("direction", "minimize")
    direction = _DIRECTIONS.get(str(direction_raw).lower()) if isinstance(direction_raw, str) else None
    if direction is None:
        raise SweepConfigError(f"direction must be 'minimize' or 'maximize', got {direction_raw!r}")

    metric_regex = None
    if "metric_regex" in data:
        metric_regex = _text("metric_regex", data["metric_regex"])
        try:
            compile_metric_regex(metric_regex)
        except ValueError as e:
            raise SweepConfigError(str(e)) from None

    cost_raw = data.get("cost", "wall_clock")
    cost = None if cost_raw in ("wall_clock", "wall-clock", "seconds") else _text("cost", cost_raw)
    if cost is not None and cost == metric:
        raise SweepConfigError(f"cost must name a different value than metric, got {cost!r}")
    if cost is not None and cost in names:
        warnings.append(
            f"cost {cost!r} is a parameter name, but the cost is read from the values the "
            f"program reports, not from the parameters: the program must report {cost!r} "
            "too (or use cost: wall_clock), or every trial fails"
        )
    gpus_per_trial = (
        _integer("gpus_per_trial", data["gpus_per_trial"], minimum=0) if "gpus_per_trial" in data else 0
    )
    if cost == GPU_SECONDS and gpus_per_trial == 0:
        raise SweepConfigError(
            f"cost: {GPU_SECONDS} needs gpus_per_trial >= 1 (the GPUs each trial holds)"
        )

    budget = Budget()
    if "budget" in data:
        raw = _mapping("budget", data["budget"])
        _check_keys("budget", raw, _BUDGET_KEYS)
        budget = Budget(
            max_trials=_integer("budget.trials", raw["trials"], minimum=1) if "trials" in raw else None,
            max_cost=float(_number("budget.cost", raw["cost"], positive=True)) if "cost" in raw else None,
            max_time=parse_duration("budget.time", raw["time"]) if "time" in raw else None,
        )
    if budget == Budget():
        warnings.append("no budget set: the sweep runs until it is stopped (Ctrl-C)")

    heartbeat_interval, heartbeat_grace = 10.0, 60.0
    if "heartbeat" in data:
        raw = _mapping("heartbeat", data["heartbeat"])
        _check_keys("heartbeat", raw, _HEARTBEAT_KEYS)
        if "interval" in raw:
            heartbeat_interval = parse_duration("heartbeat.interval", raw["interval"])
        if "grace" in raw:
            heartbeat_grace = parse_duration("heartbeat.grace", raw["grace"])
        if heartbeat_grace <= heartbeat_interval:
            raise SweepConfigError(
                f"heartbeat.grace ({heartbeat_grace:g} s) must be longer than "
                f"heartbeat.interval ({heartbeat_interval:g} s)"
            )

    env: dict[str, str] = {}
    if "env" in data:
        for key, value in _mapping("env", data["env"]).items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise SweepConfigError(f"env.{key} must be a string or a number, got {value!r}")
            env[str(key)] = str(value)

    settings: dict[str, Any] = {}
    if "settings" in data:
        settings = dict(_mapping("settings", data["settings"]))
        allowed = tuple(f.name for f in fields(CARBSParams) if f.name not in _SETTINGS_OWN_KEYS)
        for key in settings:
            if key in _SETTINGS_OWN_KEYS:
                top = "direction" if key == "better_direction_sign" else "seed"
                raise SweepConfigError(f"settings.{key} is set with the top-level key {top!r}")
        _check_keys("settings", settings, allowed)

    early_stopping = None
    if data.get("early_stopping") is not None:
        raw = _mapping("early_stopping", data["early_stopping"])
        _check_keys("early_stopping", raw, tuple(EarlyStopping.__dataclass_fields__))
        try:
            early_stopping = EarlyStopping.from_dict(raw)
        except (TypeError, ValueError) as e:
            raise SweepConfigError(str(e)) from None

    seed = _integer("seed", data["seed"], minimum=0) if "seed" in data else 0
    launcher = parse_launcher("launcher", data.get("launcher", {"type": "local"}))
    gpus = validate_gpus(launcher, gpus_per_trial, data.get("gpus"))
    retries = _retries(data)
    if launcher.type == "ray" and early_stopping is not None:
        raise SweepConfigError(
            "early_stopping reads a trial's reports while it runs on this machine; trials "
            "of launcher 'ray' run on the cluster's nodes, so remove one of the two "
            "(launcher 'local' and 'slurm' support it)"
        )
    config = SweepConfig(
        name=name,
        command=command,
        params=params,
        metric=metric,
        metric_regex=metric_regex,
        direction=direction,
        cost=cost,
        budget=budget,
        workers=_integer("workers", data["workers"], minimum=1) if "workers" in data else 1,
        trial_timeout=(
            parse_duration("trial_timeout", data["trial_timeout"]) if "trial_timeout" in data else None
        ),
        storage=_text("storage", data["storage"]) if "storage" in data else None,
        seed=seed,
        settings=settings,
        heartbeat_interval=heartbeat_interval,
        heartbeat_grace=heartbeat_grace,
        env=env,
        workdir=os.path.normpath(os.path.join(base_dir, _text("workdir", data.get("workdir", ".")))),
        log_dir=(
            os.path.normpath(os.path.join(base_dir, _text("log_dir", data["log_dir"])))
            if "log_dir" in data
            else None
        ),
        fail_fast=_integer("fail_fast", data["fail_fast"], minimum=0) if "fail_fast" in data
        else DEFAULT_FAIL_FAST,
        early_stopping=early_stopping,
        launcher=launcher,
        gpus_per_trial=gpus_per_trial,
        gpus=gpus,
        retries=retries,
        trials_dir=os.path.normpath(
            os.path.join(base_dir, _text("trials_dir", data.get("trials_dir", "carbs-trials")))
        ),
        source=source,
        warnings=warnings,
    )
    try:
        config.carbs_params()
    except (TypeError, ValueError) as e:
        raise SweepConfigError(f"settings: {e}") from None
    if not os.path.isdir(config.workdir):
        raise SweepConfigError(f"workdir {config.workdir!r} is not a directory")
    config.warnings += _program_warnings(config.command, config.workdir)
    return config


def _program_warnings(command: list[str], workdir: str) -> list[str]:
    """The program or script the command starts, when it plainly cannot be found.

    Checked when the file loads, because a missing program fails every trial.
    Only literal names are checked (``{python} train.py``, ``./train.sh``,
    ``torchrun``); anything built from placeholders is left to run time.
    """
    first = command[0]
    if first in ("{python}", "python", "python3") and len(command) > 1:
        script = command[1]
        missing = not os.path.isfile(os.path.join(workdir, script))
        if script.endswith(".py") and "{" not in script and missing:
            return [
                f"command runs {script!r}, which is not a file in workdir {workdir!r}: "
                "every trial would fail"
            ]
        return []
    if "{" in first:
        return []
    if os.sep in first:
        found = os.path.isfile(os.path.join(workdir, first))
    else:
        found = shutil.which(first) is not None
    if not found:
        return [
            f"command program {first!r} is not found (on PATH or in workdir {workdir!r}): "
            "every trial would fail"
        ]
    return []


def _retries(data: Mapping[str, Any]) -> RetryPolicy:
    count = _integer("retries", data["retries"], minimum=0) if "retries" in data else 0
    extra: list[str] = []
    if "retry_on" in data:
        raw = data["retry_on"]
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise SweepConfigError(
                f"retry_on must be a list of failure kinds from {list(OWN_FAULT_KINDS)}, got {raw!r}"
            )
        for kind in raw:
            if kind in INFRASTRUCTURE_KINDS:
                continue  # always retried
            if kind not in OWN_FAULT_KINDS:
                raise SweepConfigError(
                    f"retry_on: unknown failure kind {kind!r}; choose from {list(OWN_FAULT_KINDS)}"
                    " (interrupted, stale and lost trials are always retried)"
                )
            extra.append(kind)
        if count == 0:
            raise SweepConfigError("retry_on is set but retries is 0: set retries: N (N >= 1)")
    return RetryPolicy(count, INFRASTRUCTURE_KINDS + tuple(dict.fromkeys(extra)))


def parse_gpu_list(where: str, value: Any) -> list[str]:
    """GPU ids as CUDA_VISIBLE_DEVICES spells them: a list, or a string ``"0,1,2"``."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise SweepConfigError(f"{where} must be a non-empty list of GPU ids, got {value!r}")
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, str)) or str(item).strip() == "":
            raise SweepConfigError(f"{where} must hold GPU indices or UUIDs, got {item!r}")
        ids.append(str(item).strip())
    if len(set(ids)) != len(ids):
        raise SweepConfigError(f"{where} lists a GPU twice: {ids}")
    return ids


def validate_gpus(launcher: LauncherConfig, gpus_per_trial: int, value: Any) -> list[str] | None:
    """The ``gpus:`` list checked against the launcher and ``gpus_per_trial``."""
    gpus = None if value is None else parse_gpu_list("gpus", value)
    if gpus is not None and launcher.type != "local":
        raise SweepConfigError(
            f"gpus lists this machine's devices, which only the local launcher hands out; "
            f"with launcher {launcher.type!r} the cluster assigns GPUs (use gpus_per_trial)"
        )
    if gpus is not None and gpus_per_trial == 0:
        raise SweepConfigError("gpus is set but gpus_per_trial is 0: set gpus_per_trial: N")
    if gpus is not None and gpus_per_trial > len(gpus):
        raise SweepConfigError(
            f"gpus_per_trial ({gpus_per_trial}) is more than the GPUs listed in gpus ({gpus})"
        )
    if launcher.type == "slurm" and gpus_per_trial:
        per_node = launcher.options.get("gpus_per_node")
        if per_node is not None and per_node != gpus_per_trial:
            raise SweepConfigError(
                f"launcher.gpus_per_node ({per_node}) differs from gpus_per_trial "
                f"({gpus_per_trial}); a Slurm job runs one trial at a time, so give one of them"
            )
    return gpus


def parse_launcher(where: str, value: Any) -> LauncherConfig:
    """Validate a ``launcher:`` mapping (or a bare type name) into a :class:`LauncherConfig`."""
    if isinstance(value, str):
        value = {"type": value}
    raw = _mapping(where, value)
    kind = raw.get("type", "local")
    if kind not in LAUNCHER_TYPES:
        raise SweepConfigError(
            f"{where}.type must be one of {list(LAUNCHER_TYPES)}, got {kind!r}"
            + _suggest(str(kind), LAUNCHER_TYPES)
        )
    _check_keys(where, raw, _LAUNCHER_KEYS[kind])
    options: dict[str, Any] = {}
    for key, item in raw.items():
        at = f"{where}.{key}"
        if key == "type":
            continue
        if key in ("address", "partition", "account", "mem", "python"):
            options[key] = _text(at, item)
        elif key == "resources":
            resources = {}
            for name, amount in _mapping(at, item).items():
                number = _number(f"{at}.{name}", amount)
                if number < 0:
                    raise SweepConfigError(f"{at}.{name} must be >= 0, got {amount!r}")
                resources[str(name)] = number
            options[key] = resources
        elif key in ("time", "poll_interval"):
            options[key] = parse_duration(at, item)
        elif key in ("gpus_per_node",):
            options[key] = _integer(at, item, minimum=0)
        elif key in ("cpus_per_task", "trials_per_job"):
            options[key] = _integer(at, item, minimum=1)
        elif key in ("sbatch", "setup"):
            lines = [item] if isinstance(item, str) else item
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise SweepConfigError(f"{at} must be a list of strings, got {item!r}")
            options[key] = list(lines)
    return LauncherConfig(str(kind), options)


def _load_toml(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


def load_sweep_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a ``.yaml``/``.yml`` or ``.toml`` sweep file.

    Relative ``workdir`` and ``log_dir`` are taken from the file's directory.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".toml", ".yaml", ".yml"):
        raise SweepConfigError(
            f"sweep file {path!r} must end in .yaml, .yml or .toml, got {ext or 'no extension'!r}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SweepConfigError(f"cannot read sweep file {path!r}: {e.strerror}") from None
    try:
        if ext == ".toml":
            data = _load_toml(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError / tomllib.TOMLDecodeError
        raise SweepConfigError(f"{path}: not valid {ext[1:].upper()}: {e}") from None
    config = parse_sweep_config(data, source=path, base_dir=os.path.dirname(os.path.abspath(path)))
    for message in config.warnings:
        logger.warning("%s: %s", path, message)
    return config
