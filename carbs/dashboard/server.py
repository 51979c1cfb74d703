"""Start the dashboard: choose the token, then serve the storage with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sys
from typing import Any, TextIO
from urllib.parse import quote

from carbs.storage import Storage

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_token(host: str, token: str | None) -> str | None:
    """The token to require: the one given, else a random one unless ``host`` is loopback."""
    if token is not None and not token.strip():
        raise ValueError("token must not be empty")
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(24)
    return token


def serve(
    storage: Storage,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    analysis_options: dict[str, Any] | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Serve the dashboard until interrupted.

    Args:
        storage: the storage to show, opened already (``carbs dashboard`` opens only an
            existing one, so a mistyped path fails before the server starts).
        host: interface to bind; anything but loopback requires a token.
        port: TCP port (0 picks a free one).
        token: access token; generated when ``host`` is not loopback and none is given.
        analysis_options: keyword arguments of :func:`carbs.analysis.analyze`.
        out: where the address (with the token) is printed.
    """
    import uvicorn

    from carbs.dashboard.app import create_app

    token = access_token(host, token)
    app = create_app(storage, token=token, analysis_options=analysis_options)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets=sockets)
        bound = [s.getsockname() for srv in server.servers for s in srv.sockets]
        real_port = bound[0][1] if bound else port
        shown = f"[{host}]" if ":" in host else host
        link = f"http://{shown}:{real_port}/"
        if token:
            link += f"?token={quote(token)}"
        print(f"carbs dashboard: {storage} at {link}", file=out, flush=True)
        if token:
            print("carbs dashboard: the token above is required; keep it private", file=out,
                  flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()
