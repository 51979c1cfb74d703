"""Shared pieces of the ``carbs`` commands: exit codes, storage options, errors."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

# Exit codes of every command.
EXIT_OK = 0
EXIT_ERROR = 1  # unexpected error
EXIT_USAGE = 2  # bad arguments or sweep file
EXIT_STORAGE = 3  # the storage cannot be opened or used
EXIT_STUDY = 4  # no such study, or it conflicts with the sweep file
EXIT_NO_RESULTS = 5  # no trial completed
EXIT_MISSING_EXTRA = 6  # an optional dependency (pip extra) is not installed
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected error
  2    bad arguments or sweep file
  3    the storage cannot be opened or used
  4    no such study, or the study conflicts with the sweep file
  5    no trial completed (run: every trial of the run failed; best: none yet)
  6    an optional dependency is missing (the message gives the command that installs it)
  130  interrupted (Ctrl-C or SIGTERM)"""


class CliError(Exception):
    """An error to print (without a traceback) and exit with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """``-v``/``-q`` after the command name too (``carbs run sweep.yaml -q``)."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS,
        help="more log output (-vv for debug)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only errors on stderr"
    )


def add_storage_args(parser: argparse.ArgumentParser, *, study_required: bool = False) -> None:
    """``--storage`` and ``--study`` options."""
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="database URL or SQLite file path (default: $CARBS_STORAGE, else "
        "carbs.db in the working directory)",
    )
    parser.add_argument(
        "--study",
        metavar="NAME",
        required=study_required,
        help="study name (may be left out when the storage holds a single study)",
    )


def open_existing_storage(url: str | None) -> Any:
    """The storage at ``url`` (``--storage``), which must exist already: never a new, empty file.

    Commands that only read (and ``carbs worker``, which joins a study) use this,
    so a typo in ``--storage`` or a run in the wrong directory says so instead
    of leaving an empty database behind.
    """
    from carbs._extras import MissingExtraError
    from carbs.storage import Storage, StorageError
    from carbs.storage.engine import normalize_url

    try:
        full = normalize_url(url)
        if full.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            path = make_url(full).database
            if path not in (None, "", ":memory:") and not os.path.exists(path):
                given = (
                    "named by --storage" if url
                    else "named by $CARBS_STORAGE" if os.environ.get("CARBS_STORAGE")
                    else "the default storage"
                )
                raise CliError(
                    f"no storage at {os.path.abspath(path)} ({given}): the file does not exist; run "
                    "'carbs run SWEEP_FILE' in this directory first, or name an existing "
                    "database with --storage",
                    EXIT_STORAGE,
                )
        return Storage(full)
    except MissingExtraError:
        raise  # one line and its own exit code, from the command line's main
    except StorageError as e:
        raise CliError(str(e), EXIT_STORAGE) from None


def open_study(args: argparse.Namespace) -> Any:
    """The study named by ``--storage``/``--study`` in an existing storage, or a ``CliError``."""
    from carbs.storage import StorageError, StudyNotFoundError
    from carbs.study import load_study

    storage = open_existing_storage(args.storage)
    try:
        return load_study(args.study, storage)
    except StudyNotFoundError as e:
        raise CliError(str(e), EXIT_STUDY) from None
    except StorageError as e:
        raise CliError(str(e), EXIT_STORAGE) from None


def fmt_number(value: float | None, digits: int = 6) -> str:
    """A compact number for tables; ``-`` for missing."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def fmt_seconds(seconds: float | None) -> str:
    """``1h02m``, ``3m20s`` or ``12s``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def fmt_params(params: dict[str, Any]) -> str:
    """``lr=0.001 width=64`` with short numbers."""
    parts = []
    for k, v in params.items():
        parts.append(f"{k}={fmt_number(v, 4) if isinstance(v, float) else v}")
    return " ".join(parts)


def failure_note(trial: Any) -> str:
    """Why a trial failed, in one line: ``error: exited with code 1: ZeroDivisionError: ...``.

    The kind is not repeated when the reason starts with it, and for a program
    that exited with an error the last line of its stderr (the exception) is
    added when the stored reason does not hold it yet (trials stored by older
    versions).
    """
    from carbs.runner.results import last_line
    from carbs.storage import FailKind, TrialState

    if trial.state == TrialState.PRUNED:
        return f"stopped: {trial.fail_reason or 'early'}"
    if trial.fail_kind is None:
        return ""
    reason = trial.fail_reason or ""
    kind = str(trial.fail_kind)
    note = reason if reason.startswith(kind) else f"{kind}: {reason}"
    cause = last_line(trial.stderr_tail) if trial.fail_kind == FailKind.ERROR else ""
    if cause and cause not in reason:
        note += f": {cause}"
    return note


def stderr_console() -> Any:
    """A rich console on stderr (progress and messages)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def stdout_console() -> Any:
    """A rich console on stdout (results), never wrapping lines when piped."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())
