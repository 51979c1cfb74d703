"""Turning a storage URL into a configured SQLAlchemy engine.

* A bare path (``sweeps.db``) means an SQLite file.
* SQLite files run in WAL mode (readers never block the writer) with a long
  busy timeout, and every write transaction starts with ``BEGIN IMMEDIATE`` so
  two writers queue up instead of failing half-way (a deferred transaction
  that reads, then writes, cannot wait for the lock and errors out instead).
* ``postgresql://`` URLs use the psycopg 3 driver.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from carbs._extras import MissingExtraError

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_URL = "sqlite:///carbs.db"
STORAGE_ENV_VAR = "CARBS_STORAGE"
# Seconds a writer waits for the SQLite lock; asks hold it while the models fit.
DEFAULT_BUSY_TIMEOUT = 300.0
# Execution option that makes the SQLite "begin" hook take the write lock at once.
SQLITE_BEGIN_OPTION = "carbs_sqlite_begin"


class StorageError(RuntimeError):
    """The storage cannot be opened or used."""


class MissingDriverError(MissingExtraError, StorageError):
    """The database driver, an optional dependency, is not installed.

    A ``StorageError`` like any other failure to open the storage, and a
    ``MissingExtraError`` naming the pip extra, which the command line prints as
    one line (exit code 6).
    """


def default_storage_url() -> str:
    """``$CARBS_STORAGE`` if set, else an SQLite file ``carbs.db`` in the working directory."""
    return os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL


def normalize_url(url: str | None) -> str:
    """Resolve defaults, bare paths and driver-less PostgreSQL URLs into a full URL."""
    if url is None or not str(url).strip():
        url = default_storage_url()
    url = str(url).strip()
    if "://" not in url:
        return "sqlite:///" + os.path.abspath(os.path.expanduser(url))
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def masked(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def is_sqlite(url: str) -> bool:
    """Whether the URL points at SQLite."""
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (also in its ``file:`` URI form); ``None`` for memory or another database."""
    if not is_sqlite(url) or _sqlite_memory(url):
        return None
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        database = database[len("file:") :]
        if database == ":memory:" or parsed.query.get("mode") == "memory":
            return None
    return database


def _sqlite_memory(url: str) -> bool:
    database = make_url(url).database
    return database in (None, "", ":memory:")


def create_storage_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """Build an engine for a normalised URL; raises ``StorageError`` on a bad URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageError(f"storage URL {url!r} is not a valid database URL: {e}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
        if _sqlite_memory(url):
            # One shared connection, or every session would see its own empty database.
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except ImportError as e:
        if parsed.get_backend_name() == "postgresql":
            raise MissingDriverError("PostgreSQL storage", "psycopg", "postgres", e) from None
        raise StorageError(f"cannot use storage {masked(url)}: {e}") from None
    except ArgumentError as e:
        raise StorageError(f"cannot use storage {masked(url)}: {e}") from None
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, busy_timeout, memory=_sqlite_memory(url))
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only an
            # OS crash or power loss can lose the last transactions.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


_engines: dict[tuple[str, float], Engine] = {}
_engines_lock = threading.Lock()


def shared_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """One engine (and connection pool) per URL and process."""
    key = (url, busy_timeout)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_storage_engine(url, busy_timeout)
            # In-memory databases are private to the engine: never share them.
            if not (is_sqlite(url) and _sqlite_memory(url)):
                _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every shared engine (used after ``fork`` and in tests)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
