"""The ``carbs`` command line: ``carbs run``, ``worker``, ``status``, ``best``, ``trials``.

Each module named in ``_COMMAND_MODULES`` exposes ``register(subparsers)``
and sets ``func=handler`` on its subparsers; ``handler(args)`` returns the
exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from carbs.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_MISSING_EXTRA,
    EXIT_STORAGE,
    EXIT_USAGE,
    CliError,
)

_COMMAND_MODULES: tuple[str, ...] = (
    "carbs.cli.run",
    "carbs.cli.inspect",
    "carbs.cli.analysis",
    "carbs.cli.dashboard",
)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    from carbs import __version__

    parser = argparse.ArgumentParser(
        prog="carbs",
        description="Cost-aware hyperparameter sweeps: run a training command on points "
        "chosen by CARBS, store every trial in a database, and inspect the results.",
        epilog="run 'carbs COMMAND --help' for the options of a command\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"carbs {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("carbs").setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``carbs`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    from carbs._extras import MissingExtraError
    from carbs.storage import StorageError

    try:
        code = int(args.func(args))
    except CliError as e:
        print(f"carbs {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except MissingExtraError as e:
        print(f"carbs {args.command}: error: {e}", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    except StorageError as e:
        print(f"carbs {args.command}: error: {e}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt:
        print(f"carbs {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `carbs trials | head`
        return 0
    except Exception:
        logger.exception("carbs %s failed", args.command)
        return EXIT_ERROR
    sys.stdout.flush()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
