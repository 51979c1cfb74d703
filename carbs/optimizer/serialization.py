"""The optimizer's state as versioned JSON.

The state holds only data (settings, parameters, observations in parameter
space, pending suggestions, counters), never code: loading a file cannot
execute anything. ``FORMAT_VERSION`` is bumped whenever the layout changes,
and ``_MIGRATIONS[v]`` upgrades a version-``v`` state to ``v + 1``, so files
written by every released version keep loading.

Versions:

1. the first layout.
2. an observation may carry ``"is_partial": true`` (a trial stopped early, whose
   output and cost are not those of a finished run). A state without such an
   observation is written as version 1, byte for byte the layout version 1
   had, so a carbs that knows only version 1 keeps reading it; one with a
   stopped run is written as version 2, which such a carbs refuses instead of
   taking the stopped run as finished.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT_NAME = "carbs.state"
FORMAT_VERSION = 2


def _v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """Version 2 only adds the optional ``is_partial``; absent, it means a finished run.

    A version-1 state that already has the key (written before the version
    was bumped for it) keeps it: dropping it would turn stopped runs into finished ones.
    """
    return state


# Version v -> function upgrading a state dict from v to v + 1.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def version_to_write(state: dict[str, Any]) -> int:
    """The oldest format version that holds ``state`` (a dict in the current layout).

    Writing the oldest one that fits lets older readers load every state that
    they would read correctly, and makes them refuse the others.
    """
    for key in ("success_observations", "failure_observations"):
        if any(o.get("is_partial") for o in state.get(key, [])):
            return 2
    return 1


class StateError(ValueError):
    """A state file or dict is corrupt, of an unknown format, or from a newer version."""


def encode_float(value: float) -> float | str:
    """JSON has no NaN or infinity: write them as strings."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def decode_float(value: Any, field: str) -> float:
    """Inverse of :func:`encode_float`; raises naming the field on anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise StateError(f"state field {field!r}: expected a number, got {value!r}")
    if isinstance(value, str):
        if value not in ("nan", "inf", "-inf"):
            raise StateError(f"state field {field!r}: expected a number, got {value!r}")
        return float(value)
    return float(value)


def upgrade(state: Any) -> dict[str, Any]:
    """Check the header of a state dict and migrate it to the current version."""
    if not isinstance(state, dict):
        raise StateError(f"a CARBS state must be a JSON object, got {type(state).__name__}")
    if state.get("format") != FORMAT_NAME:
        raise StateError(f"not a CARBS state (format is {state.get('format')!r}, expected {FORMAT_NAME!r})")
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"CARBS state has an invalid version {version!r}")
    if version > FORMAT_VERSION:
        raise StateError(
            f"CARBS state format version {version} is newer than this package supports "
            f"({FORMAT_VERSION}); upgrade carbs to load it"
        )
    while version < FORMAT_VERSION:
        state = _MIGRATIONS[version](state)
        version += 1
        state["version"] = version
    return state


def dumps(state: dict[str, Any]) -> str:
    """Serialise a state dict to JSON text (strict: no NaN tokens)."""
    return json.dumps(state, allow_nan=False, sort_keys=True)


def loads(text: str | bytes) -> dict[str, Any]:
    """Parse JSON state text, with a clear error for pickles and corrupt files."""
    if isinstance(text, bytes):
        if text[:2] == b"PK" or text[:1] == b"\x80":
            raise StateError(
                "this is a pickled (torch.save) checkpoint; it is not loaded because unpickling "
                "can execute code. Re-create the optimizer and call initialize_from_observations()"
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StateError(f"CARBS state is not UTF-8 text: {e}") from None
    try:
        state = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise StateError(f"CARBS state is not valid JSON: {e}") from None
    return upgrade(state)


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
