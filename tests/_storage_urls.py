"""Storage URLs and shared helpers for the storage, study, runner, CLI, crash and launcher tests.

PostgreSQL tests need ``CARBS_TEST_POSTGRES_URL`` (``scripts/postgres.sh start``
prints one); they skip without it, unless ``CARBS_REQUIRE_POSTGRES=1`` (set by
CI), which turns the skip into a failure. Each test gets its own schema, so tests never see each other's
studies and a schema-version test cannot disturb the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from carbs.storage import Storage, TrialRecord
from carbs.study import load_study

POSTGRES_ENV = "CARBS_TEST_POSTGRES_URL"
REQUIRE_ENV = "CARBS_REQUIRE_POSTGRES"


def postgres_base_url() -> str:
    """The configured server URL; skips (or fails under ``CARBS_REQUIRE_POSTGRES=1``) without one."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set")
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return base


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh schema, dropped afterwards; skips without a server."""
    base = postgres_base_url()
    import psycopg
    from sqlalchemy.engine import make_url

    from carbs.storage import dispose_engines, normalize_url

    url = make_url(normalize_url(base))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"carbs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        dispose_engines()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def storage_url(backend: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """An empty storage of the given backend."""
    if backend == "sqlite":
        yield f"sqlite:///{os.path.join(os.fspath(tmp_path), 'carbs.db')}"
    else:
        with postgres_schema_url() as url:
            yield url


# Tables each schema version added (carbs.storage.models.ADDED_COLUMNS lists its columns).
_ADDED_TABLES = {2: ("carbs_intermediate_values",), 4: ("carbs_suggestion_pool",)}


def as_written_by_schema(url: str, version: int) -> None:
    """Turn the current-schema database at ``url`` into what carbs wrote with schema ``version``.

    Drops the tables and columns the later versions added and sets the version
    row; the engines are closed, so the next ``Storage(url)`` opens it afresh.
    """
    from sqlalchemy import text

    from carbs.storage import SCHEMA_VERSION, dispose_engines
    from carbs.storage.engine import create_storage_engine
    from carbs.storage.models import ADDED_COLUMNS

    dispose_engines()
    engine = create_storage_engine(url)
    try:
        with engine.begin() as conn:
            for step in range(SCHEMA_VERSION, version, -1):
                for table in _ADDED_TABLES.get(step, ()):
                    conn.execute(text(f"DROP TABLE {table}"))
                for table, column, _ in ADDED_COLUMNS.get(step, ()):
                    conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
            conn.execute(text("UPDATE carbs_schema_version SET version = :v"), {"v": version})
    finally:
        engine.dispose()


# A tiny trial program for the runner, CLI and crash tests. Its behaviour is
# chosen by the MODE argument; files in its working directory steer the slow
# and crash tests (``slow``: seconds to sleep before reporting; ``hang_trial``: the
# trial number that sleeps for a minute; ``pids``: one pid per line, appended).
TRIAL_SCRIPT = r'''
import json, math, os, sys, time
x = float(sys.argv[1])
mode = sys.argv[2] if len(sys.argv) > 2 else "json"
with open("pids", "a") as f:
    f.write(f"{os.getpid()}\n")
if os.path.exists("slow"):
    time.sleep(float(open("slow").read() or "60"))
if os.path.exists("hang_trial") and open("hang_trial").read() == os.environ["CARBS_TRIAL_NUMBER"]:
    time.sleep(60)
loss = (x - 0.3) ** 2
if mode == "json":
    print("training...")
    print(json.dumps({"loss": loss, "acc": 1 - loss}))
elif mode == "file":
    with open(os.environ["CARBS_RESULTS_FILE"], "w") as f:
        json.dump({"loss": loss}, f)
elif mode == "report":
    import carbs
    carbs.report(loss=loss)
    carbs.report({"extra": 1})
elif mode == "cost":
    print(json.dumps({"loss": loss, "flops": 10.0 + x}))
elif mode == "fail":
    print("Traceback: something broke", file=sys.stderr)
    print("ValueError: bad batch", file=sys.stderr)
    sys.exit(3)
elif mode == "nan":
    print('{"loss": NaN}')
elif mode == "missing":
    print(json.dumps({"other": 1.0}))
elif mode == "string":
    print(json.dumps({"loss": "low"}))
elif mode == "badjson":
    print('{"loss": 0.3,,}')
elif mode == "hang":
    time.sleep(60)
'''


def write_sweep(
    directory: os.PathLike[str] | str,
    *,
    mode: str = "json",
    trials: int = 4,
    workers: int = 1,
    name: str = "toy",
    extra: str = "",
) -> str:
    """Write ``trial.py`` and a ``sweep.yaml`` running it into ``directory``; returns the yaml path."""
    directory = os.fspath(directory)
    with open(os.path.join(directory, "trial.py"), "w") as f:
        f.write(TRIAL_SCRIPT)
    path = os.path.join(directory, "sweep.yaml")
    with open(path, "w") as f:
        f.write(
            f"name: {name}\n"
            f"command: '{{python}} trial.py {{x}} {mode}'\n"
            "metric: loss\n"
            "parameters:\n"
            "  x: {space: linear, min: -1, max: 1}\n"
            f"budget: {{trials: {trials}}}\n"
            f"workers: {workers}\n"
            "heartbeat: {interval: 0.2, grace: 1.5}\n" + extra
        )
    return path


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def trials_of(url: str, name: str = "toy") -> list[TrialRecord]:
    """The study's trials, or ``[]`` before the study exists."""
    storage = Storage(url)
    if not any(s.name == name for s in storage.list_studies()):
        return []
    return load_study(name, storage).trials()


def write_launcher_sweep(directory: Path, trial: str, *, name: str, trials: int, launcher: str) -> Path:
    """``trial.py`` (the program ``trial``) and a ``sweep.yaml`` for a cluster launcher's test.

    Two workers, one retry; the program gets ``x`` and the path of a
    ``markers`` directory (made here, and returned) where it leaves files the
    test waits for. ``launcher`` is the YAML flow mapping of the launcher.
    """
    markers = directory / "markers"
    markers.mkdir()
    (directory / "trial.py").write_text(trial)
    (directory / "sweep.yaml").write_text(
        f"name: {name}\n"
        f"command: '{{python}} trial.py {{x}} {markers}'\n"
        "metric: loss\n"
        "parameters:\n"
        "  x: {space: linear, min: -1, max: 1}\n"
        f"budget: {{trials: {trials}}}\n"
        "workers: 2\n"
        "retries: 1\n"
        f"launcher: {launcher}\n"
    )
    return markers


@contextmanager
def carbs_run(directory: Path, db: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``carbs run sweep.yaml`` in ``directory`` in the background, its output in a pipe; killed
    on exit if it still runs."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "carbs.cli", "run", "sweep.yaml", "--storage", str(db), "--no-progress"],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield driver
    finally:
        if driver.poll() is None:
            driver.kill()


def marker_text(driver: subprocess.Popen[str], path: Path) -> Callable[[], str | bool]:
    """For :func:`wait_for`: the text of the file at ``path`` once written (``False`` before);
    fails the test if ``driver`` ended first."""

    def written() -> str | bool:
        if driver.poll() is not None:
            pytest.fail(f"carbs run ended early ({driver.returncode}): {driver.communicate()[0]}")
        return path.exists() and path.read_text()

    return written
