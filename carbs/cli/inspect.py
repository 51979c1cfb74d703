"""``carbs status``, ``carbs best`` and ``carbs trials``: looking at stored studies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from carbs.cli.common import (
    EXIT_CODES_HELP,
    EXIT_NO_RESULTS,
    EXIT_OK,
    EXIT_STORAGE,
    EXIT_USAGE,
    CliError,
    add_global_options,
    add_storage_args,
    failure_note,
    fmt_number,
    fmt_params,
    fmt_seconds,
    open_existing_storage,
    open_study,
    stdout_console,
)
from carbs.storage import TrialState, utcnow


def register(subparsers: Any) -> None:
    """Add ``status``, ``best`` and ``trials`` to the ``carbs`` command."""
    status = subparsers.add_parser(
        "status",
        help="show the studies in a storage, or one study's progress",
        description="Without --study (and with several studies), list every study. With one "
        "study, show its trial counts, budget use, running trials and recent failures. "
        "Running trials whose worker stopped heartbeating are marked FAILED (stale).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_storage_args(status)
    add_global_options(status)
    status.set_defaults(func=cmd_status)

    best = subparsers.add_parser(
        "best",
        help="show a study's best trial and its Pareto front",
        description="Print the best COMPLETE trial and the output-versus-cost Pareto front.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_storage_args(best)
    best.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_global_options(best)
    best.set_defaults(func=cmd_best)

    trials = subparsers.add_parser(
        "trials",
        help="list a study's trials",
        description="List every trial with its state, output, cost and parameters.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_storage_args(trials)
    trials.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format"
    )
    trials.add_argument(
        "--show", type=int, metavar="N",
        help="show everything about trial N, with the last lines of its standard error",
    )
    trials.add_argument(
        "--state",
        choices=[s.value for s in TrialState],
        action="append",
        help="only trials in this state (repeatable)",
    )
    add_global_options(trials)
    trials.set_defaults(func=cmd_trials)


def _list_studies(args: argparse.Namespace) -> int:
    from rich.table import Table

    from carbs.storage import StorageError
    from carbs.study import Study

    storage = open_existing_storage(args.storage)
    try:
        records = storage.list_studies()
    except StorageError as e:
        raise CliError(str(e), EXIT_STORAGE) from None
    console = stdout_console()
    if not records:
        console.print(f"no studies in {storage}")
        return EXIT_OK
    table = Table(title=f"studies in {storage}")
    for col in ("study", "direction", "metric", "complete", "running", "failed", "pruned", "best"):
        table.add_column(col)
    for record in records:
        study = Study(storage, record)
        counts = study.state_counts()
        try:
            best = fmt_number(study.best_trial.output)
        except ValueError:
            best = "-"
        table.add_row(
            study.name, study.direction, study.metric, str(counts[TrialState.COMPLETE]),
            str(counts[TrialState.RUNNING]), str(counts[TrialState.FAILED]),
            str(counts[TrialState.PRUNED]), best,
        )
    console.print(table)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """``carbs status``."""
    from carbs.storage import StorageError

    if args.study is None:
        storage = open_existing_storage(args.storage)
        try:
            if len(storage.list_studies()) != 1:
                return _list_studies(args)
        except StorageError as e:
            raise CliError(str(e), EXIT_STORAGE) from None
    study = open_study(args)
    reaped = study.reap_stale_trials()
    console = stdout_console()
    trials = study.trials()
    counts = study.state_counts()
    budget = (study.config.get("budget") or {}) if study.config else {}
    console.print(f"[bold]{study.name}[/]  {study.direction} {study.metric}  ({study.storage})")
    line = (
        f"trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.RUNNING]} running, "
        f"{counts[TrialState.FAILED]} failed"
    )
    if counts[TrialState.PRUNED]:
        line += f", {counts[TrialState.PRUNED]} stopped early"
    if budget.get("trials"):
        line += f"  (budget {budget['trials']})"
    console.print(line)
    spent = sum(t.cost for t in trials if t.cost is not None)
    cost_line = f"cost spent: {fmt_number(spent, 5)}"
    if budget.get("cost"):
        cost_line += f" / {fmt_number(budget['cost'], 5)}"
    console.print(cost_line)
    if counts[TrialState.PRUNED]:
        pruning = study.pruning_summary(trials)
        console.print(
            f"stopped early: {pruning.count} trials spent {fmt_number(pruning.spent, 5)}, "
            f"saved ~{fmt_number(pruning.saved, 5)} (estimate)"
        )
    rule = study.early_stopping
    if rule is not None:
        console.print(
            f"early stopping: on (min_steps {rule.min_steps}, min_completed {rule.min_completed})"
        )
    if reaped:
        console.print(f"marked FAILED (stale): trials {reaped}")
    try:
        best = study.best_trial
        console.print(
            f"best: trial {best.number} {study.metric}={fmt_number(best.output)} "
            f"cost={fmt_number(best.cost, 4)}  {fmt_params(best.params)}"
        )
    except ValueError:
        console.print("best: -")
    now = utcnow()
    for t in trials:
        if t.state == TrialState.RUNNING:
            age = (now - (t.heartbeat_at or t.started_at)).total_seconds()
            on = f"{t.worker} ({t.job})" if t.job else t.worker
            console.print(
                f"running: trial {t.number} on {on} for "
                f"{fmt_seconds((now - t.started_at).total_seconds())} (last heartbeat "
                f"{fmt_seconds(age)} ago)  {fmt_params(t.params)}"
            )
    if (study.config.get("launcher") or {}).get("type") == "slurm":
        from carbs.launchers.slurm import describe_jobs

        for line in describe_jobs(study.name) or ["Slurm jobs: none queued or running"]:
            console.print(line)
    failures = [t for t in trials if t.state == TrialState.FAILED][-5:]
    for t in failures:
        console.print(f"failed: trial {t.number}: {failure_note(t)}", markup=False)
    return EXIT_OK


def cmd_best(args: argparse.Namespace) -> int:
    """``carbs best``."""
    from carbs.cli.results import print_results, results_dict

    study = open_study(args)
    if args.format == "json":
        data = results_dict(study)
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return EXIT_OK if data["best_trial"] is not None else EXIT_NO_RESULTS
    return EXIT_OK if print_results(study, sys.stdout) else EXIT_NO_RESULTS


def cmd_trials(args: argparse.Namespace) -> int:
    """``carbs trials``."""
    from rich.table import Table
    from rich.text import Text

    from carbs.study.export import trials_csv

    study = open_study(args)
    if args.show is not None:
        return _show_trial(study, args.show, args.format)
    trials = study.trials(args.state)
    if args.format == "csv":
        sys.stdout.write(trials_csv(trials))
        return EXIT_OK
    if args.format == "json":
        curves = study.intermediate_values([t.number for t in trials])
        rows = [
            {**t.to_dict(), "curve": [p.to_dict() for p in curves.get(t.number, [])]}
            for t in trials
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    table = Table(title=f"{study.name}: {len(trials)} trials")
    for col in ("#", "state", study.metric, "cost", "duration", "params", "note"):
        table.add_column(col, justify="right" if col in ("#", "cost", "duration") else "left")
    for t in trials:
        table.add_row(
            str(t.number),
            t.state.value,
            fmt_number(t.output),
            fmt_number(t.cost, 4),
            fmt_seconds(t.duration),
            Text(fmt_params(t.params)),
            Text(failure_note(t)),
        )
    stdout_console().print(table)
    return EXIT_OK


def _show_trial(study: Any, number: int, fmt: str) -> int:
    """``carbs trials --show N``: one trial in full."""
    try:
        t = study.trial(number)
    except KeyError:
        count = len(study.trials())
        raise CliError(
            f"--show {number}: study {study.name!r} has no trial {number} "
            f"(its trials are numbered 0 to {count - 1})" if count else
            f"--show {number}: study {study.name!r} has no trials yet",
            EXIT_USAGE,
        ) from None
    if fmt == "json":
        sys.stdout.write(json.dumps(t.to_dict(), indent=2) + "\n")
        return EXIT_OK
    lines = [f"trial {t.number}  {t.state.value}" + (f" ({t.fail_kind})" if t.fail_kind else "")]
    if t.fail_kind is not None:
        lines.append(f"reason: {failure_note(t)}")
    lines += [
        f"params: {fmt_params(t.params)}",
        f"{study.metric}: {fmt_number(t.output)}   cost: {fmt_number(t.cost, 4)}   "
        f"duration: {fmt_seconds(t.duration)}",
        f"started: {t.started_at.isoformat(timespec='seconds')}   worker: {t.worker or '-'}",
    ]
    if t.user_attrs:
        lines.append("reported: " + " ".join(f"{k}={v}" for k, v in t.user_attrs.items()))
    if t.stderr_tail:
        lines.append("last lines of standard error:")
        lines += [f"  {line}" for line in t.stderr_tail.splitlines()]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK
