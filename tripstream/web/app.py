"""`tripstream web`: the live dashboard (Starlette on uvicorn), read-only.

    /          the page (Jinja2, autoescaped; the script renders data with textContent)
    /events    Server-Sent Events (sse-starlette), fed by LISTEN/NOTIFY (events.py)
    /api/...   JSON for each answer, from the same queries as `tripstream query`, as the
               read-only role, with bound parameters; a bad parameter is a 400
    /vendor/   Plotly's built file, served from the plotly wheel (never from the internet)

Every route is GET: nothing here writes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg2
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from tripstream.db import connect, load_query
from tripstream.errors import BadInputError
from tripstream.output import render
from tripstream.query import SIMILAR_RULE, answer, bbox
from tripstream.settings import Settings
from tripstream.web.events import Hub

HERE = Path(__file__).parent
# Only our own scripts run; Plotly sets inline styles on the charts it draws.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'"
)


class BadParameter(BadInputError):
    """A query parameter that cannot be used: a 400 with the message."""


def _rows(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(render(columns, rows, "json"))
    return result


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise BadParameter(f"{name}={raw!r} is not a whole number. Try {name}={default}.") from e
    if not lo <= value <= hi:
        raise BadParameter(f"{name}={value} is outside {lo}..{hi}. Try {name}={default}.")
    return value


def _date(request: Request, name: str) -> dt.date | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as e:
        raise BadParameter(f"{name}={raw!r} is not a date. Try {name}=2018-05-28.") from e


def _required(request: Request, name: str, example: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise BadParameter(f"{name} is missing. Try ?{name}={example}.")
    return value


def create_app(settings: Settings) -> Starlette:
    url = settings.database.reader
    hub = Hub(url)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def table(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        conn = connect(url, application="tripstream-web")
        try:
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                cur.execute(load_query(name), params)
                return _rows([d[0] for d in cur.description or []], list(cur.fetchall()))
        finally:
            conn.close()

    def question(name: str, **args: Any) -> list[dict[str, Any]]:
        columns, rows = answer(url, name, argparse.Namespace(**args))
        return _rows(columns, rows)

    def api(
        handler: Callable[[Request], Callable[[], Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """Parameters are checked on the event loop (400); the query runs in a thread."""

        async def endpoint(request: Request) -> Response:
            try:
                work = handler(request)
            except (BadInputError, argparse.ArgumentTypeError) as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            try:
                return JSONResponse(await run_in_threadpool(work))
            except BadInputError as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            except psycopg2.Error as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                return JSONResponse(
                    {
                        "error": f"the database is unreachable ({first}); the page recovers by "
                        "itself when it is back"
                    },
                    status_code=503,
                )

        return endpoint

    def files(request: Request) -> Callable[[], Any]:
        limit = _int(request, "limit", 500, 1, 5000)
        return lambda: {"files": table("web_files", {"limit": limit})}

    def batches(request: Request) -> Callable[[], Any]:
        limit = _int(request, "limit", 120, 1, 1000)
        return lambda: {"batches": table("web_batches", {"limit": limit})}

    def cells(request: Request) -> Callable[[], Any]:
        limit = _int(request, "limit", 3000, 1, 20000)
        return lambda: {"cells": table("web_cells", {"limit": limit}), "per_degree": 100}

    def latest(request: Request) -> Callable[[], Any]:
        return lambda: {"rows": question("latest-datasource")}

    def regions(request: Request) -> Callable[[], Any]:
        datasource = _required(request, "datasource", "cheap_mobile")
        return lambda: {"rows": question("regions", datasource=datasource)}

    def weekly(request: Request) -> Callable[[], Any]:
        region, box = request.query_params.get("region"), request.query_params.get("bbox")
        if (region is None) == (box is None):
            raise BadParameter(
                "give either region or bbox. Try ?region=Prague or "
                "?bbox=14.37,50.04,14.51,50.12 (MIN_LON,MIN_LAT,MAX_LON,MAX_LAT)."
            )
        area = bbox(box) if box is not None else None
        args: dict[str, Any] = {"region": region, "bbox": area}
        args.update(date_from=_date(request, "from"), date_to=_date(request, "to"))
        return lambda: {"rows": question("weekly-average", **args)}

    def similar(request: Request) -> Callable[[], Any]:
        limit = _int(request, "limit", 10, 1, 1000)
        return lambda: {"rows": question("similar", limit=limit), "rule": SIMILAR_RULE}

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "index.html", {"rule": SIMILAR_RULE})

    async def events(request: Request) -> Response:
        queue = hub.subscribe()

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                # first the database's state: the page takes a snapshot when it is up
                yield {"event": "db", "data": json.dumps({"up": hub.db_up, "error": hub.db_error})}
                while True:
                    event = await queue.get()
                    yield {"event": str(event.get("kind", "file")), "data": json.dumps(event)}
            finally:
                hub.unsubscribe(queue)

        return EventSourceResponse(stream(), ping=15)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        yield
        hub.stop()

    class SecurityHeaders(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
            return response

    routes = [
        Route("/", page),
        Route("/events", events),
        Route("/api/files", api(files)),
        Route("/api/batches", api(batches)),
        Route("/api/cells", api(cells)),
        Route("/api/latest-datasource", api(latest)),
        Route("/api/regions", api(regions)),
        Route("/api/weekly-average", api(weekly)),
        Route("/api/similar", api(similar)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Mount("/vendor", StaticFiles(packages=[("plotly", "package_data")]), name="vendor"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=host or settings.web.host,
        port=port or settings.web.port,
        log_level="warning",
    )
