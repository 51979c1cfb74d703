"""Filling a command template with a trial's values, and the trial's environment."""

from __future__ import annotations

import json
import os
import string
import sys
from collections.abc import Mapping, Sequence
from typing import Any

# Environment variables every trial program receives.
ENV_TRIAL_ID = "CARBS_TRIAL_ID"
ENV_TRIAL_NUMBER = "CARBS_TRIAL_NUMBER"
ENV_STUDY = "CARBS_STUDY"
ENV_PARAMS = "CARBS_PARAMS"
ENV_RESULTS_FILE = "CARBS_RESULTS_FILE"
# A directory of the trial's own that every retry of its point gets again.
ENV_TRIAL_DIR = "CARBS_TRIAL_DIR"
# 0 for a first run, 1 for the first retry, ...
ENV_ATTEMPT = "CARBS_ATTEMPT"


def format_value(value: Any) -> str:
    """How a parameter value is written on a command line (floats keep full precision)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_command(
    template: Sequence[str],
    params: Mapping[str, Any],
    *,
    trial_number: int,
    study: str,
    results_file: str,
) -> list[str]:
    """Replace ``{name}`` placeholders in each argument of ``template``.

    A plain ``{lr}`` becomes the full-precision value; a format spec such as
    ``{lr:.3g}`` is applied to the value itself.
    """
    values: dict[str, Any] = dict(params)
    values.update(
        trial_id=trial_number,
        trial_number=trial_number,
        study=study,
        results_file=results_file,
        python=sys.executable,
    )
    formatter = string.Formatter()
    argv = []
    for token in template:
        out = []
        for literal, name, spec, conversion in formatter.parse(token):
            out.append(literal)
            if name is None:
                continue
            if name not in values:
                raise KeyError(f"command placeholder {{{name}}} has no value; known: {sorted(values)}")
            value = values[name]
            if conversion:
                value = formatter.convert_field(value, conversion)
            out.append(format(value, spec) if spec else format_value(value))
        argv.append("".join(out))
    return argv


def trial_environment(
    base: Mapping[str, str],
    extra: Mapping[str, str],
    params: Mapping[str, Any],
    *,
    trial_number: int,
    study: str,
    results_file: str,
) -> dict[str, str]:
    """The trial program's environment: ``base`` + ``extra`` + the ``CARBS_*`` variables."""
    env = dict(base)
    env.update(extra)
    env[ENV_TRIAL_ID] = str(trial_number)
    env[ENV_TRIAL_NUMBER] = str(trial_number)
    env[ENV_STUDY] = study
    env[ENV_PARAMS] = json.dumps(dict(params), sort_keys=True)
    env[ENV_RESULTS_FILE] = results_file
    # Python trial programs should not hold back their result line in a buffer.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def default_environment() -> dict[str, str]:
    """A copy of this process's environment."""
    return dict(os.environ)
