"""What every launcher shares: its error type and the interface ``carbs run`` drives."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from carbs.runner.worker import RunSummary


class LauncherError(ValueError):
    """A launcher cannot run this sweep as configured; the message says why and what to do."""


class Runner(Protocol):
    """What the ``carbs run`` command drives."""

    def run(self) -> RunSummary:
        """Run trials until the budget is spent or the run is interrupted."""

    def interrupt(self) -> None:
        """Stop: running trials are stopped and marked interrupted."""
