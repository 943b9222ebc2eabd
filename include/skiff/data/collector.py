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
  (:class:`ConcurrencyLimit`, ahead of the routes). uvicorn's own ``limit_concurrency`` is
  not used: its 503 is plain text and it counts idle keep-alive connections too.

A request line and headers over :data:`MAX_HEADER_BYTES` get 431 (JSON) from the HTTP
parser (:mod:`skiff.data.collector_http`: uvicorn's httptools protocol with that cap, on
uvloop). Only requests that parser finds malformed get uvicorn's plain-text 400.

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
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

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

if TYPE_CHECKING:
    import uvicorn

__all__ = ["ConcurrencyLimit", "create_app", "make_server", "serve"]

log = logging.getLogger(__name__)

#: Largest request line plus headers the HTTP parser takes before answering 431.
MAX_HEADER_BYTES = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store"}
#: One encoder for every row (``json.dumps`` with separators builds one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
#: Seconds a client refused for capacity is told to wait (``Retry-After``).
RETRY_AFTER_S = 1
#: Least seconds between two "over capacity" warnings in the log (a flood logs a count).
_BUSY_LOG_EVERY_S = 10.0


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status,
                        headers={**_NO_STORE, **(headers or {})})


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests answered at once; 503 JSON beyond.

    A request arriving while ``limit`` others are in progress (their body being read, their
    events being checked or fsync'd) is answered at once with 503 ``{"error": "busy",
    "message"}``, ``Retry-After`` and ``Connection: close``, without reading its body.
    HTTP/1.1 answers one request at a time per connection, so this bounds the connections
    busy with a request; idle keep-alive connections do not count (uvicorn closes them after
    ``timeout_keep_alive``). The event loop runs one coroutine at a time, so a plain counter
    is exact.

    :param app: the ASGI app behind it.
    :param limit: requests in progress at most (``SKIFF_COLLECT_MAX_CONNECTIONS``).
    :param stats: where to count ``requests_in_progress`` and ``refused_busy`` (``/health``
        shows them); default a dict of its own.
    :param retry_after_s: the ``Retry-After`` of a refusal, in seconds.
    """

    def __init__(self, app: ASGIApp, limit: int, stats: dict[str, int] | None = None,
                 retry_after_s: int = RETRY_AFTER_S) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit!r}: at least one request must be served at once.")
        self.app, self.limit = app, limit
        self.stats = stats if stats is not None else {}
        self.stats.update(requests_in_progress=0, refused_busy=0)
        self._refusal = _error(503, "busy", f"The collector is answering {limit} requests "
                                            f"(SKIFF_COLLECT_MAX_CONNECTIONS); retry in "
                                            f"{retry_after_s} s.",
                               {"Retry-After": str(retry_after_s), "Connection": "close"})
        self._logged_at = float("-inf")
        self._logged_refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        stats = self.stats
        if stats["requests_in_progress"] >= self.limit:
            stats["refused_busy"] += 1
            self._warn()
            await self._refusal(scope, receive, send)
            return
        stats["requests_in_progress"] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            stats["requests_in_progress"] -= 1

    def _warn(self) -> None:
        now, refused = time.monotonic(), self.stats["refused_busy"]
        if now - self._logged_at >= _BUSY_LOG_EVERY_S:
            log.warning("Over capacity (%d requests in progress): %d request(s) answered 503 "
                        "since the last warning.", self.limit, refused - self._logged_refused)
            self._logged_at, self._logged_refused = now, refused


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
                return Response(status_code=204, headers=_NO_STORE)
            if request.method != "POST":  # HEAD: Starlette adds it to GET routes
                return _error(405, "method_not_allowed", f"{request.method} is not allowed "
                                                         "on /collect; use POST or GET.",
                              {"Allow": "GET, POST"})
            body = await self.read_body(request)
            table = table_param(request.query_params.get("table"))
            items, single = parse_body(body, request.headers.get("content-type"))
            checked = check_events(items, table, single=single, **self.window())
            status, doc = checked.answer()
            await self.store(checked.rows)
            return JSONResponse(doc, status, headers=_NO_STORE)
        except RequestError as exc:
            return JSONResponse(exc.doc(), exc.status, headers=_NO_STORE)

    async def health(self, request: Request) -> Response:
        state = self.log.describe()
        ok = state["last_landing_error"] is None
        doc = {"status": "ok" if ok else "degraded", **state, **self.http_stats}
        return JSONResponse(doc, 200, headers=_NO_STORE)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(404, "not_found", f"No route {request.url.path!r}; use POST /collect, "
                                        "GET /collect?… (pixel) or GET /health.")
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        if request.url.path == "/collect":  # HEAD is refused there: it must not record events
            allow = "GET, POST"
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on "
                                                 f"{request.url.path}; use {allow}.",
                      {"Allow": allow})
    return _error(exc.status_code, "http_error", str(exc.detail), exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("Unexpected error answering %s %s", request.method, request.url.path,
              exc_info=exc)
    return _error(500, "internal_error", "Internal error; nothing of this request was "
                                         "acknowledged.")


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
                               stats=collector.http_stats)],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
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

    from skiff.data.collector_http import capped

    config = config or CollectConfig.from_env()
    app = create_app(config, **app_options)
    sock = socket.create_server((config.host, config.port), reuse_port=False)
    server = uvicorn.Server(uvicorn.Config(
        app, http=capped(MAX_HEADER_BYTES), loop="auto",  # auto: uvloop (installed with uvicorn)
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
