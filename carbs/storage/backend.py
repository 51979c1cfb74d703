"""The ``Storage`` class: studies and trials in a SQL database.

It knows nothing about the optimizer: it stores JSON-compatible parameter
dicts and numbers, and offers one serialised critical section per study
(:meth:`Storage.locked_study`) in which the caller may read every trial and
add new ones without any other process doing the same.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from carbs.storage.engine import (
    DEFAULT_BUSY_TIMEOUT,
    SQLITE_BEGIN_OPTION,
    StorageError,
    is_sqlite,
    masked,
    normalize_url,
    shared_engine,
    sqlite_path,
)
from carbs.storage.models import (
    ADDED_COLUMNS,
    SCHEMA_VERSION,
    Base,
    IntermediateRow,
    ModelCacheRow,
    SchemaVersionRow,
    StudyRow,
    SuggestionRow,
    TrialRow,
)
from carbs.storage.records import (
    NON_INFORMATIVE_FAILURES,
    FailKind,
    IntermediateValue,
    PooledSuggestion,
    PoolSnapshot,
    StudyRecord,
    TrialRecord,
    TrialState,
    as_utc,
    utcnow,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How many times a write that lost a race for the SQLite lock is retried.
_WRITE_ATTEMPTS = 5
# How long a lost database-server connection is retried before giving up: long
# enough to ride out a PostgreSQL restart or failover without failing workers.
_RECONNECT_SECONDS = 60.0


class SchemaVersionError(StorageError):
    """The database's schema is one this carbs cannot use as it is.

    Either it was written by a newer carbs, or by an older one and cannot be
    upgraded in place because it is read-only.
    """


class StudyNotFoundError(StorageError):
    """No study of that name exists."""


class StudyExistsError(StorageError):
    """A study of that name exists already."""


class TrialStateError(StorageError):
    """The trial is not in a state that allows the requested change."""


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be JSON-compatible with finite numbers: {e}") from None


def _study_record(row: StudyRow) -> StudyRecord:
    created = as_utc(row.created_at)
    assert created is not None
    return StudyRecord(
        id=row.id,
        name=row.name,
        direction=row.direction,
        metric=row.metric,
        params=json.loads(row.params_json),
        settings=json.loads(row.settings_json),
        config=json.loads(row.config_json or "{}"),
        user_attrs=json.loads(row.user_attrs_json or "{}"),
        created_at=created,
    )


def _trial_record(row: TrialRow) -> TrialRecord:
    started = as_utc(row.started_at)
    assert started is not None
    return TrialRecord(
        number=row.number,
        params=json.loads(row.params_json),
        state=TrialState(row.state),
        output=row.output,
        cost=row.cost,
        started_at=started,
        finished_at=as_utc(row.finished_at),
        heartbeat_at=as_utc(row.heartbeat_at),
        heartbeat_grace=row.heartbeat_grace,
        worker=row.worker,
        suggestion_kind=row.suggestion_kind,
        retry_of=row.retry_of,
        job=row.job,
        fail_kind=FailKind(row.fail_kind) if row.fail_kind else None,
        fail_reason=row.fail_reason,
        stderr_tail=row.stderr_tail,
        user_attrs=json.loads(row.user_attrs_json or "{}"),
        id=row.id,
    )


def _is_stale(row: TrialRow, now: datetime) -> bool:
    if row.heartbeat_grace is None:
        return False
    last = as_utc(row.heartbeat_at) or as_utc(row.started_at)
    assert last is not None
    return now - last > timedelta(seconds=row.heartbeat_grace)


def _mark_stale(row: TrialRow, now: datetime) -> None:
    last = as_utc(row.heartbeat_at) or as_utc(row.started_at)
    assert last is not None
    silent = (now - last).total_seconds()
    row.state = TrialState.FAILED.value
    row.fail_kind = FailKind.STALE.value
    row.fail_reason = (
        f"stale: worker {row.worker or '?'} sent no heartbeat for {silent:.0f} s "
        f"(grace period {row.heartbeat_grace:g} s)"
    )
    row.finished_at = now


def _informative() -> Any:
    """SQL condition of :attr:`TrialRecord.is_informative` (finished and not lost)."""
    lost = [k.value for k in NON_INFORMATIVE_FAILURES]
    return or_(
        TrialRow.state.in_([TrialState.COMPLETE.value, TrialState.PRUNED.value]),
        and_(
            TrialRow.state == TrialState.FAILED.value,
            or_(TrialRow.fail_kind.is_(None), TrialRow.fail_kind.not_in(lost)),
        ),
    )


def _pooled(row: SuggestionRow) -> PooledSuggestion:
    return PooledSuggestion(
        id=row.id,
        params=json.loads(row.params_json),
        suggestion_kind=row.suggestion_kind,
        basis=row.basis,
        cost_upper=row.cost_upper,
        definition=row.definition,
    )


class LockedStudy:
    """A study inside its critical section: see :meth:`Storage.locked_study`."""

    def __init__(self, session: Session, study: StudyRecord, row: StudyRow | None = None) -> None:
        self._session = session
        self.study = study
        self._row = row
        # The RUNNING trials as reap_stale left them (saves reading them again).
        self._running: list[TrialRecord] | None = None

    @property
    def pool_claimed_at(self) -> datetime | None:
        """When the refill of the study's suggestion pool was claimed (``None``: it is not)."""
        return None if self._row is None else as_utc(self._row.pool_claimed_at)

    def claim_pool_refill(self, ttl: float) -> bool:
        """Claim the refill of the study's suggestion pool within this locked transaction
        (see ``Storage.claim_pool_refill``): ``False`` if it was claimed less than ``ttl``
        seconds ago. A claim made here waits for no lock: the study's is held already."""
        if self._row is None:
            return False
        now = utcnow()
        claimed_at = as_utc(self._row.pool_claimed_at)
        if claimed_at is not None and (now - claimed_at).total_seconds() < ttl:
            return False
        self._row.pool_claimed_at = now
        return True

    @property
    def asking_since(self) -> datetime | None:
        """When an ask that found no trial running started (``None``: none is under way)."""
        return None if self._row is None else as_utc(self._row.asking_since)

    def set_asking_since(self, when: datetime | None) -> None:
        """Record (or, with ``None``, clear) the start of an ask made while no trial ran."""
        if self._row is not None and (when is not None or self._row.asking_since is not None):
            self._row.asking_since = when

    def trials(self, states: Sequence[TrialState] | None = None) -> list[TrialRecord]:
        """Every trial (or those in ``states``), by number."""
        stmt = select(TrialRow).where(TrialRow.study_id == self.study.id)
        if states is not None:
            stmt = stmt.where(TrialRow.state.in_([s.value for s in states]))
        rows = self._session.scalars(stmt.order_by(TrialRow.number)).all()
        return [_trial_record(r) for r in rows]

    def observation_count(self) -> int:
        """How many trials are informative (what the optimizer holds as observations)."""
        count = self._session.scalar(
            select(func.count()).where(TrialRow.study_id == self.study.id, _informative())
        )
        return int(count or 0)

    def budget_usage(self) -> tuple[int, float]:
        """``(trials counted by a trial budget, summed cost)``: RUNNING or informative
        trials, and the cost of every trial that has one, without reading the trials."""
        used = self._session.scalar(
            select(func.count()).where(
                TrialRow.study_id == self.study.id,
                or_(TrialRow.state == TrialState.RUNNING.value, _informative()),
            )
        )
        spent = self._session.scalar(
            select(func.sum(TrialRow.cost)).where(TrialRow.study_id == self.study.id)
        )
        return int(used or 0), float(spent or 0.0)

    def retry_trials(self) -> list[TrialRecord]:
        """The trials a retry policy looks at: FAILED ones and re-runs, by number."""
        rows = self._session.scalars(
            select(TrialRow)
            .where(
                TrialRow.study_id == self.study.id,
                or_(TrialRow.state == TrialState.FAILED.value, TrialRow.retry_of.is_not(None)),
            )
            .order_by(TrialRow.number)
        ).all()
        return [_trial_record(r) for r in rows]

    def pooled_suggestions(self) -> list[PooledSuggestion]:
        """The study's pooled suggestions, in the order they were made (oldest first)."""
        rows = self._session.scalars(
            select(SuggestionRow)
            .where(SuggestionRow.study_id == self.study.id)
            .order_by(SuggestionRow.id)
        ).all()
        return [_pooled(r) for r in rows]

    def remove_suggestions(self, ids: Sequence[int]) -> int:
        """Delete pooled suggestions by id (handed out, or no longer usable); how many were there."""
        if not ids:
            return 0
        result = self._session.execute(
            delete(SuggestionRow).where(
                SuggestionRow.study_id == self.study.id, SuggestionRow.id.in_(list(ids))
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def reap_stale(self, now: datetime | None = None) -> list[int]:
        """Mark RUNNING trials whose worker stopped heartbeating as FAILED(stale)."""
        now = now or utcnow()
        rows = self._session.scalars(
            select(TrialRow).where(
                TrialRow.study_id == self.study.id, TrialRow.state == TrialState.RUNNING.value
            )
        ).all()
        reaped = []
        running = []
        for row in rows:
            if _is_stale(row, now):
                _mark_stale(row, now)
                reaped.append(row.number)
            else:
                running.append(_trial_record(row))
        if reaped:
            self._session.flush()
            logger.warning("study %r: trials %s marked FAILED (stale)", self.study.name, reaped)
        self._running = sorted(running, key=lambda t: t.number)
        return reaped

    def running_trials(self) -> list[TrialRecord]:
        """The RUNNING trials, by number (those :meth:`reap_stale` left, without reading them again)."""
        if self._running is None:
            return self.trials([TrialState.RUNNING])
        return list(self._running)

    def pool_and_observations(self) -> tuple[list[PooledSuggestion], int | None]:
        """The pooled suggestions (oldest first) and :meth:`observation_count`, in one query
        (the count is ``None`` when the pool is empty)."""
        count = (
            select(func.count())
            .where(TrialRow.study_id == self.study.id, _informative())
            .scalar_subquery()
        )
        rows = self._session.execute(
            select(SuggestionRow, count).where(SuggestionRow.study_id == self.study.id).order_by(SuggestionRow.id)
        ).all()
        return [_pooled(r[0]) for r in rows], (int(rows[0][1]) if rows else None)

    def add_trial(
        self,
        params: dict[str, Any],
        *,
        worker: str | None = None,
        heartbeat_grace: float | None = None,
        suggestion_kind: str | None = None,
        user_attrs: dict[str, Any] | None = None,
        retry_of: int | None = None,
        job: str | None = None,
    ) -> TrialRecord:
        """Insert a RUNNING trial with the next number (a re-run of ``retry_of`` if given)."""
        if heartbeat_grace is not None and not (
            math.isfinite(heartbeat_grace) and heartbeat_grace > 0
        ):
            raise ValueError(f"heartbeat_grace must be a number > 0, got {heartbeat_grace!r}")
        # The next number is found by the insert itself: one statement, as the
        # study lock is held meanwhile.
        number = (
            select(func.coalesce(func.max(TrialRow.number) + 1, 0))
            .where(TrialRow.study_id == self.study.id)
            .scalar_subquery()
        )
        now = utcnow()
        values = dict(
            study_id=self.study.id,
            number=number,
            state=TrialState.RUNNING.value,
            params_json=_dumps(params, "trial params"),
            started_at=now,
            heartbeat_at=now,
            heartbeat_grace=heartbeat_grace,
            worker=worker,
            suggestion_kind=suggestion_kind,
            retry_of=retry_of,
            job=job,
            user_attrs_json=_dumps(user_attrs or {}, "trial user_attrs"),
        )
        self._running = None
        row = self._session.scalars(insert(TrialRow).values(**values).returning(TrialRow)).one()
        return _trial_record(row)


def _is_read_only(e: Exception) -> bool:
    """Whether a database error says that the storage may not be written (file, directory or grants)."""
    orig = getattr(e, "orig", e)
    # PostgreSQL: read_only_sql_transaction, insufficient_privilege.
    if getattr(orig, "sqlstate", None) in ("25006", "42501"):
        return True
    return "readonly database" in str(orig).lower()  # every SQLITE_READONLY variant says so


def _sqlite_schema_version_read_only(path: str) -> int | None:
    """The schema version of an SQLite file read without writing anything (``None`` if unreadable).

    ``immutable=1`` reads the main file without the locks and the ``-shm`` file
    that WAL mode needs, so it works in a read-only directory; it misses what is
    still only in a ``-wal`` file, which is good enough to word an error.
    """
    uri = f"file:{urllib.parse.quote(path)}?immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            row = conn.execute("SELECT max(version) FROM carbs_schema_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


class Storage:
    """Studies and trials in an SQLite file or a PostgreSQL database.

    Args:
        url: an SQLAlchemy URL (``sqlite:///sweeps.db``,
            ``postgresql+psycopg://user@host/db``), a bare file path, or
            ``None`` for ``$CARBS_STORAGE`` / ``sqlite:///carbs.db``.
        busy_timeout: seconds an SQLite writer waits for the lock.
    """

    def __init__(self, url: str | None = None, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.url = normalize_url(url)
        self.engine: Engine = shared_engine(self.url, busy_timeout)
        self._sqlite = is_sqlite(self.url)
        self._write_engine = (
            self.engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            if self._sqlite
            else self.engine
        )
        try:
            self._init_schema()
        except BaseException:
            # SQLite opens a file it may not write read-only, and the connection
            # stays read-only. Pooled in the shared engine, such connections would
            # refuse every later opening of this URL in the process, even once write
            # access is given: close them. Storages already open on the URL get
            # fresh connections when they next need one.
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Storage({masked(self.url)!r})"

    def __str__(self) -> str:
        return masked(self.url)

    # -- plumbing -------------------------------------------------------------
    def _fail(self, e: Exception) -> StorageError:
        reason = getattr(e, "orig", None) or e
        return StorageError(f"storage {masked(self.url)}: {reason}")

    def _init_schema(self) -> None:
        for attempt in range(3):
            version: int | None = None
            try:
                version = self._check_version()
                with self._write_engine.begin() as conn:
                    Base.metadata.create_all(conn)
                    version = conn.scalar(select(SchemaVersionRow.version))
                    if version is None:
                        conn.execute(insert(SchemaVersionRow).values(id=1, version=SCHEMA_VERSION))
                    elif version < SCHEMA_VERSION:
                        self._upgrade(conn, version)
                return
            except SchemaVersionError:
                raise
            except IntegrityError:
                # Another process created the schema at the same moment: look again.
                time.sleep(0.1 * (attempt + 1))
            except (OperationalError, DBAPIError) as e:
                if version is not None and version < SCHEMA_VERSION and _is_read_only(e):
                    raise self._upgrade_needs_write(version, e) from None
                if attempt == 2 or not self._is_race(e):
                    raise StorageError(
                        f"cannot open storage {masked(self.url)}: {getattr(e, 'orig', e)}"
                    ) from None
                time.sleep(0.1 * (attempt + 1))
        self._check_version()

    def _where(self) -> str:
        """The storage for messages: the file of an SQLite database, else the masked URL."""
        path = sqlite_path(self.url)
        return f"file {path}" if path else masked(self.url)

    def _upgrade_needs_write(self, version: int, e: Exception) -> SchemaVersionError:
        # A read-only SQLite connection leaves a -shm file as read-only as the
        # database was; it must be made writable too, or the next opening is read-only again.
        files = (
            " (to the file, its directory, and the -wal and -shm files beside it if they are there)"
            if sqlite_path(self.url)
            else ""
        )
        return SchemaVersionError(
            f"storage {self._where()} has schema version {version}, older than the current version "
            f"{SCHEMA_VERSION}; opening it upgrades it in place, which needs write access, and it is "
            f"read-only ({getattr(e, 'orig', e)}). Open it once with write access{files} to upgrade it"
        )

    def _upgrade(self, conn: Connection, version: int) -> None:
        """Bring a database written by an older carbs up to ``SCHEMA_VERSION`` in place.

        Runs in the schema transaction (the SQLite write lock, or PostgreSQL's
        table lock for the ALTER), so two processes opening an old database at
        once upgrade it once: the second sees the new version, or fails on an
        existing column and retries.
        """
        columns: dict[str, set[str]] = {}
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for table, column, sql_type in ADDED_COLUMNS.get(step, ()):
                if table not in columns:
                    columns[table] = {c["name"] for c in inspect(conn).get_columns(table)}
                if column in columns[table]:
                    continue
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
        conn.execute(update(SchemaVersionRow).values(version=SCHEMA_VERSION))
        logger.info(
            "storage %s upgraded from schema version %d to %d", masked(self.url), version, SCHEMA_VERSION
        )

    @staticmethod
    def _is_race(e: Exception) -> bool:
        text = str(e).lower()
        return "already exists" in text or "duplicate" in text or "locked" in text

    def _check_version(self) -> int | None:
        """The database's schema version (``None`` before it has a schema); raises if it is newer."""
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table(SchemaVersionRow.__tablename__):
                    return None
                version = conn.scalar(select(func.max(SchemaVersionRow.version)))
        except (OperationalError, DBAPIError) as e:
            raise self._cannot_read(e) from None
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"storage {masked(self.url)} has schema version {version}, newer than the "
                f"version {SCHEMA_VERSION} this carbs understands; upgrade carbs to open it"
            )
        return version

    def _cannot_read(self, e: Exception) -> StorageError:
        """The error for a database that cannot even be read.

        An SQLite file in WAL mode in a read-only directory is one: SQLite must
        create its ``-wal`` and ``-shm`` files beside it to read it.
        """
        reason = getattr(e, "orig", e)
        path = sqlite_path(self.url)
        if path is None or not _is_read_only(e):
            return StorageError(f"cannot open storage {masked(self.url)}: {reason}")
        version = _sqlite_schema_version_read_only(path)
        if version is not None and version < SCHEMA_VERSION:
            return self._upgrade_needs_write(version, e)
        return StorageError(
            f"cannot open storage file {path}: {reason} (SQLite needs write access to the file's "
            "directory to create its -wal and -shm files beside it)"
        )

    def _transient(self, e: OperationalError) -> bool:
        """A server connection that dropped (worth reconnecting), not a bad query."""
        if self._sqlite:
            return False
        if e.connection_invalidated:
            return True
        text = str(getattr(e, "orig", e)).lower()
        return any(
            marker in text
            for marker in (
                "connection",
                "server closed",
                "terminating",
                "shutting down",
                "starting up",
                "recovery mode",
            )
        )

    def _run(self, fn: Callable[[Session], T], *, write: bool) -> T:
        """Run ``fn`` in a session (a transaction when ``write``), retrying the transient.

        SQLite lock timeouts are retried a few times; a lost PostgreSQL
        connection is retried with backoff for up to ``_RECONNECT_SECONDS``.
        A write refused by a read-only SQLite connection is tried once more on
        a fresh connection. A retried transaction runs ``fn`` again from the
        start, so nothing is half-applied.
        """
        engine = self._write_engine if write else self.engine
        deadline = time.monotonic() + _RECONNECT_SECONDS
        attempt = 0
        reopened = False
        while True:
            attempt += 1
            try:
                with Session(engine, expire_on_commit=False) as session:
                    if not write:
                        return fn(session)
                    with session.begin():
                        return fn(session)
            except OperationalError as e:
                if "locked" in str(e).lower() and attempt < _WRITE_ATTEMPTS:
                    logger.debug("storage busy, retrying (%d)", attempt)
                    time.sleep(0.2 * attempt)
                    continue
                if self._transient(e) and time.monotonic() < deadline:
                    logger.warning(
                        "storage %s unreachable (%s); retrying", masked(self.url), _first_line(e)
                    )
                    time.sleep(min(0.5 * attempt, 5.0))
                    continue
                if self._sqlite and _is_read_only(e):
                    # SQLite opened the connection read-only (the file could not be
                    # written then) and it stays so, as do the others pooled, even
                    # once write access is given: drop them and try once more on a
                    # connection opened now.
                    self.engine.dispose()
                    if not reopened:
                        reopened = True
                        continue
                raise self._fail(e) from None

    def _read(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, write=False)

    def _write(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, write=True)

    # -- studies --------------------------------------------------------------
    def create_study(
        self,
        name: str,
        *,
        direction: int,
        metric: str,
        params: list[dict[str, Any]],
        settings: dict[str, Any],
        config: dict[str, Any] | None = None,
        user_attrs: dict[str, Any] | None = None,
    ) -> StudyRecord:
        """Insert a new study; raises ``StudyExistsError`` if the name is taken."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"study name must be a non-empty string, got {name!r}")
        if direction not in (1, -1):
            raise ValueError(f"direction must be 1 or -1, got {direction!r}")

        def insert(session: Session) -> StudyRecord:
            row = StudyRow(
                name=name,
                direction=direction,
                metric=metric,
                params_json=_dumps(params, "params"),
                settings_json=_dumps(settings, "settings"),
                config_json=_dumps(config or {}, "config"),
                user_attrs_json=_dumps(user_attrs or {}, "user_attrs"),
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _study_record(row)

        try:
            return self._write(insert)
        except IntegrityError:
            raise StudyExistsError(f"a study named {name!r} exists already") from None

    def get_study(self, name: str) -> StudyRecord:
        """The study called ``name``; raises ``StudyNotFoundError`` listing the known names."""
        def find(session: Session) -> StudyRecord | list[str]:
            row = session.scalar(select(StudyRow).where(StudyRow.name == name))
            if row is not None:
                return _study_record(row)
            return list(session.scalars(select(StudyRow.name).order_by(StudyRow.id)))

        found = self._read(find)
        if isinstance(found, StudyRecord):
            return found
        names = found
        known = f"; studies in this storage: {names}" if names else "; the storage has no studies"
        raise StudyNotFoundError(f"no study named {name!r} in {masked(self.url)}{known}")

    def list_studies(self) -> list[StudyRecord]:
        """Every study, oldest first."""
        return self._read(
            lambda session: [
                _study_record(r) for r in session.scalars(select(StudyRow).order_by(StudyRow.id))
            ]
        )

    def update_study(
        self,
        study_id: int,
        *,
        direction: int | None = None,
        metric: str | None = None,
        params: list[dict[str, Any]] | None = None,
        settings: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        user_attrs: dict[str, Any] | None = None,
    ) -> StudyRecord:
        """Change stored fields of a study (``None`` leaves a field as it is)."""

        def change(session: Session) -> StudyRecord:
            row = session.get(StudyRow, study_id)
            if row is None:
                raise StudyNotFoundError(f"no study with id {study_id}")
            if direction is not None:
                row.direction = direction
            if metric is not None:
                row.metric = metric
            if params is not None:
                row.params_json = _dumps(params, "params")
            if settings is not None:
                row.settings_json = _dumps(settings, "settings")
            if config is not None:
                row.config_json = _dumps(config, "config")
            if user_attrs is not None:
                row.user_attrs_json = _dumps(user_attrs, "user_attrs")
            session.flush()
            return _study_record(row)

        return self._write(change)

    def delete_study(self, name: str) -> None:
        """Delete a study and all its trials."""
        study = self.get_study(name)

        def remove(session: Session) -> None:
            session.execute(delete(SuggestionRow).where(SuggestionRow.study_id == study.id))
            trial_ids = select(TrialRow.id).where(TrialRow.study_id == study.id)
            for value_row in session.scalars(
                select(IntermediateRow).where(IntermediateRow.trial_id.in_(trial_ids))
            ):
                session.delete(value_row)
            for trial_row in session.scalars(select(TrialRow).where(TrialRow.study_id == study.id)):
                session.delete(trial_row)
            cache_row = session.get(ModelCacheRow, study.id)
            if cache_row is not None:
                session.delete(cache_row)
            study_row = session.get(StudyRow, study.id)
            if study_row is not None:
                session.delete(study_row)

        self._write(remove)

    # -- trials ---------------------------------------------------------------
    def locked_study(self, study_id: int, fn: Callable[[LockedStudy], T]) -> T:
        """Run ``fn`` while holding the study's lock, then commit what it added.

        PostgreSQL locks the study row (``SELECT ... FOR UPDATE``); SQLite takes
        the database write lock (``BEGIN IMMEDIATE``). Either way at most one
        process at a time is inside ``fn`` for a given study, and it sees every
        trial committed before it entered.
        """

        def run(session: Session) -> T:
            row = session.scalar(
                select(StudyRow).where(StudyRow.id == study_id).with_for_update()
            )
            if row is None:
                raise StudyNotFoundError(f"no study with id {study_id}")
            return fn(LockedStudy(session, _study_record(row), row))

        return self._write(run)

    def trials(self, study_id: int, states: Sequence[TrialState] | None = None) -> list[TrialRecord]:
        """Every trial of a study (or those in ``states``), by number."""
        stmt = select(TrialRow).where(TrialRow.study_id == study_id)
        if states is not None:
            stmt = stmt.where(TrialRow.state.in_([TrialState(s).value for s in states]))
        return self._read(
            lambda session: [
                _trial_record(r) for r in session.scalars(stmt.order_by(TrialRow.number))
            ]
        )

    def trials_since(
        self, study_id: int, after_number: int, numbers: Sequence[int] = ()
    ) -> list[TrialRecord]:
        """Trials numbered above ``after_number``, plus those in ``numbers``, by number.

        Trials only ever change while RUNNING (and a stale one once more with
        its late result), so a reader that keeps the highest number it has
        seen and re-reads its unfinished trials sees every change without
        reading the whole study again.
        """
        cond = TrialRow.number > after_number
        if numbers:
            cond = or_(cond, TrialRow.number.in_(list(numbers)))
        stmt = select(TrialRow).where(TrialRow.study_id == study_id, cond)
        return self._read(
            lambda session: [
                _trial_record(r) for r in session.scalars(stmt.order_by(TrialRow.number))
            ]
        )

    def trial(self, study_id: int, number: int) -> TrialRecord:
        """One trial by number; raises ``KeyError`` naming it if absent."""
        def find(session: Session) -> TrialRecord | None:
            row = session.scalar(
                select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
            )
            return None if row is None else _trial_record(row)

        record = self._read(find)
        if record is None:
            raise KeyError(f"trial number {number} does not exist in study id {study_id}")
        return record

    def state_counts(self, study_id: int) -> dict[TrialState, int]:
        """How many trials are in each state."""
        rows = self._read(
            lambda session: session.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.study_id == study_id)
                .group_by(TrialRow.state)
            ).all()
        )
        counts = {s: 0 for s in TrialState}
        for state, count in rows:
            counts[TrialState(state)] = int(count)
        return counts

    def heartbeat(self, study_id: int, number: int) -> bool:
        """Record that a RUNNING trial's worker is alive; ``False`` if it is no longer RUNNING."""

        def beat(session: Session) -> bool:
            result = session.execute(
                update(TrialRow)
                .where(
                    TrialRow.study_id == study_id,
                    TrialRow.number == number,
                    TrialRow.state == TrialState.RUNNING.value,
                )
                .values(heartbeat_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

        return self._write(beat)

    def set_trial_job(self, study_id: int, number: int, job: str) -> None:
        """Record which launcher job runs a trial (``slurm:1234``, ``ray:<task id>``)."""

        def set_job(session: Session) -> None:
            session.execute(
                update(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.number == number)
                .values(job=job)
            )

        self._write(set_job)

    def reap_stale(self, study_id: int) -> list[int]:
        """Mark RUNNING trials without a recent heartbeat FAILED(stale); returns their numbers."""
        return self.locked_study(study_id, lambda locked: locked.reap_stale())

    def finish_trial(
        self,
        study_id: int,
        number: int,
        *,
        state: TrialState,
        output: float | None = None,
        cost: float | None = None,
        fail_kind: FailKind | None = None,
        fail_reason: str | None = None,
        stderr_tail: str | None = None,
        user_attrs: dict[str, Any] | None = None,
        finished_at: datetime | None = None,
    ) -> TrialRecord:
        """Record the end of a RUNNING trial.

        A trial already declared stale still accepts its real result (its
        worker was alive after all, only silent); any other finished trial
        raises ``TrialStateError``.
        """
        state = TrialState(state)
        if state == TrialState.RUNNING:
            raise ValueError("finish_trial needs state COMPLETE, FAILED or PRUNED, got RUNNING")

        def finish(session: Session) -> TrialRecord:
            row = session.scalar(
                select(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.number == number)
                .with_for_update()
            )
            if row is None:
                raise KeyError(f"trial number {number} does not exist in study id {study_id}")
            late = row.state == TrialState.FAILED.value and row.fail_kind == FailKind.STALE.value
            if row.state != TrialState.RUNNING.value and not late:
                raise TrialStateError(
                    f"trial {number} is already {row.state}; only a RUNNING trial can be told"
                )
            if late:
                logger.warning("trial %d was marked stale; recording its late result", number)
            row.state = state.value
            row.output = output
            row.cost = cost
            row.fail_kind = fail_kind.value if fail_kind is not None else None
            row.fail_reason = fail_reason
            row.stderr_tail = stderr_tail
            row.finished_at = finished_at or utcnow()
            if user_attrs:
                merged = json.loads(row.user_attrs_json or "{}")
                merged.update(user_attrs)
                row.user_attrs_json = _dumps(merged, "trial user_attrs")
            session.flush()
            return _trial_record(row)

        return self._write(finish)


    # -- intermediate values (learning curves) --------------------------------------
    def add_intermediate(
        self,
        study_id: int,
        number: int,
        values: Sequence[tuple[int, float, float]],
        reported_at: datetime | None = None,
    ) -> None:
        """Append ``(step, value, cost so far)`` points to a RUNNING trial's curve.

        Steps must increase, also across calls; raises ``ValueError`` naming the
        step otherwise, and ``TrialStateError`` if the trial is not RUNNING.
        """
        if not values:
            return
        checked = []
        for step, value, cost in values:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"trial {number}: step must be an integer >= 0, got {step!r}")
            for name, x in (("value", value), ("cost", cost)):
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                    raise ValueError(
                        f"trial {number}: intermediate {name} at step {step} must be a finite "
                        f"number, got {x!r}"
                    )
            checked.append((step, float(value), float(cost)))
        when = reported_at or utcnow()

        def add(session: Session) -> None:
            row = session.scalar(
                select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
            )
            if row is None:
                raise KeyError(f"trial number {number} does not exist in study id {study_id}")
            if row.state != TrialState.RUNNING.value:
                raise TrialStateError(
                    f"trial {number} is already {row.state}; only a RUNNING trial can report"
                )
            last = session.scalar(
                select(func.max(IntermediateRow.step)).where(IntermediateRow.trial_id == row.id)
            )
            for step, value, cost in checked:
                if last is not None and step <= last:
                    raise ValueError(
                        f"trial {number}: step {step} does not come after step {last}; "
                        "steps must increase"
                    )
                session.add(
                    IntermediateRow(
                        trial_id=row.id, step=step, value=value, cost=cost, reported_at=when
                    )
                )
                last = step

        self._write(add)

    def intermediate_values(
        self, study_id: int, numbers: Sequence[int] | None = None
    ) -> dict[int, list[IntermediateValue]]:
        """The curves of a study's trials (or of ``numbers``): trial number -> points by step."""
        stmt = (
            select(TrialRow.number, IntermediateRow)
            .join(TrialRow, IntermediateRow.trial_id == TrialRow.id)
            .where(TrialRow.study_id == study_id)
        )
        if numbers is not None:
            stmt = stmt.where(TrialRow.number.in_(list(numbers)))
        stmt = stmt.order_by(TrialRow.number, IntermediateRow.step)

        def read(session: Session) -> dict[int, list[IntermediateValue]]:
            out: dict[int, list[IntermediateValue]] = {}
            for number, row in session.execute(stmt).all():
                when = as_utc(row.reported_at)
                assert when is not None
                out.setdefault(number, []).append(
                    IntermediateValue(row.step, row.value, row.cost, when)
                )
            return out

        return self._read(read)

    def last_steps(self, study_id: int) -> dict[int, int]:
        """Trial number -> the last step it reported (trials with a curve only)."""
        stmt = (
            select(TrialRow.number, func.max(IntermediateRow.step))
            .join(TrialRow, IntermediateRow.trial_id == TrialRow.id)
            .where(TrialRow.study_id == study_id)
            .group_by(TrialRow.number)
        )
        return self._read(
            lambda session: {int(n): int(s) for n, s in session.execute(stmt).all()}
        )

    # -- model cache ----------------------------------------------------------
    def model_cache(self, study_id: int) -> tuple[int, dict[str, Any]] | None:
        """``(observation_count, payload)`` last saved by :meth:`save_model_cache`, or ``None``."""
        return self.model_cache_and_claim(study_id)[0]

    def model_cache_and_claim(
        self, study_id: int
    ) -> tuple[tuple[int, dict[str, Any]] | None, datetime | None]:
        """:meth:`model_cache` and when the pending claim (if any) was made, in one read."""

        def find(session: Session) -> tuple[tuple[int, dict[str, Any]] | None, datetime | None]:
            row = session.get(ModelCacheRow, study_id)
            if row is None:
                return None, None
            saved = None if row.observation_count < 0 else (row.observation_count, json.loads(row.payload_json))
            return saved, as_utc(row.claimed_at)

        return self._read(find)

    def claim_model_refit(self, study_id: int, ttl: float) -> bool:
        """Claim the next model fit of a study: ``False`` if another process claimed it
        less than ``ttl`` seconds ago (and has not saved since), else ``True``."""
        now = utcnow()

        def claim(session: Session) -> bool:
            row = session.scalar(
                select(ModelCacheRow).where(ModelCacheRow.study_id == study_id).with_for_update()
            )
            if row is None:
                session.add(
                    ModelCacheRow(
                        study_id=study_id, observation_count=-1, payload_json="{}",
                        updated_at=now, claimed_at=now,
                    )
                )
                session.flush()
                return True
            claimed = as_utc(row.claimed_at)
            if claimed is not None and now - claimed < timedelta(seconds=ttl):
                return False
            row.claimed_at = now
            return True

        try:
            return self._write(claim)
        except IntegrityError:  # another process inserted the row first: it holds the claim
            return False

    def save_model_cache(self, study_id: int, observation_count: int, payload: dict[str, Any]) -> None:
        """Store a study's shared model payload (unless a newer one is stored) and end the claim."""
        text = _dumps(payload, "model cache")
        now = utcnow()

        def save(session: Session) -> None:
            row = session.scalar(
                select(ModelCacheRow).where(ModelCacheRow.study_id == study_id).with_for_update()
            )
            if row is None:
                session.add(
                    ModelCacheRow(
                        study_id=study_id, observation_count=observation_count,
                        payload_json=text, updated_at=now, claimed_at=None,
                    )
                )
                return
            row.claimed_at = None
            if observation_count >= row.observation_count:
                row.observation_count = observation_count
                row.payload_json = text
                row.updated_at = now

        try:
            self._write(save)
        except IntegrityError:  # inserted concurrently: update it instead
            self._write(save)


    # -- suggestion pool --------------------------------------------------------
    def add_suggestions(
        self,
        study_id: int,
        definition: str,
        basis: int,
        suggestions: Sequence[tuple[dict[str, Any], str | None, float | None]],
    ) -> None:
        """Store ``(params, suggestion_kind, cost_upper)`` suggestions in the study's pool,
        made from ``basis`` observations for the study ``definition`` (a digest)."""
        if not suggestions:
            return
        now = utcnow()
        rows = [
            {
                "study_id": study_id,
                "params_json": _dumps(params, "suggestion params"),
                "suggestion_kind": kind,
                "basis": int(basis),
                "definition": definition,
                "cost_upper": cost_upper,
                "created_at": now,
            }
            for params, kind, cost_upper in suggestions
        ]
        self._write(lambda session: session.execute(insert(SuggestionRow), rows))

    def pooled_suggestions(self, study_id: int) -> list[PooledSuggestion]:
        """The study's pooled suggestions (oldest first), read without the study lock."""
        stmt = select(SuggestionRow).where(SuggestionRow.study_id == study_id).order_by(SuggestionRow.id)
        return self._read(lambda session: [_pooled(r) for r in session.scalars(stmt)])

    def pool_snapshot(self, study_id: int, with_running: bool = True) -> PoolSnapshot:
        """Without the study lock, in one read: the RUNNING trials (left out, for less
        work, without ``with_running``), the pooled suggestions (oldest first), the
        number of informative trials (observations), the claim of the pool's refill
        and the start of an ask under way while no trial ran."""
        running = (
            select(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.RUNNING.value)
            .order_by(TrialRow.number)
        )
        count = select(func.count()).where(TrialRow.study_id == study_id, _informative()).scalar_subquery()
        study = select(count, StudyRow.pool_claimed_at, StudyRow.asking_since).where(StudyRow.id == study_id)
        pool = select(SuggestionRow).where(SuggestionRow.study_id == study_id).order_by(SuggestionRow.id)

        def read(session: Session) -> PoolSnapshot:
            head = session.execute(study).first()
            return PoolSnapshot(
                running=[_trial_record(r) for r in session.scalars(running)] if with_running else [],
                rows=[_pooled(r) for r in session.scalars(pool)],
                observations=0 if head is None else int(head[0] or 0),
                claimed_at=None if head is None else as_utc(head[1]),
                asking_since=None if head is None else as_utc(head[2]),
            )

        return self._read(read)

    def drop_suggestions(self, study_id: int, ids: Sequence[int]) -> None:
        """Delete pooled suggestions that can no longer be used (no study lock needed)."""
        if ids:
            self._write(
                lambda session: session.execute(
                    delete(SuggestionRow).where(
                        SuggestionRow.study_id == study_id, SuggestionRow.id.in_(list(ids))
                    )
                )
            )

    def take_suggestion(
        self,
        study_id: int,
        choices: Sequence[PooledSuggestion],
        *,
        worker: str | None = None,
        heartbeat_grace: float | None = None,
        job: str | None = None,
    ) -> TrialRecord | None:
        """Store the first of ``choices`` still in the pool, and not the point of a RUNNING
        trial, as a RUNNING trial, deleting it from the pool; ``None`` if none qualifies.

        The choices were read before; under the study lock only the statements
        that must see the latest state run (one delete, one insert per choice),
        so the lock is held for few round trips to the database.
        """
        if heartbeat_grace is not None and not (math.isfinite(heartbeat_grace) and heartbeat_grace > 0):
            raise ValueError(f"heartbeat_grace must be a number > 0, got {heartbeat_grace!r}")

        def take(session: Session) -> TrialRecord | None:
            session.scalar(select(StudyRow.id).where(StudyRow.id == study_id).with_for_update())
            for choice in choices:
                gone = session.scalars(
                    delete(SuggestionRow)
                    .where(SuggestionRow.study_id == study_id, SuggestionRow.id == choice.id)
                    .returning(SuggestionRow.id)
                ).all()
                if not gone:
                    continue  # another ask took it
                params = _dumps(choice.params, "trial params")
                now = utcnow()
                number = select(func.coalesce(func.max(TrialRow.number) + 1, 0)).where(
                    TrialRow.study_id == study_id
                ).scalar_subquery()
                same_point = (
                    select(TrialRow.id)
                    .where(
                        TrialRow.study_id == study_id,
                        TrialRow.state == TrialState.RUNNING.value,
                        TrialRow.params_json == params,
                    )
                    .exists()
                )
                columns = {
                    "study_id": literal(study_id),
                    "number": number,
                    "state": literal(TrialState.RUNNING.value),
                    "params_json": literal(params),
                    "started_at": literal(now, TrialRow.started_at.type),
                    "heartbeat_at": literal(now, TrialRow.heartbeat_at.type),
                    "heartbeat_grace": literal(heartbeat_grace, TrialRow.heartbeat_grace.type),
                    "worker": literal(worker, TrialRow.worker.type),
                    "suggestion_kind": literal(choice.suggestion_kind, TrialRow.suggestion_kind.type),
                    "job": literal(job, TrialRow.job.type),
                    "user_attrs_json": literal("{}"),
                }
                row = session.scalars(
                    insert(TrialRow)
                    .from_select(list(columns), select(*columns.values()).where(~same_point))
                    .returning(TrialRow)
                ).first()
                if row is not None:
                    return _trial_record(row)
                # Its point is running already (it stays deleted): try the next.
            return None

        return self._write(take)

    def pool_state(self, study_id: int) -> tuple[int, datetime | None]:
        """``(suggestions in the study's pool, when its refill was claimed)``: one cheap read."""

        count = select(func.count()).where(SuggestionRow.study_id == study_id).scalar_subquery()

        def read(session: Session) -> tuple[int, datetime | None]:
            row = session.execute(select(count, StudyRow.pool_claimed_at).where(StudyRow.id == study_id)).first()
            return (0, None) if row is None else (int(row[0] or 0), as_utc(row[1]))

        return self._read(read)

    def claim_pool_refill(self, study_id: int, ttl: float) -> bool:
        """Claim the refill of a study's suggestion pool: ``False`` if another process
        claimed it less than ``ttl`` seconds ago and has not released it."""
        now = utcnow()

        def claim(session: Session) -> bool:
            result = session.execute(
                update(StudyRow)
                .where(
                    StudyRow.id == study_id,
                    or_(
                        StudyRow.pool_claimed_at.is_(None),
                        StudyRow.pool_claimed_at < now - timedelta(seconds=ttl),
                    ),
                )
                .values(pool_claimed_at=now)
            )
            return bool(getattr(result, "rowcount", 0))

        return self._write(claim)

    def release_pool_claim(self, study_id: int) -> None:
        """End the refill claim of a study's suggestion pool."""
        self._write(
            lambda session: session.execute(
                update(StudyRow).where(StudyRow.id == study_id).values(pool_claimed_at=None)
            )
        )


def _first_line(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def open_storage(url: str | None = None) -> Storage:
    """Open (and if needed create) the storage at ``url``; see :class:`Storage`."""
    try:
        return Storage(url)
    except SQLAlchemyError as e:  # pragma: no cover - wrapped above, kept as a safety net
        raise StorageError(f"cannot open storage {masked(normalize_url(url))}: {e}") from None
