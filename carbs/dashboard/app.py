"""The dashboard's web application: three pages and a small read-only JSON API.

Pages are thin HTML shells; ``static/dashboard.js`` fills them from the API
and polls it for changes. Every route is a GET: the dashboard never writes to
the storage. Charts are drawn by the plotly.js bundle that ships inside the
``plotly`` wheel, served from the installed package, so nothing comes from
the network.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import importlib.util
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from carbs._extras import MissingExtraError
from carbs.dashboard.data import Feeds, StudyFeed
from carbs.storage import Storage, StudyNotFoundError

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "carbs_dashboard_token"
POLL_SECONDS = 1.5


def plotly_js_path() -> Path:
    """The plotly.js bundle inside the installed ``plotly`` package (which is never imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("the dashboard", "plotly", "dashboard")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"the plotly package has no bundled plotly.js at {path}")
    return path


def _page(title: str, page: str, charts: bool, **data: Any) -> HTMLResponse:
    attrs = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    # async: the page starts asking for its data while the 4.8 MB of plotly.js compile.
    scripts = '<script id="plotly-js" src="/static/plotly.min.js" async></script>' if charts else ""
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        f"{scripts}</head><body>"
        f'<div id="app" data-page="{page}" data-poll="{POLL_SECONDS}"{attrs}></div>'
        '<script src="/static/dashboard.js"></script></body></html>'
    )


def _number(request: Request, key: str) -> float | None:
    text = request.query_params.get(key)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite, got {text!r}")
    return value


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _error(message: str, status: int) -> JSONResponse:
    return _json({"error": message}, status)


class TokenGate:
    """Requires ``token`` on every request: ``?token=``, a cookie it sets, or a bearer header.

    A request carrying the token in its query gets a cookie, so the page's own
    requests need not repeat it.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def _given(self, request: Request) -> tuple[str | None, bool]:
        query = request.query_params.get("token")
        if query is not None:
            return query, True
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        return request.cookies.get(TOKEN_COOKIE), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given, from_query = self._given(request)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            response: Response = PlainTextResponse(
                "401: this dashboard needs its access token: open the URL printed by "
                "'carbs dashboard' (it ends in ?token=...)\n",
                status_code=401,
            )
            await response(scope, receive, send)
            return
        if not from_query:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def create_app(
    storage: Storage,
    token: str | None = None,
    analysis_options: dict[str, Any] | None = None,
    feeds: Feeds | None = None,
) -> ASGIApp:
    """The dashboard for ``storage``; with ``token``, every request must carry it.

    Args:
        storage: the studies to show (only read).
        token: an access token (required whenever the server is reachable beyond loopback).
        analysis_options: keyword arguments of :func:`carbs.analysis.analyze`.
        feeds: the trial feeds to serve from (default: new ones over ``storage``).
    """
    feeds = feeds or Feeds(storage, analysis_options)
    plotly_js = plotly_js_path()

    async def index(request: Request) -> Response:
        return _page("carbs dashboard", "studies", charts=False)

    async def study_page(request: Request) -> Response:
        name = request.path_params["name"]
        return _page(f"{name} · carbs dashboard", "study", charts=True, study=name)

    async def trial_page(request: Request) -> Response:
        name, number = request.path_params["name"], request.path_params["number"]
        return _page(f"{name} #{number} · carbs dashboard", "trial", charts=True, study=name,
                     trial=number)

    def api_studies(request: Request) -> Response:
        out = []
        for record in feeds.studies():
            feed = feeds.get(record.name)
            out.append({**feed.progress(), "url": "/studies/" + quote(record.name, safe="")})
        return _json({"storage": str(storage), "studies": out})

    def since_and_feed(request: Request) -> tuple[int, StudyFeed] | Response:
        """``?since=`` and the study's feed of an incremental request, or the error response."""
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return _error(f"since must be an integer, got {request.query_params['since']!r}", 400)
        try:
            return since, feeds.get(request.path_params["name"])
        except StudyNotFoundError as e:
            return _error(str(e), 404)

    def api_trials(request: Request) -> Response:
        found = since_and_feed(request)
        if isinstance(found, Response):
            return found
        since, feed = found
        version, rows = feed.changes(since)
        head = json.dumps({
            "version": version,
            "progress": feed.progress(),
            "analysis": feed.analysis_state(),
            "params": feed.param_specs(),
        })
        # The rows arrive encoded already: splice them in rather than encode 10,000 dicts again.
        body = head[:-1] + ', "trials": ' + rows + "}"
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    def api_analysis(request: Request) -> Response:
        try:
            feed = feeds.get(request.path_params["name"])
        except StudyNotFoundError as e:
            return _error(str(e), 404)
        version, summary = feed.summary()
        return _json({"version": version, "summary": summary})

    def api_extrapolate(request: Request) -> Response:
        try:
            feed = feeds.get(request.path_params["name"])
            cost = _number(request, "cost")
            if cost is None or cost <= 0:
                raise ValueError(f"cost must be a number > 0, got {request.query_params.get('cost')!r}")
            return _json(feed.extrapolate(cost))
        except StudyNotFoundError as e:
            return _error(str(e), 404)
        except LookupError as e:
            return _error(str(e), 409)
        except ValueError as e:
            return _error(str(e), 400)

    def api_trial(request: Request) -> Response:
        try:
            feed = feeds.get(request.path_params["name"])
            trial = feed.trial(request.path_params["number"])
        except StudyNotFoundError as e:
            return _error(str(e), 404)
        except KeyError as e:
            return _error(str(e.args[0]), 404)
        data = json.loads(json.dumps(trial.to_dict(), default=str))
        data["error"] = feed.rows.get(trial.number, {}).get("error")
        data["heartbeat_at"] = trial.heartbeat_at.isoformat() if trial.heartbeat_at else None
        data["suggestion_kind"] = trial.suggestion_kind
        _version, curve = feed.curves(0)
        data["curve"] = curve.get(trial.number, [])
        data["metric"] = feed.record.metric
        data["direction"] = feed.record.direction
        return _json(data)

    def api_curves(request: Request) -> Response:
        found = since_and_feed(request)
        if isinstance(found, Response):
            return found
        since, feed = found
        version, curves = feed.curves(since)
        return _json({"available": feed.has_curves(), "version": version,
                      "curves": {str(n): points for n, points in curves.items()}})

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    async def static(request: Request) -> Response:
        name = request.path_params["file"]
        path = STATIC / name
        if name not in {"dashboard.js", "dashboard.css"} or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index),
        Route("/static/plotly.min.js", plotly),
        Route("/static/{file}", static),
        Route("/studies/{name:path}/trials/{number:int}", trial_page),
        Route("/studies/{name:path}", study_page),
        Route("/api/studies", api_studies),
        Route("/api/studies/{name:path}/trials/{number:int}", api_trial),
        Route("/api/studies/{name:path}/trials", api_trials),
        Route("/api/studies/{name:path}/analysis", api_analysis),
        Route("/api/studies/{name:path}/extrapolate", api_extrapolate),
        Route("/api/studies/{name:path}/curves", api_curves),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            feeds.close()

    app: ASGIApp = Starlette(routes=routes, lifespan=lifespan)
    if token:
        app = TokenGate(app, token)
    return app
