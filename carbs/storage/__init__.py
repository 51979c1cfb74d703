"""Persistent storage of studies and trials (SQLite or PostgreSQL via SQLAlchemy).

The database is the single source of truth of a sweep: the optimizer's state
is rebuilt from the stored trials, so any process can stop at any moment
without losing a finished trial.
"""

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
from carbs.storage.records import (
    NON_INFORMATIVE_FAILURES,
    FailKind,
    StudyRecord,
    TrialRecord,
    TrialState,
    utcnow,
)

__all__ = [
    "DEFAULT_STORAGE_URL",
    "NON_INFORMATIVE_FAILURES",
    "SCHEMA_VERSION",
    "FailKind",
    "LockedStudy",
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
