"""The live progress display of ``carbs run`` / ``carbs worker``.

It polls the storage, so the counts are those of the whole study, including
trials run by workers on other machines.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from carbs.cli.common import failure_note, fmt_number, fmt_params, fmt_seconds
from carbs.storage import TrialRecord, TrialState
from carbs.study import Study
from carbs.sweep_config import Budget


@dataclass
class Snapshot:
    """Study-wide numbers shown by the display."""

    complete: int
    running: int
    failed: int
    pruned: int
    spent: float
    best: TrialRecord | None
    eta: float | None
    last_failure: TrialRecord | None = None


def snapshot(
    trials: list[TrialRecord], sign: int, budget: Budget, elapsed: float, workers: int,
    deadline_left: float | None,
) -> Snapshot:
    """Counts, spent cost, best trial and an ETA from a list of trials."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.output is not None]
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    failed = sum(1 for t in trials if t.state == TrialState.FAILED)
    pruned = sum(1 for t in trials if t.state == TrialState.PRUNED)
    spent = sum(t.cost for t in trials if t.cost is not None)
    best = (
        min(complete, key=lambda t: (-sign * float(t.output or 0.0), t.number)) if complete else None
    )
    estimates: list[float] = []
    durations = [t.duration for t in trials if t.is_informative and t.duration is not None]
    if budget.max_trials is not None and durations:
        used = sum(1 for t in trials if t.state == TrialState.RUNNING or t.is_informative)
        mean = sum(durations) / len(durations)
        estimates.append(max(budget.max_trials - used + running, 0) * mean / max(workers, 1))
    if budget.max_cost is not None and spent > 0 and elapsed > 1:
        # Cost rate over this run; the study's total spent may predate it.
        rate = spent / max(elapsed, 1e-9)
        estimates.append(max(budget.max_cost - spent, 0) / rate)
    if deadline_left is not None:
        estimates.append(max(deadline_left, 0))
    failures = [t for t in trials if t.state == TrialState.FAILED]
    last_failure = max(failures, key=lambda t: t.finished_at or t.started_at) if failures else None
    return Snapshot(
        len(complete), running, failed, pruned, spent, best,
        min(estimates) if estimates else None, last_failure,
    )


class ProgressDisplay:
    """A rich ``Live`` panel refreshed from the storage about once a second."""

    def __init__(self, study: Study, budget: Budget, workers: int, console: Any) -> None:
        self.study = study
        self.budget = budget
        self.workers = workers
        self.console = console
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._live: Any = None

    def render(self) -> Any:
        """The panel for the current state of the study."""
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self._start
        left = None if self.budget.max_time is None else self.budget.max_time - elapsed
        trials = self.study.trials()
        snap = snapshot(
            trials, self.study.better_direction_sign, self.budget, elapsed, self.workers, left,
        )
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        counts = f"{snap.complete} done, {snap.running} running, {snap.failed} failed"
        if snap.pruned:
            counts += f", {snap.pruned} stopped early"
        if self.budget.max_trials is not None:
            counts += f"  (budget {self.budget.max_trials})"
        table.add_row("study", f"{self.study.name}  [{self.study.direction} {self.study.metric}]")
        table.add_row("trials", counts)
        if snap.best is not None:
            table.add_row(
                "best",
                f"{fmt_number(snap.best.output)} (trial {snap.best.number}, cost "
                f"{fmt_number(snap.best.cost, 4)})  {fmt_params(snap.best.params)}",
            )
        else:
            table.add_row("best", "-")
        if snap.last_failure is not None:
            note = failure_note(snap.last_failure)
            table.add_row("last failure", Text(f"trial {snap.last_failure.number}: {note}"))
        cost = fmt_number(snap.spent, 5)
        if self.budget.max_cost is not None:
            cost += f" / {fmt_number(self.budget.max_cost, 5)}"
        table.add_row("cost", cost)
        if snap.pruned:
            pruning = self.study.pruning_summary(trials)
            table.add_row(
                "stopped",
                f"{pruning.count} trials spent {fmt_number(pruning.spent, 4)}, "
                f"saved ~{fmt_number(pruning.saved, 4)} (estimate)",
            )
        table.add_row("elapsed", f"{fmt_seconds(elapsed)}   ETA {fmt_seconds(snap.eta)}")
        return table

    def __enter__(self) -> ProgressDisplay:
        from rich.live import Live

        self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        self._thread = threading.Thread(target=self._loop, name="carbs-progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._live.update(self.render())
            except Exception:  # a display glitch must never stop the sweep
                continue

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._live.update(self.render())
        finally:
            self._live.__exit__(None, None, None)
