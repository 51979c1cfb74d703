"""``carbs dashboard``: serve the studies of a storage as live web pages."""

from __future__ import annotations

import argparse
from typing import Any

from carbs.cli.common import EXIT_STORAGE, EXIT_USAGE, CliError, open_existing_storage


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from carbs._extras import require

    for module, library in (("starlette", "Starlette"), ("uvicorn", "uvicorn"), ("plotly", "plotly")):
        require(module, library=library, extra="dashboard", what="carbs dashboard")
    if args.bootstrap < 0:
        raise CliError(f"--bootstrap must be >= 0, got {args.bootstrap}", EXIT_USAGE)
    if args.token is not None and not args.token.strip():
        raise CliError("--token must not be empty", EXIT_USAGE)
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be in 0..65535, got {args.port}", EXIT_USAGE)
    from carbs.dashboard.server import serve
    from carbs.storage import StorageError

    # Opened, and its schema read, before anything listens: a bad URL fails here.
    storage = open_existing_storage(args.storage)
    try:
        storage.list_studies()
    except StorageError as e:
        raise CliError(str(e), EXIT_STORAGE) from None
    serve(storage, host=args.host, port=args.port, token=args.token,
          analysis_options={"n_bootstrap": args.bootstrap})
    return 0


def register(subparsers: Any) -> None:
    """Add the ``dashboard`` command to the ``carbs`` CLI."""
    p = subparsers.add_parser(
        "dashboard", help="watch studies live in the browser (needs carbs-tuner[dashboard])",
        description="Serve the studies of a storage as web pages that update while sweeps "
                    "run: progress, the Pareto front, scaling laws, failures and every trial. "
                    "Read-only. Binds to 127.0.0.1 unless --host says otherwise; any other "
                    "address requires an access token, printed at start.",
    )
    p.add_argument("--storage", metavar="URL", default=None,
                   help="database URL or SQLite file path (default: $CARBS_STORAGE or carbs.db "
                        "in the working directory); it must exist")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; e.g. 0.0.0.0 for every "
                        "interface, which turns the token on)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free)")
    p.add_argument("--token", default=None,
                   help="access token to require (default: none on loopback, a random one "
                        "otherwise)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap replicates of the live scaling-law fits (default 200)")
    p.set_defaults(func=_cmd_dashboard)
