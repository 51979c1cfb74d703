"""Shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _single_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small matrices: threads only add overhead and noise on a shared 2-core machine.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
