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
    """
    merged: dict[str, Any] = dict(values or {})
    merged.update(kwargs)
    if not merged:
        raise ValueError("carbs.report needs at least one value, e.g. carbs.report(loss=0.3)")
    for key in merged:
        if not isinstance(key, str):
            raise TypeError(f"carbs.report: keys must be strings, got {key!r}")
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
