"""What Skiff's Starlette apps share: JSON errors, a cap on requests in progress, bounded bodies.

- :func:`error_response`: the one error shape, ``{"error", "message"}`` with
  ``Cache-Control: no-store``;
- :func:`exception_handlers`: Starlette handlers answering every 404/405 (with ``Allow``),
  other ``HTTPException`` and unexpected error as JSON, never a trace or an HTML page;
- :class:`ConcurrencyLimit`: ASGI middleware answering 503 JSON beyond ``limit`` requests in
  progress;
- :func:`read_body`: a request's body, refused with 413 (:class:`BodyTooLarge`) as soon as it
  is known to exceed a limit; a client gone mid-body raises ``ClientDisconnect``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["NO_STORE", "BodyTooLarge", "ConcurrencyLimit", "error_response",
           "exception_handlers", "read_body"]

log = logging.getLogger(__name__)

#: Headers of every answer: nothing a proxy may cache.
NO_STORE = {"Cache-Control": "no-store"}
#: Seconds a client refused for capacity is told to wait (``Retry-After``).
RETRY_AFTER_S = 1
#: Least seconds between two "over capacity" warnings in the log (a flood logs a count).
_BUSY_LOG_EVERY_S = 10.0


def error_response(status: int, error: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer.

    :param status: the HTTP status.
    :param error: a short machine-readable code (``not_found``, ``busy`` …).
    :param message: what is wrong and how to fix it.
    :param headers: more headers (``Allow``, ``Retry-After`` …).
    :return: the response.
    """
    return JSONResponse({"error": error, "message": message}, status,
                        headers={**NO_STORE, **(headers or {})})


def exception_handlers(routes_hint: str, allow: Callable[[Request, str], str] | None = None
                       ) -> dict[type[Exception] | int, Callable[..., Awaitable[Response]]]:
    """Starlette ``exception_handlers`` answering JSON: 404, 405 (with ``Allow``), any other
    ``HTTPException``, and 500 for an unexpected error (logged with its trace).

    :param routes_hint: what a 404 suggests, e.g. ``"use GET /ping or POST /invocations"``.
    :param allow: the ``Allow`` of a 405 from the request and Starlette's; default Starlette's.
    :return: the handlers, for ``Starlette(exception_handlers=...)``.
    """

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(404, "not_found", f"No route {request.url.path!r}; "
                                                    f"{routes_hint}.")
        if exc.status_code == 405:
            methods = (exc.headers or {}).get("Allow", "")
            if allow is not None:
                methods = allow(request, methods)
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed "
                                                             f"on {request.url.path}; use "
                                                             f"{methods}.", {"Allow": methods})
        return error_response(exc.status_code, "http_error", str(exc.detail), exc.headers)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("Unexpected error answering %s %s", request.method, request.url.path,
                  exc_info=exc)
        return error_response(500, "internal_error", "Internal error; nothing of this request "
                                                     "was done.")

    return {HTTPException: http_error, Exception: internal_error}


class BodyTooLarge(Exception):
    """A request body over the limit (answer 413).

    :param message: what the client is told.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self) -> JSONResponse:
        """The 413 answer (the connection is closed: the rest of the body is not read)."""
        return error_response(413, "too_large", self.message, {"Connection": "close"})


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """A request's body, chunked or not, refused as soon as it is known to exceed ``limit``.

    :param request: the request.
    :param limit: most bytes.
    :param setting: the setting that sets ``limit``, named in the refusal.
    :return: the body.
    :raises BodyTooLarge: ``Content-Length`` or the bytes received exceed ``limit``.
    :raises starlette.requests.ClientDisconnect: the client left (or the body timed out).
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"The body has {int(length):,} bytes; at most {limit:,} ({setting}).")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The body exceeds {limit:,} bytes ({setting}).")
        chunks.append(chunk)
    return b"".join(chunks)


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests answered at once; 503 JSON beyond.

    A request arriving while ``limit`` others are in progress (their body being read, their
    work being done) is answered at once with 503 ``{"error": "busy", "message"}``,
    ``Retry-After`` and ``Connection: close``, without reading its body. HTTP/1.1 answers one
    request at a time per connection, so this bounds the connections busy with a request;
    idle keep-alive connections do not count (the protocol's connection cap and uvicorn's
    ``timeout_keep_alive`` bound those). The event loop runs one coroutine at a time, so a
    plain counter is exact. (uvicorn's own ``limit_concurrency`` answers plain text.)

    :param app: the ASGI app behind it.
    :param limit: requests in progress at most.
    :param setting: the setting that sets ``limit``, named in the refusal.
    :param stats: where to count ``requests_in_progress`` and ``refused_busy``; default a dict
        of its own.
    :param retry_after_s: the ``Retry-After`` of a refusal, in seconds.
    """

    def __init__(self, app: ASGIApp, limit: int, setting: str = "the server's limit",
                 stats: dict[str, int] | None = None, retry_after_s: int = RETRY_AFTER_S
                 ) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit!r}: at least one request must be served at once.")
        self.app, self.limit = app, limit
        self.stats = stats if stats is not None else {}
        self.stats.update(requests_in_progress=0, refused_busy=0)
        self._refusal = error_response(503, "busy", f"The server is answering {limit} "
                                                    f"requests ({setting}); retry in "
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
