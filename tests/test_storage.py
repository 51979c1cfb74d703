"""The storage layer on real SQLite files and (with CARBS_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _storage_urls import as_written_by_schema, postgres_schema_url
from sqlalchemy import text
from sqlalchemy.engine import make_url

from carbs.storage import (
    SCHEMA_VERSION,
    FailKind,
    SchemaVersionError,
    Storage,
    StorageError,
    StudyExistsError,
    StudyNotFoundError,
    TrialState,
    TrialStateError,
    dispose_engines,
    normalize_url,
)
from carbs.storage.engine import masked


def _study(storage: Storage, name: str = "s") -> int:
    return storage.create_study(
        name, direction=-1, metric="loss", params=[{"name": "x"}], settings={"seed": 0}
    ).id


def test_study_round_trip(url: str) -> None:
    storage = Storage(url)
    record = storage.create_study(
        "a",
        direction=1,
        metric="acc",
        params=[{"name": "x", "space": {"type": "LinearSpace"}, "search_center": 0.5}],
        settings={"seed": 3},
        config={"command": ["python", "t.py"]},
    )
    again = Storage(url).get_study("a")
    assert again == record
    assert again.params[0]["search_center"] == 0.5 and again.config["command"][1] == "t.py"
    assert [s.name for s in storage.list_studies()] == ["a"]
    with pytest.raises(StudyExistsError, match="'a'"):
        _study(storage, "a")
    updated = storage.update_study(record.id, metric="acc2", user_attrs={"k": 1})
    assert (updated.metric, updated.user_attrs) == ("acc2", {"k": 1})
    storage.delete_study("a")
    with pytest.raises(StudyNotFoundError, match="no study named 'a'"):
        storage.get_study("a")


def test_trials_numbered_finished_and_counted(url: str) -> None:
    storage = Storage(url)
    sid = _study(storage)
    numbers = [storage.locked_study(sid, lambda lk, i=i: lk.add_trial({"x": i * 1.0}).number) for i in range(3)]
    assert numbers == [0, 1, 2]
    done = storage.finish_trial(sid, 1, state=TrialState.COMPLETE, output=0.5, cost=2.0, user_attrs={"acc": 0.9})
    assert done.state == TrialState.COMPLETE and done.output == 0.5 and done.user_attrs == {"acc": 0.9}
    assert done.duration is not None and done.duration >= 0
    storage.finish_trial(
        sid, 2, state=TrialState.FAILED, cost=1.0, fail_kind=FailKind.TIMEOUT,
        fail_reason="timed out", stderr_tail="line",
    )
    with pytest.raises(TrialStateError, match="already COMPLETE"):
        storage.finish_trial(sid, 1, state=TrialState.COMPLETE, output=1.0, cost=1.0)
    assert storage.state_counts(sid) == {
        TrialState.RUNNING: 1, TrialState.COMPLETE: 1, TrialState.FAILED: 1, TrialState.PRUNED: 0
    }
    assert [t.number for t in storage.trials(sid, [TrialState.FAILED])] == [2]
    assert storage.trial(sid, 2).fail_reason == "timed out"
    assert storage.heartbeat(sid, 0) is True
    assert storage.heartbeat(sid, 1) is False
    with pytest.raises(KeyError, match="trial number 9"):
        storage.trial(sid, 9)


def test_stale_trials_are_reaped_and_late_results_kept(url: str) -> None:
    storage = Storage(url)
    sid = _study(storage)
    storage.locked_study(sid, lambda lk: lk.add_trial({"x": 1.0}, heartbeat_grace=0.3))
    storage.locked_study(sid, lambda lk: lk.add_trial({"x": 2.0}))  # no heartbeat: never stale
    assert storage.reap_stale(sid) == []
    time.sleep(0.5)
    assert storage.reap_stale(sid) == [0]
    stale = storage.trial(sid, 0)
    assert stale.state == TrialState.FAILED and stale.fail_kind == FailKind.STALE
    assert "grace period 0.3 s" in (stale.fail_reason or "")
    assert storage.trial(sid, 1).state == TrialState.RUNNING
    late = storage.finish_trial(sid, 0, state=TrialState.COMPLETE, output=1.0, cost=1.0)
    assert late.state == TrialState.COMPLETE and late.fail_kind is None


def test_heartbeat_keeps_a_trial_alive(url: str) -> None:
    storage = Storage(url)
    sid = _study(storage)
    storage.locked_study(sid, lambda lk: lk.add_trial({"x": 1.0}, heartbeat_grace=0.4))
    for _ in range(4):
        time.sleep(0.2)
        assert storage.heartbeat(sid, 0)
        assert storage.reap_stale(sid) == []


def test_locked_sections_do_not_overlap(url: str) -> None:
    sid = _study(Storage(url))
    spans: list[tuple[float, float]] = []

    def work() -> None:
        storage = Storage(url)
        for _ in range(3):
            def inside(locked: object) -> None:
                start = time.monotonic()
                time.sleep(0.05)
                locked.add_trial({"x": 0.0})  # type: ignore[attr-defined]
                spans.append((start, time.monotonic()))
            storage.locked_study(sid, inside)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert len(spans) == 9
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert [t.number for t in Storage(url).trials(sid)] == list(range(9))


def test_newer_schema_version_is_a_clear_error(url: str) -> None:
    storage = Storage(url)
    with storage.engine.begin() as conn:
        conn.execute(text("UPDATE carbs_schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    dispose_engines()
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade carbs"):
        Storage(url)


def _older_schema_file(tmp_path: Path, version: int = 3) -> tuple[Path, int]:
    """An SQLite file of schema ``version`` holding one study with one finished trial."""
    path = tmp_path / "old.db"
    storage = Storage(f"sqlite:///{path}")
    sid = _study(storage)
    storage.locked_study(sid, lambda lk: lk.add_trial({"x": 1.0}))
    storage.finish_trial(sid, 0, state=TrialState.COMPLETE, output=0.5, cost=2.0)
    as_written_by_schema(f"sqlite:///{path}", version)
    return path, sid


def _schema_version(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT version FROM carbs_schema_version").fetchone()[0])
    finally:
        conn.close()


def _assert_names_the_upgrade(error: pytest.ExceptionInfo[SchemaVersionError], where: str) -> None:
    message = str(error.value)
    assert f"storage {where} has schema version 3, older than the current version {SCHEMA_VERSION}" in message
    assert "read-only" in message and "Open it once with write access" in message


def test_a_read_only_older_schema_file_says_to_open_it_once_with_write_access(tmp_path: Path) -> None:
    # SQLite's own read-only opening: chmod does not stop root, this does.
    path, sid = _older_schema_file(tmp_path)
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(SchemaVersionError) as error:
        Storage(read_only)
    _assert_names_the_upgrade(error, f"file {path}")
    assert _schema_version(path) == 3
    Storage(f"sqlite:///{path}")  # with write access: upgraded in place
    assert _schema_version(path) == SCHEMA_VERSION
    trials = Storage(read_only).trials(sid)  # a current schema opens read-only
    assert [(t.number, t.output) for t in trials] == [(0, 0.5)]


def _file_modes_bind() -> bool:
    """Whether a file of mode 0444 stops this process from writing it (root's usual capabilities
    override file modes; without CAP_DAC_OVERRIDE, as under ``setpriv``, they bind root too)."""
    if not hasattr(os, "geteuid"):
        return False
    with tempfile.TemporaryDirectory() as directory:
        probe = Path(directory) / "probe"
        probe.touch()
        probe.chmod(0o444)
        try:
            probe.open("a").close()
        except PermissionError:
            return True
        return False


_NOT_AS_ROOT = pytest.mark.skipif(not _file_modes_bind(), reason="file modes do not stop root from writing")


@_NOT_AS_ROOT
def test_a_read_only_older_schema_file_mode_0444(tmp_path: Path) -> None:
    path, sid = _older_schema_file(tmp_path)
    path.chmod(0o444)
    with pytest.raises(SchemaVersionError) as error:
        Storage(f"sqlite:///{path}")
    _assert_names_the_upgrade(error, f"file {path}")
    assert "the -wal and -shm files beside it" in str(error.value)
    # SQLite made the -shm file it created as read-only as the database: the message says so.
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    Storage(f"sqlite:///{path}")
    dispose_engines()
    path.chmod(0o444)
    assert [t.output for t in Storage(f"sqlite:///{path}").trials(sid)] == [0.5]


@_NOT_AS_ROOT
def test_an_older_schema_file_in_a_read_only_directory(tmp_path: Path) -> None:
    path, _ = _older_schema_file(tmp_path)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(SchemaVersionError) as error:
            Storage(f"sqlite:///{path}")
        _assert_names_the_upgrade(error, f"file {path}")
        tmp_path.chmod(0o755)
        Storage(f"sqlite:///{path}")
        dispose_engines()
        tmp_path.chmod(0o555)
        # Upgraded, it still cannot be read there: SQLite in WAL mode writes files beside it.
        with pytest.raises(StorageError, match=r"directory to create its -wal and -shm files"):
            Storage(f"sqlite:///{path}")
    finally:
        tmp_path.chmod(0o755)


@contextmanager
def _unwritable(path: Path, how: str) -> Iterator[None]:
    """``path`` may not be written inside the block: ``how`` is ``"immutable"`` (the attribute
    stops even root; skips where it cannot be set) or ``"mode"`` (0444; skips where file modes
    do not bind). Afterwards the file and any ``-wal`` and ``-shm`` beside it are writable."""
    if how == "mode":
        if not _file_modes_bind():
            pytest.skip("file modes do not stop root from writing")
        path.chmod(0o444)
        try:
            yield
        finally:
            # SQLite creates the -wal and -shm files as read-only as the database.
            for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
                if (path.parent / name).exists():
                    (path.parent / name).chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("no chattr to make a file immutable")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file immutable: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


@pytest.mark.parametrize("how", ["immutable", "mode"])
def test_opening_again_after_a_refusal_gets_write_access_once_it_is_given(tmp_path: Path, how: str) -> None:
    # SQLite opens a file it may not write read-only; the refused opening must not leave such
    # connections pooled, or every later opening in this process would be refused too.
    path, sid = _older_schema_file(tmp_path)
    url = f"sqlite:///{path}"
    with _unwritable(path, how):
        with pytest.raises(SchemaVersionError) as error:
            Storage(url)
        _assert_names_the_upgrade(error, f"file {path}")
        assert _schema_version(path) == 3
    storage = Storage(url)  # the same URL in the same process, now writable: upgraded in place
    assert _schema_version(path) == SCHEMA_VERSION
    assert [(t.number, t.output) for t in storage.trials(sid)] == [(0, 0.5)]
    added = storage.locked_study(sid, lambda lk: lk.add_trial({"x": 0.25}))
    assert added.number == 1


@pytest.mark.parametrize("how", ["immutable", "mode"])
def test_a_refused_write_is_accepted_once_write_access_is_given(tmp_path: Path, how: str) -> None:
    path = tmp_path / "runs.db"
    storage = Storage(f"sqlite:///{path}")
    sid = _study(storage)
    dispose_engines()  # the next opening must find the file unwritable
    with _unwritable(path, how):
        storage = Storage(f"sqlite:///{path}")  # a current schema opens read-only
        with pytest.raises(StorageError, match="readonly database"):
            storage.locked_study(sid, lambda lk: lk.add_trial({"x": 0.25}))
        assert storage.trials(sid) == []  # this read pools a read-only connection again
    added = storage.locked_study(sid, lambda lk: lk.add_trial({"x": 0.25}))  # no restart needed
    assert added.number == 0
    assert [t.number for t in Storage(f"sqlite:///{path}").trials(sid)] == [0]


@pytest.mark.postgres
def test_a_read_only_older_schema_postgres_database_says_to_open_it_with_write_access() -> None:
    with postgres_schema_url() as url:
        storage = Storage(url)
        _study(storage)
        as_written_by_schema(url, 3)
        parsed = make_url(url)
        options = f"{parsed.query['options']} -cdefault_transaction_read_only=on"
        read_only = parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
        with pytest.raises(SchemaVersionError) as error:
            Storage(read_only)
        _assert_names_the_upgrade(error, masked(normalize_url(read_only)))
        Storage(url)
        Storage(read_only)


def test_sqlite_file_uses_wal(tmp_path: object) -> None:
    path = f"{tmp_path}/wal.db"
    Storage(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_urls_are_normalised() -> None:
    assert normalize_url("runs/x.db").startswith("sqlite:////")
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///a.db") == "sqlite:///a.db"


def test_unopenable_storage_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(StorageError, match="cannot open storage sqlite:////nonexistent-dir"):
        Storage("/nonexistent-dir/x.db")
    with pytest.raises(StorageError, match="nosuchdriver"):
        Storage("nosuchdriver://x/y")
    with pytest.raises(StorageError, match="cannot open storage postgresql"):
        Storage("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_missing_postgres_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(StorageError, match=r"pip install 'carbs-tuner\[postgres\]'"):
        Storage("postgresql+psycopg://postgres@127.0.0.1:1/no_driver_here")


def test_json_fields_must_be_finite(url: str) -> None:
    storage = Storage(url)
    sid = _study(storage)
    with pytest.raises(ValueError, match="trial params"):
        storage.locked_study(sid, lambda lk: lk.add_trial({"x": float("nan")}))
    assert storage.trials(sid) == []
