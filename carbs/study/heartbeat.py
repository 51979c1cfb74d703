"""A background thread that tells the storage the running trials are alive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat(number)`` every ``interval`` seconds for each registered trial.

    ``beat`` returns ``False`` when the trial is no longer RUNNING in storage
    (someone declared it stale); the trial is then dropped and ``on_lost`` is
    called with its number. Storage errors are logged and retried at the next
    tick, because a short database outage must not kill the sweep.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        beat: Callable[[int], bool],
        interval: float,
        on_lost: Callable[[int], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be > 0 seconds, got {interval!r}")
        self._beat = beat
        self._interval = float(interval)
        self._on_lost = on_lost
        self._numbers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, number: int) -> None:
        """Start beating for a trial."""
        with self._lock:
            self._numbers.add(number)

    def discard(self, number: int) -> None:
        """Stop beating for a trial."""
        with self._lock:
            self._numbers.discard(number)

    def start(self) -> Heartbeat:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="carbs-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5.0)
            self._thread = None

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                numbers = sorted(self._numbers)
            for number in numbers:
                try:
                    alive = self._beat(number)
                except Exception as e:  # keep beating through transient storage errors
                    logger.warning("heartbeat for trial %d failed: %s", number, e)
                    continue
                if not alive:
                    self.discard(number)
                    logger.warning("trial %d is no longer RUNNING in the storage", number)
                    if self._on_lost is not None:
                        self._on_lost(number)
