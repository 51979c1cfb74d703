"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _storage_urls import BACKENDS, storage_url


@pytest.fixture(autouse=True)
def _single_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small matrices: threads only add overhead and noise on a shared 2-core machine.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh storage URL on each backend: SQLite, and PostgreSQL when configured."""
    with storage_url(request.param, tmp_path) as u:
        yield u
