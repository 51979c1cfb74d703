"""Stopping a sweep whose every trial fails the same way, before it burns its budget.

A program that exits at once, prints its metric in a form the runner does not
read, or a ``cost:`` that is never reported fails every trial for the same
reason. After ``limit`` such failures in a row, and only while no trial of the
study has succeeded (a sweep that works for some points must explore the ones
that fail), the runner stops and says what the common cause is and how to fix it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from carbs.storage import NON_INFORMATIVE_FAILURES, FailKind, TrialRecord

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def failure_cause(record: TrialRecord) -> str:
    """The failure reason with numbers blanked out, so ``x=0.3`` and ``x=0.7`` fail alike."""
    return f"{record.fail_kind}: {_NUMBER.sub('#', record.fail_reason or '')}"


def fix_hint(record: TrialRecord, cost_key: str | None, param_names: Sequence[str]) -> str:
    """What to do about a failure that every trial shares."""
    reason = record.fail_reason or ""
    if cost_key is not None and reason.startswith(f"cost {cost_key!r}"):
        if cost_key in param_names:
            return (
                f"'cost: {cost_key}' names a parameter, but the cost is read from the values "
                f"the program reports: report it too (e.g. {{\"{cost_key}\": ...}}), or use "
                "'cost: wall_clock'"
            )
        return f"make the program report {cost_key!r}, or use 'cost: wall_clock'"
    if record.fail_kind == FailKind.ERROR:
        return (
            f"the program itself fails: 'carbs trials --show {record.number}' shows its "
            "standard error; run its command by hand to reproduce"
        )
    if record.fail_kind == FailKind.BAD_OUTPUT:
        return "make the program print the metric in one of the forms above, or set metric_regex"
    if record.fail_kind == FailKind.TIMEOUT:
        return "raise trial_timeout (or --trial-timeout)"
    return f"'carbs trials --show {record.number}' shows the whole trial"


class FailFast:
    """Counts consecutive same-cause failures; :meth:`observe` says when to stop.

    Args:
        limit: failures in a row that stop the sweep; ``0`` never stops.
        succeeded: whether a trial of the study has completed already.
        cost_key / param_names: for the hint about ``cost:``.
    """

    def __init__(
        self, limit: int, succeeded: bool, cost_key: str | None, param_names: Sequence[str]
    ) -> None:
        self.limit = limit
        self.succeeded = succeeded
        self.cost_key = cost_key
        self.param_names = list(param_names)
        self._cause: str | None = None
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, record: TrialRecord) -> str | None:
        """Note a finished trial; returns the stop message when the limit is reached."""
        with self._lock:
            if record.fail_kind is None:
                self.succeeded = True
                self._cause, self._count = None, 0
                return None
            if record.fail_kind in NON_INFORMATIVE_FAILURES:
                return None
            cause = failure_cause(record)
            self._count = self._count + 1 if cause == self._cause else 1
            self._cause = cause
            if self.succeeded or self.limit <= 0 or self._count < self.limit:
                return None
            return (
                f"the last {self._count} trials all failed the same way and none has "
                f"succeeded yet: {record.fail_reason}. Fix: "
                f"{fix_hint(record, self.cost_key, self.param_names)} "
                f"(fail_fast: {self.limit} in the sweep file; 0 never stops)"
            )
