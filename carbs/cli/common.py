"""Shared pieces of the ``carbs`` commands: exit codes, storage options, errors."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

# Exit codes of every command.
EXIT_OK = 0
EXIT_ERROR = 1  # unexpected error
EXIT_USAGE = 2  # bad arguments or sweep file
EXIT_STORAGE = 3  # the storage cannot be opened or used
EXIT_STUDY = 4  # no such study, or it conflicts with the sweep file
EXIT_NO_RESULTS = 5  # no trial completed
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected error
  2    bad arguments or sweep file
  3    the storage cannot be opened or used
  4    no such study, or the study conflicts with the sweep file
  5    no trial completed (run: every trial of the run failed; best: none yet)
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


def open_study(args: argparse.Namespace) -> Any:
    """The study named by ``--storage``/``--study``, or a ``CliError``."""
    from carbs.storage import Storage, StorageError, StudyNotFoundError
    from carbs.study import load_study

    try:
        storage = Storage(args.storage)
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


def stderr_console() -> Any:
    """A rich console on stderr (progress and messages)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def stdout_console() -> Any:
    """A rich console on stdout (results), never wrapping lines when piped."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())
