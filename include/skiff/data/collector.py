"""``skiff collect``: the ``/collect`` HTTP collector (Starlette on uvicorn) in front of the log.

Routes (every answer JSON, never a trace):

- ``POST /collect``: one event (JSON object), a batch (JSON array) or NDJSON; ``?table=``
  names the table, else each event's fields do (:mod:`skiff.data.intake`). 200 with
  ``{"accepted": n, "rejected": [{"index", "reason"}]}`` once the accepted events are
  fsync'd to the append log; 400 when none is accepted (the reasons listed), for JSON that
  does not parse or an empty body; 413 for a body over ``SKIFF_COLLECT_MAX_BODY_BYTES``;
  415 for another media type; 503 when the log cannot store them (nothing accepted).
- ``GET /collect?<field>=<value>&…``: the pixel, one event in the query: 204 once stored.
- ``GET /health``: 200 with the log's state (segments waiting, files landed, last error) and
  the requests in progress and refused for capacity.
- Anything else: 404 or 405 (with ``Allow``).
- Over capacity, any route: 503 ``{"error": "busy", …}`` with ``Retry-After`` when
  ``SKIFF_COLLECT_MAX_CONNECTIONS`` requests are already being answered
  (:class:`skiff.web.ConcurrencyLimit`, ahead of the routes). uvicorn's own ``limit_concurrency`` is
  not used: its 503 is plain text and it counts idle keep-alive connections too.

A request line and headers over :data:`MAX_HEADER_BYTES` get 431 (JSON) from the HTTP
parser (:mod:`skiff.web.protocol`: uvicorn's httptools protocol with that cap, on uvloop);
requests it finds malformed get 400 (JSON).

Accepted events go to :class:`~skiff.data.collector_log.CollectorLog`, which group-commits
concurrent requests into one fsync and rolls its segments into the landing zone by time,
size and arrival hour. The log supports one process: run one collector per log folder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from skiff.config import CollectConfig, ValidationConfig
from skiff.data.collector_log import CollectorLog, LogUnavailable
from skiff.data.intake import (
    RequestError,
    check_events,
    parse_body,
    pixel_event,
    table_param,
)
from skiff.data.landing import LandingZone
from skiff.web.middleware import (
    NO_STORE,
    ConcurrencyLimit,
    error_response,
    exception_handlers,
)
from skiff.web.protocol import guarded

if TYPE_CHECKING:
    import uvicorn

__all__ = ["create_app", "make_server", "serve"]

log = logging.getLogger(__name__)

#: Largest request line plus headers the HTTP parser takes before answering 431.
MAX_HEADER_BYTES = 16 * 1024

#: One encoder for every row (``json.dumps`` with separators builds one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class _Collector:
    """The app's state: the log, the checks' time window, the body limit."""

    def __init__(self, config: CollectConfig, validation: ValidationConfig,
                 landing: LandingZone, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.log = CollectorLog(config.log_dir, landing, roll_seconds=config.roll_seconds,
                                roll_bytes=config.roll_bytes, clock=clock)
        #: :class:`ConcurrencyLimit`'s counters, shown by ``/health``.
        self.http_stats: dict[str, int] = {}
        self.earliest_ms = int(validation.earliest_event_time.timestamp() * 1000)
        self.future_ms = validation.max_future_skew_minutes * 60_000

    def window(self) -> dict[str, int]:
        """The plausible event times now: ``earliest_ms`` and ``latest_ms`` for the checks."""
        return {"earliest_ms": self.earliest_ms,
                "latest_ms": int(self.clock() * 1000) + self.future_ms}

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to exceed the limit."""
        limit = self.config.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise RequestError(413, "too_large", f"The body has {int(length):,} bytes; at most "
                                                 f"{limit:,} (SKIFF_COLLECT_MAX_BODY_BYTES). "
                                                 "Send smaller batches.")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "too_large", f"The body exceeds {limit:,} bytes "
                                                     "(SKIFF_COLLECT_MAX_BODY_BYTES). Send "
                                                     "smaller batches.")
            chunks.append(chunk)
        return b"".join(chunks)

    async def store(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Append the accepted rows to the log; return once they are durable."""
        try:
            await self.log.append([(table, _ENCODE(row).encode()) for table, row in rows])
        except LogUnavailable:
            raise RequestError(503, "unavailable", "The events could not be stored; none was "
                                                   "accepted. Send them again.") from None

    async def collect(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                table, event = pixel_event(request.url.query)
                checked = check_events([event], table, single=True, **self.window())
                checked.answer()  # raises when the event is rejected
                await self.store(checked.rows)
                return Response(status_code=204, headers=NO_STORE)
            if request.method != "POST":  # HEAD: Starlette adds it to GET routes
                return error_response(405, "method_not_allowed", f"{request.method} is not allowed "
                                                         "on /collect; use POST or GET.",
                              {"Allow": "GET, POST"})
            body = await self.read_body(request)
            table = table_param(request.query_params.get("table"))
            items, single = parse_body(body, request.headers.get("content-type"))
            checked = check_events(items, table, single=single, **self.window())
            status, doc = checked.answer()
            await self.store(checked.rows)
            return JSONResponse(doc, status, headers=NO_STORE)
        except RequestError as exc:
            return JSONResponse(exc.doc(), exc.status, headers=NO_STORE)

    async def health(self, request: Request) -> Response:
        state = self.log.describe()
        ok = state["last_landing_error"] is None
        doc = {"status": "ok" if ok else "degraded", **state, **self.http_stats}
        return JSONResponse(doc, 200, headers=NO_STORE)


def _allow(request: Request, allow: str) -> str:
    return "GET, POST" if request.url.path == "/collect" else allow  # HEAD must not record


def create_app(config: CollectConfig | None = None, *,
               validation: ValidationConfig | None = None,
               landing: LandingZone | None = None,
               clock: Callable[[], float] = time.time) -> Starlette:
    """The collector's ASGI app; its lifespan opens (and recovers) the log and runs the roller.

    :param config: the collector's settings (default: the environment's).
    :param validation: where the plausible event times come from (``earliest_event_time``,
        ``max_future_skew_minutes``; default: the environment's).
    :param landing: the landing zone (default: ``config.landing_uri``).
    :param clock: seconds since the epoch (tests pass a fake to cross an hour).
    """
    config = config or CollectConfig.from_env()
    validation = validation or ValidationConfig.from_env()
    landing = landing or LandingZone.from_uri(config.landing_uri)
    collector = _Collector(config, validation, landing, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not collector.log.opened:  # serve() opens it first, to fail before binding
            await asyncio.to_thread(collector.log.open)
        stop = asyncio.Event()
        roller = asyncio.create_task(collector.log.roll_forever(stop))
        collector.log.wake()  # segments a previous run left are rolled at once
        log.info("Collecting into %s (log %s, collector %s).", landing.uri, config.log_dir,
                 collector.log.collector_id)
        try:
            yield
        finally:
            stop.set()
            collector.log.wake()
            await roller
            await collector.log.close()

    app = Starlette(
        routes=[Route("/collect", collector.collect, methods=["GET", "POST"]),
                Route("/health", collector.health, methods=["GET"])],
        middleware=[Middleware(ConcurrencyLimit, limit=config.max_connections,
                               setting="SKIFF_COLLECT_MAX_CONNECTIONS",
                               stats=collector.http_stats)],
        exception_handlers=exception_handlers("use POST /collect, GET /collect?… (pixel) or "
                                              "GET /health", _allow),
        lifespan=lifespan,
    )
    app.state.collector = collector
    return app


def make_server(config: CollectConfig | None = None, **app_options: Any
                ) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server of the collector and its bound socket (port 0 picks a free one).

    :param config: the collector's settings (default: the environment's).
    :param app_options: passed to :func:`create_app`.
    :return: the server (``server.run(sockets=[sock])`` serves) and the socket.
    """
    import uvicorn

    config = config or CollectConfig.from_env()
    app = create_app(config, **app_options)
    sock = socket.create_server((config.host, config.port), reuse_port=False)
    server = uvicorn.Server(uvicorn.Config(
        app, http=guarded(MAX_HEADER_BYTES), loop="auto",  # auto: uvloop (installed with uvicorn)
        lifespan="on", access_log=False, server_header=False,
        timeout_keep_alive=config.keep_alive_s, timeout_graceful_shutdown=10, log_config=None))
    return server, sock


def serve(config: CollectConfig | None = None, *, ready: Callable[[str], None] | None = None,
          **app_options: Any) -> None:
    """Serve until SIGINT/SIGTERM, then roll what the log holds into the landing zone.

    :param config: the collector's settings (default: the environment's).
    :param ready: called with the ``/collect`` URL once the socket is bound.
    :param app_options: passed to :func:`create_app`.
    :raises SkiffConfigError: another collector uses the log folder.
    """
    server, sock = make_server(config, **app_options)
    server.config.app.state.collector.log.open()  # a folder in use fails here, not in uvicorn
    host, port = sock.getsockname()[:2]
    if ready is not None:
        ready(f"http://{host}:{port}/collect")
    server.run(sockets=[sock])
