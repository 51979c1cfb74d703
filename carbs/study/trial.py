"""What a study hands out and the small helpers shared by ``ask``/``tell`` and ``optimize``.

This module imports nothing else of the study package, so ``core`` (the
``Study``) and ``optimize`` (the in-process loop) both build on it without
importing each other back.
"""

from __future__ import annotations

import os
import socket
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

ObjectiveResult = Union[float, tuple[float, float]]


class StudyDefinitionError(ValueError):
    """A study exists with a different search space, direction or metric."""


class BudgetExhausted(RuntimeError):
    """``ask`` was given a budget that is already spent; ``str(e)`` says which part."""


@dataclass(frozen=True)
class Trial:
    """A point handed out by :meth:`Study.ask`: run it, then :meth:`Study.tell` the result.

    Attributes:
        number: the trial's id within its study (0, 1, 2, ...).
        params: the parameter values to run.
        study_name: the study it belongs to.
        started_at: when it was handed out (UTC).
    """

    number: int
    params: dict[str, Any]
    study_name: str
    started_at: datetime


def direction_sign(direction: str | int) -> int:
    """``"minimize"``/``-1`` -> ``-1``, ``"maximize"``/``1`` -> ``1``; anything else raises."""
    if direction in (1, -1) and not isinstance(direction, bool):
        return int(direction)
    if isinstance(direction, str):
        d = direction.strip().lower()
        if d in ("minimize", "minimise", "min"):
            return -1
        if d in ("maximize", "maximise", "max"):
            return 1
    raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")


def default_worker_name(slot: int | None = None) -> str:
    """``host:pid`` (and ``:slot``), naming who runs a trial."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return name if slot is None else f"{name}:{slot}"


def format_exception_tail(exc: BaseException, limit: int = 20) -> str:
    """The last ``limit`` lines of an exception's traceback."""
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()
    return "\n".join(lines[-limit:])
