"""``carbs.report``: how a Python trial program hands its results to the sweep runner."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from carbs.runner.command import ENV_RESULTS_FILE


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers; anything else must be JSON-compatible."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"carbs.report: value {value!r} of type {type(value).__name__} is not JSON-compatible")


def report(values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Report results of the current trial, e.g. ``carbs.report(val_loss=0.31)``.

    Values from several calls are merged (later ones win), so a program may
    report as it goes. Under ``carbs run`` the values are appended to the file
    named by ``$CARBS_RESULTS_FILE``; otherwise they are printed on stdout as
    one JSON line, which the runner reads as well.

    With a ``step`` (``carbs.report(step=3, val_loss=0.41)``) the call is an
    intermediate report: a point of the trial's learning curve, read by the
    runner while the program runs (and judged by the stopping rule if the
    sweep has one). The last report is the trial's result unless a final one
    without a step follows. Inside an objective run by ``Study.optimize`` a
    report with a step is stored directly, as ``trial.report(value, step)``
    with the study's metric.
    """
    merged: dict[str, Any] = dict(values or {})
    merged.update(kwargs)
    if not merged:
        raise ValueError("carbs.report needs at least one value, e.g. carbs.report(loss=0.3)")
    for key in merged:
        if not isinstance(key, str):
            raise TypeError(f"carbs.report: keys must be strings, got {key!r}")
    if "step" in merged and _report_in_process(merged):
        return
    line = json.dumps(merged, default=_plain)
    path = os.environ.get(ENV_RESULTS_FILE)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    else:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _report_in_process(values: dict[str, Any]) -> bool:
    """Store a step report of an objective running under ``Study.optimize``; ``False`` if none runs."""
    study_module = sys.modules.get("carbs.study")  # never imported here just to look
    trial = study_module.current_trial() if study_module is not None else None
    if trial is None or trial._study is None:
        return False
    study = trial._study
    if study.metric not in values:
        raise ValueError(
            f"carbs.report: step report of trial {trial.number} has no value for the study's "
            f"metric {study.metric!r}; got keys {sorted(values)}"
        )
    value = values[study.metric]
    value = _plain(value) if not isinstance(value, (int, float)) else value
    trial.report(value, values["step"], cost=values.get("cost"))
    return True
