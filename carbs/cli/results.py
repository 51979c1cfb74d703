"""Printing a study's best trial and Pareto front (shared by ``run`` and ``best``)."""

from __future__ import annotations

from typing import IO, Any

from carbs.cli.common import fmt_number, fmt_params
from carbs.storage import TrialState


def results_dict(study: Any) -> dict[str, Any]:
    """Best trial and Pareto front as JSON-compatible data."""
    try:
        best = study.best_trial.to_dict()
    except ValueError:
        best = None
    counts = study.state_counts()
    pruning = study.pruning_summary()
    return {
        "study": study.name,
        "direction": study.direction,
        "metric": study.metric,
        "counts": {state.value: n for state, n in counts.items()},
        "stopped_early": {
            "trials": pruning.count, "cost_spent": pruning.spent, "cost_saved_estimate": pruning.saved,
        },
        "best_trial": best,
        "pareto_front": [
            {"params": p.input, "output": p.output, "cost": p.cost, "sample_count": p.sample_count}
            for p in study.pareto_front()
        ],
    }


def print_results(study: Any, stream: IO[str]) -> bool:
    """Print counts, the best trial and the Pareto front; ``False`` if nothing completed."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False, soft_wrap=not stream.isatty())
    counts = study.state_counts()
    line = (
        f"study {study.name}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.FAILED]} failed, {counts[TrialState.RUNNING]} running"
    )
    if counts[TrialState.PRUNED]:
        pruning = study.pruning_summary()
        line += (
            f", {pruning.count} stopped early (spent {fmt_number(pruning.spent, 4)}, "
            f"saved ~{fmt_number(pruning.saved, 4)})"
        )
    console.print(line)
    try:
        best = study.best_trial
    except ValueError:
        console.print("no trial has completed yet")
        return False
    console.print(
        f"best trial {best.number}: {study.metric}={fmt_number(best.output)} "
        f"cost={fmt_number(best.cost, 4)}  {fmt_params(best.params)}"
    )
    front = study.pareto_front()
    if front:
        table = Table(title=f"Pareto front ({study.metric} vs cost, cheapest first)")
        table.add_column("cost", justify="right")
        table.add_column(study.metric, justify="right")
        table.add_column("runs", justify="right")
        table.add_column("params")
        for p in front:
            table.add_row(
                fmt_number(p.cost, 4), fmt_number(p.output), str(p.sample_count), fmt_params(p.input)
            )
        console.print(table)
    return True
