"""``carbs run`` (start or resume a sweep from a file) and ``carbs worker`` (join one)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from carbs.cli.common import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_NO_RESULTS,
    EXIT_OK,
    EXIT_STORAGE,
    EXIT_STUDY,
    EXIT_USAGE,
    CliError,
    add_global_options,
    add_storage_args,
    failure_note,
    fmt_number,
    fmt_params,
    open_study,
    stderr_console,
)

if TYPE_CHECKING:  # pragma: no cover
    from carbs.sweep_config import Budget

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``run`` and ``worker`` to the ``carbs`` command."""
    run = subparsers.add_parser(
        "run",
        help="run (or resume) the sweep described in a YAML or TOML file",
        description="Run the sweep described in SWEEP_FILE. If its study exists in the storage, "
        "the sweep resumes where it stopped; the budget counts the trials already done.",
        epilog="example:\n  carbs run sweep.yaml --workers 2\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("sweep_file", metavar="SWEEP_FILE", help="sweep description (.yaml, .yml or .toml)")
    run.add_argument("--storage", metavar="URL", help="override the file's storage URL")
    run.add_argument("--study", metavar="NAME", help="override the file's study name")
    run.add_argument(
        "--launcher",
        metavar="TYPE",
        help="where trials run: local, ray or slurm (overrides the file's launcher.type)",
    )
    run.add_argument(
        "-L",
        "--launcher-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a launcher option, e.g. -L address=auto or -L partition=gpu (repeatable)",
    )
    run.add_argument(
        "--allow-space-change",
        action="store_true",
        help="resume a study even though its search space, direction or metric changed",
    )
    _add_run_options(run)
    add_global_options(run)
    run.set_defaults(func=cmd_run)

    worker = subparsers.add_parser(
        "worker",
        help="join an existing sweep from another terminal or machine",
        description="Run trials of a study created by 'carbs run', using the command and "
        "budget stored with it, until the budget is spent. Ctrl-C stops cleanly: the "
        "running trials are marked FAILED (interrupted).",
        epilog="example:\n  carbs worker --storage postgresql://user@db/sweeps --study mlp\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_storage_args(worker)
    worker.add_argument(
        "--workdir", metavar="DIR", help="directory to run the command in (default: the stored one)"
    )
    _add_run_options(worker)
    add_global_options(worker)
    worker.set_defaults(func=cmd_worker)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, metavar="N", help="trials to run in parallel here")
    parser.add_argument("--trials", type=int, metavar="N", help="total trial budget of the study")
    parser.add_argument("--max-cost", type=float, metavar="X", help="total cost budget of the study")
    parser.add_argument(
        "--max-time", metavar="DURATION", help="stop starting trials after this long (e.g. 90s, 30m, 2h)"
    )
    parser.add_argument("--trial-timeout", metavar="DURATION", help="kill a trial running longer")
    parser.add_argument(
        "--fail-fast", type=int, metavar="N",
        help="stop after N trials in a row fail the same way while none has succeeded "
        "(default: the sweep file's fail_fast, else 5; 0 never stops)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no live display; one line per trial")
    parser.add_argument("--echo", action="store_true", help="show the trial programs' output")
    parser.add_argument(
        "--gpus", metavar="IDS", help="GPU ids handed to trials here, e.g. 0,1,2,3 (local launcher)"
    )
    parser.add_argument(
        "--retries", type=int, metavar="N", help="re-run a point lost to the infrastructure up to N times"
    )


def _budget(args: argparse.Namespace, base: Budget) -> Budget:
    from carbs.sweep_config import Budget, SweepConfigError, parse_duration

    try:
        max_time = parse_duration("--max-time", args.max_time) if args.max_time else base.max_time
    except SweepConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    for flag, value in (("--trials", args.trials), ("--max-cost", args.max_cost)):
        if value is not None and value <= 0:
            raise CliError(f"{flag} must be > 0, got {value!r}", EXIT_USAGE)
    return Budget(
        max_trials=args.trials if args.trials is not None else base.max_trials,
        max_cost=args.max_cost if args.max_cost is not None else base.max_cost,
        max_time=max_time,
    )


def _overrides(args: argparse.Namespace, spec: Any) -> Any:
    from carbs.runner.worker import spec_with_overrides
    from carbs.sweep_config import SweepConfigError, parse_duration

    timeout = None
    if args.trial_timeout:
        try:
            timeout = parse_duration("--trial-timeout", args.trial_timeout)
        except SweepConfigError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    if args.fail_fast is not None and args.fail_fast < 0:
        raise CliError(f"--fail-fast must be >= 0, got {args.fail_fast}", EXIT_USAGE)
    return spec_with_overrides(
        spec,
        {
            "budget": _budget(args, spec.budget),
            "trial_timeout": timeout,
            "echo": args.echo or None,
            "fail_fast": args.fail_fast,
        },
    )


def _launcher_overrides(args: argparse.Namespace, config: Any) -> None:
    """Apply --launcher, -L, --gpus and --retries to a parsed sweep file (validated the same way)."""
    import yaml

    from carbs.sweep_config import RetryPolicy, SweepConfigError, parse_launcher, validate_gpus

    try:
        if args.launcher or args.launcher_option:
            raw = config.launcher.to_dict()
            if args.launcher and args.launcher != raw["type"]:
                raw = {"type": args.launcher}
            for item in args.launcher_option:
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    raise SweepConfigError(f"--launcher-option must be KEY=VALUE, got {item!r}")
                raw[key.strip()] = yaml.safe_load(value) if value.strip() else value
            config.launcher = parse_launcher("launcher", raw)
        if args.gpus is not None:
            config.gpus = args.gpus
        if args.retries is not None:
            if args.retries < 0:
                raise SweepConfigError(f"--retries must be >= 0, got {args.retries}")
            config.retries = RetryPolicy(args.retries, config.retries.on)
        config.gpus = validate_gpus(config.launcher, config.gpus_per_trial, config.gpus)
    except SweepConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def _check_launcher(launcher: Any, spec: Any, storage_url: str, workers: int, console: Any) -> None:
    from carbs.launchers import LauncherError, check

    try:
        for warning in check(launcher, spec, storage_url, workers):
            console.print(f"[yellow]warning:[/] {warning}")
    except LauncherError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def cmd_run(args: argparse.Namespace) -> int:
    """``carbs run SWEEP_FILE``."""
    from carbs._extras import MissingExtraError
    from carbs.runner.worker import RunSpec
    from carbs.storage import Storage, StorageError, normalize_url
    from carbs.study import StudyDefinitionError, create_study
    from carbs.sweep_config import SweepConfigError, load_sweep_config

    try:
        config = load_sweep_config(args.sweep_file)
    except SweepConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if args.study:
        config.name = args.study
    _launcher_overrides(args, config)
    spec = _overrides(args, RunSpec.from_sweep(config))
    config.budget = spec.budget
    config.trial_timeout = spec.trial_timeout
    workers = args.workers if args.workers is not None else config.workers
    if workers < 1:
        raise CliError(f"--workers must be >= 1, got {workers}", EXIT_USAGE)
    config.workers = workers
    console = stderr_console()
    _check_launcher(
        config.launcher, spec, normalize_url(args.storage or config.storage), workers, console
    )
    try:
        storage = Storage(args.storage or config.storage)
        existed = any(s.name == config.name for s in storage.list_studies())
        study = create_study(
            config.name,
            storage,
            config.params,
            config.direction,
            metric=config.metric,
            settings=config.carbs_params(),
            config=config.run_config(),
            load_if_exists=True,
            allow_space_change=args.allow_space_change,
        )
    except StudyDefinitionError as e:
        raise CliError(str(e), EXIT_STUDY) from None
    except MissingExtraError:
        raise
    except StorageError as e:
        raise CliError(str(e), EXIT_STORAGE) from None
    counts = study.state_counts()
    if existed:
        console.print(
            f"resuming study [bold]{study.name}[/] ({sum(counts.values())} trials so far) in "
            f"{storage}"
        )
    else:
        console.print(f"created study [bold]{study.name}[/] in {storage}")
    return _run(study, spec, workers, args, console, config.launcher)


def cmd_worker(args: argparse.Namespace) -> int:
    """``carbs worker --storage URL --study NAME``."""
    from carbs.runner.worker import RunSpec

    study = open_study(args)
    try:
        spec = RunSpec.from_study(study)
    except ValueError as e:
        raise CliError(str(e), EXIT_STUDY) from None
    spec = _overrides(args, spec)
    if args.workdir:
        spec.workdir = os.path.abspath(args.workdir)
    if not os.path.isdir(spec.workdir):
        raise CliError(
            f"the study's working directory {spec.workdir!r} does not exist on this machine; "
            "pass --workdir",
            EXIT_USAGE,
        )
    workers = args.workers if args.workers is not None else 1
    if workers < 1:
        raise CliError(f"--workers must be >= 1, got {workers}", EXIT_USAGE)
    if args.retries is not None:
        from carbs.sweep_config import RetryPolicy

        spec.retries = RetryPolicy(max(args.retries, 0), spec.retries.on)
    if args.gpus is not None:
        from carbs.sweep_config import SweepConfigError, parse_gpu_list

        try:
            spec.gpus = parse_gpu_list("--gpus", args.gpus)
        except SweepConfigError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    console = stderr_console()
    from carbs.sweep_config import LauncherConfig

    _check_launcher(LauncherConfig(), spec, study.storage.url, workers, console)
    console.print(f"joining study [bold]{study.name}[/] in {study.storage}")
    return _run(study, spec, workers, args, console)


def _run(
    study: Any,
    spec: Any,
    workers: int,
    args: argparse.Namespace,
    console: Any,
    launcher: Any = None,
) -> int:
    from carbs.cli.progress import ProgressDisplay
    from carbs.cli.results import print_results
    from carbs.launchers import LauncherError, make_runner
    from carbs.storage import TrialState
    from carbs.sweep_config import LauncherConfig

    live = not args.no_progress and console.is_terminal and not args.echo

    def on_end(record: Any, outcome: Any) -> None:
        if live:
            return
        if record.state == TrialState.PRUNED:
            console.print(
                f"trial {record.number} PRUNED {study.metric}={fmt_number(record.output)} "
                f"cost={fmt_number(record.cost, 4)}: {record.fail_reason}"
            )
        elif record.fail_kind is None:
            console.print(
                f"trial {record.number} COMPLETE {study.metric}={fmt_number(record.output)} "
                f"cost={fmt_number(record.cost, 4)}  {fmt_params(record.params)}"
            )
        else:
            console.print(f"trial {record.number} FAILED ({failure_note(record)})", markup=False)

    try:
        runner = make_runner(
            launcher or LauncherConfig(), study, spec, workers, on_trial_end=on_end, say=console.print
        )
    except ValueError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    # A SIGTERM (from a scheduler or `kill`) stops as cleanly as Ctrl-C. SIGINT is
    # handled explicitly too: a process started in the background by a
    # non-interactive shell inherits an ignored SIGINT and would never see Ctrl-C.
    # Only the first signal raises: a second one while the runner winds down
    # must not land before the wind-down is ready to catch it, so it asks the
    # runner to kill the programs at once instead (when the runner can).
    interrupted = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        hurry = getattr(runner, "hurry", None)
        if interrupted and hurry is not None:
            hurry()
            return
        interrupted = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if live:
            with ProgressDisplay(study, spec.budget, workers, console):
                summary = runner.run()
        else:
            summary = runner.run()
    except LauncherError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if summary.stop_reason:
        console.print(f"stopped: {summary.stop_reason}", markup=False)
    ran = summary.completed + summary.failed
    if ran == 0 and "budget reached" in summary.stop_reason and not summary.interrupted:
        console.print(
            f"no trial was run: budgets count the whole study, which has "
            f"{sum(study.state_counts().values())} trials already; raise --trials or "
            "--max-cost (or the sweep file's budget) to run more",
            markup=False,
        )
    print_results(study, sys.stdout)
    if summary.error is not None:
        return EXIT_STORAGE
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.completed == 0 and summary.failed > 0:
        console.print(
            "[bold red]every trial of this run failed[/]; 'carbs trials' lists the reasons, "
            "'carbs trials --show N' shows one trial in full"
        )
        return EXIT_NO_RESULTS
    return EXIT_OK
