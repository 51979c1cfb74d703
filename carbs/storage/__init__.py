"""Persistent storage of studies and trials (SQLite or PostgreSQL via SQLAlchemy).

The database is the single source of truth of a sweep: the optimizer's state
is rebuilt from the stored trials, so any process can stop at any moment
without losing a finished trial.

The records (``TrialState``, ``TrialRecord``, ...) are plain dataclasses and
load at once; the names that need SQLAlchemy load on first use, so that the
command line's help and the records stay fast to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from carbs.storage.records import (
    NON_INFORMATIVE_FAILURES,
    FailKind,
    IntermediateValue,
    PooledSuggestion,
    PoolSnapshot,
    StudyRecord,
    TrialRecord,
    TrialState,
    utcnow,
)

_LAZY = {
    "LockedStudy": "carbs.storage.backend",
    "SchemaVersionError": "carbs.storage.backend",
    "Storage": "carbs.storage.backend",
    "StudyExistsError": "carbs.storage.backend",
    "StudyNotFoundError": "carbs.storage.backend",
    "TrialStateError": "carbs.storage.backend",
    "open_storage": "carbs.storage.backend",
    "DEFAULT_STORAGE_URL": "carbs.storage.engine",
    "StorageError": "carbs.storage.engine",
    "default_storage_url": "carbs.storage.engine",
    "dispose_engines": "carbs.storage.engine",
    "masked": "carbs.storage.engine",
    "normalize_url": "carbs.storage.engine",
    "SCHEMA_VERSION": "carbs.storage.models",
}

if TYPE_CHECKING:  # pragma: no cover - the same names, for type checkers
    from carbs.storage.backend import (
        LockedStudy,
        SchemaVersionError,
        Storage,
        StudyExistsError,
        StudyNotFoundError,
        TrialStateError,
        open_storage,
    )
    from carbs.storage.engine import (
        DEFAULT_STORAGE_URL,
        StorageError,
        default_storage_url,
        dispose_engines,
        masked,
        normalize_url,
    )
    from carbs.storage.models import SCHEMA_VERSION

__all__ = [
    "DEFAULT_STORAGE_URL",
    "NON_INFORMATIVE_FAILURES",
    "SCHEMA_VERSION",
    "FailKind",
    "IntermediateValue",
    "LockedStudy",
    "PoolSnapshot",
    "PooledSuggestion",
    "SchemaVersionError",
    "Storage",
    "StorageError",
    "StudyExistsError",
    "StudyNotFoundError",
    "StudyRecord",
    "TrialRecord",
    "TrialState",
    "TrialStateError",
    "default_storage_url",
    "dispose_engines",
    "masked",
    "normalize_url",
    "open_storage",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carbs.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
