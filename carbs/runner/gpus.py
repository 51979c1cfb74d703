"""GPUs on one machine: which ones there are, and handing each trial its own.

A trial that holds GPUs gets them in ``CUDA_VISIBLE_DEVICES``; two trials
never hold the same GPU at once. The ids are the ones CUDA understands
(indices or ``GPU-...`` UUIDs), taken from the sweep file's ``gpus:``, else
from this process's ``CUDA_VISIBLE_DEVICES``, else from ``nvidia-smi``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence

ENV_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def detect_gpus() -> list[str]:
    """The GPU ids this process may use (empty when there are none)."""
    visible = os.environ.get(ENV_VISIBLE_DEVICES)
    if visible is not None:
        # An empty or "-1" value hides every GPU on purpose.
        return [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


class GpuPool:
    """Hands out disjoint sets of GPU ids; :meth:`acquire` waits while too few are free."""

    def __init__(self, ids: Sequence[str]) -> None:
        self._free = list(ids)
        self._size = len(self._free)
        self._cond = threading.Condition()

    def acquire(self, count: int, stop: threading.Event | None = None) -> list[str] | None:
        """``count`` free ids, or ``None`` if ``stop`` is set while waiting."""
        if count > self._size:
            raise ValueError(f"{count} GPUs asked for, only {self._size} exist: {self._free}")
        with self._cond:
            while len(self._free) < count:
                if stop is not None and stop.is_set():
                    return None
                self._cond.wait(0.2)
            taken, self._free = self._free[:count], self._free[count:]
            return taken

    def release(self, ids: Sequence[str]) -> None:
        """Give ids back to the pool."""
        with self._cond:
            self._free.extend(ids)
            self._cond.notify_all()
