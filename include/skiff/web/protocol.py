"""Skiff's HTTP/1.1 parser: uvicorn's httptools protocol with limits, timeouts and JSON refusals.

uvicorn's ``httptools`` protocol (llhttp, in C) costs about a quarter less CPU a request than
its pure-Python ``h11`` one (``bench/bench_collect.py``), and llhttp is strict: a
``Content-Length`` that is not ASCII digits, or sent twice, or beside ``Transfer-Encoding``
is a parse error. What it lacks for a server facing a network, :class:`GuardedHttpToolsProtocol`
adds, each refusal answered JSON (``{"error", "message"}``) with ``Connection: close``:

- a cap on the request line and headers (``max_head_bytes``; 431). h11 has one
  (``h11_max_incomplete_event_size``), httptools none: it keeps appending to a header value
  that never ends. Two counts, either of which refuses: the bytes of the URL and headers
  httptools hands over (checked when the head is complete, so a head that arrives in one
  read is measured exactly), and the bytes read while a head is still incomplete (checked
  after each read, so a header that never ends is cut off);
- a head timeout (``head_timeout_s``; 408): a request's line and headers must arrive within
  that time of its first byte (or of the connection opening), however slowly they trickle
  in (slowloris). A connection that sent nothing of a request is closed without an answer;
- a body timeout (``body_timeout_s``; 408): the body must arrive within that time of the
  head, so a body shorter than its ``Content-Length`` does not hold the connection;
- a connection cap (``max_connections``; 503 with ``Retry-After``): a connection opened while
  that many are open, idle keep-alive ones included, is answered 503 at its first bytes;
- parse errors (malformed request line or header, bad ``Content-Length``, non-ASCII in the
  head): 400 JSON instead of uvicorn's plain text.

A refused connection is closed lingering as nginx does: it half-closes, then reads and drops
what the client is still sending (up to :data:`LINGER_SECONDS`), since closing a socket with
unread bytes sends a reset that can destroy the answer before the client reads it. Idle
keep-alive connections are closed by uvicorn's ``timeout_keep_alive``.

httptools comes with Airflow (``fastapi[standard]`` -> ``uvicorn[standard]``), and
``requirements-dev.txt`` pins it beside uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpToolsProtocol", "guarded", "refusal"]

log = logging.getLogger(__name__)

#: Longest a refused connection is kept open to drain what its client still sends.
LINGER_SECONDS = 5.0

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}


def refusal(status: int, error: str, message: str, headers: dict[str, str] | None = None
            ) -> bytes:
    """A whole HTTP/1.1 answer with a JSON body that closes the connection.

    :param status: the status code (one of 400, 408, 431, 503).
    :param error: the short error code of the body.
    :param message: what is wrong and what to do.
    :param headers: more headers (e.g. ``Retry-After``).
    :return: the bytes to write.
    """
    body = json.dumps({"error": error, "message": message}).encode()
    extra = b"".join(b"%s: %s\r\n" % (k.lower().encode(), v.encode())
                     for k, v in (headers or {}).items())
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
            b"%scontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], extra, len(body), body))


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the cap."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head cap, head and body timeouts and a connection cap.

    The limits are class attributes; :func:`guarded` makes a subclass with its own values
    (what ``uvicorn.Config(http=...)`` takes).
    """

    #: Most bytes of a request line and headers.
    max_head_bytes = 16 * 1024
    #: Seconds a request's line and headers may take to arrive (None: no limit).
    head_timeout_s: float | None = None
    #: Seconds a request's body may take to arrive after its head (None: no limit).
    body_timeout_s: float | None = None
    #: Open connections at most (None: no cap); the settings name shown in the refusal.
    max_connections: int | None = None
    limit_setting = "max_connections"
    _in_head = True
    _between = True  # no request begun since the connection opened or the last one ended
    _head_bytes = 0
    _read_bytes = 0
    _refused_head = False
    _lingering = False
    _over_cap = False
    _timer: asyncio.TimerHandle | None = None

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self._over_cap = True  # answered 503 at its first bytes
        self._start_timer(self.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused: read and dropped until the client closes or the linger ends
        if self._over_cap:
            log.warning("Refused a connection from %s: %d open (%s).", self.client,
                        len(self.connections) - 1, self.limit_setting)
            self._refuse(refusal(503, "busy", f"The server holds {self.max_connections} "
                                              f"connections ({self.limit_setting}); retry in "
                                              "1 s.", {"Retry-After": "1"}))
            return
        if self._between and self._timer is None:  # the first bytes of the next request
            self._start_timer(self.head_timeout_s)
        super().data_received(data)
        if not self._in_head or self.transport is None or self.transport.is_closing():
            return
        self._read_bytes += len(data)
        if self._read_bytes > self.max_head_bytes:
            self._refuse_head()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._between, self._head_bytes, self._read_bytes = True, False, 0, 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        if self._head_bytes > self.max_head_bytes:
            self._refused_head = True
            raise _HeadTooLarge  # httptools stops; uvicorn calls send_400_response
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.send = _one_write(self.cycle)  # type: ignore[method-assign]
        self._start_timer(self.body_timeout_s)  # cancelled when the message is complete

    def on_message_complete(self) -> None:
        self._cancel_timer()
        self._between = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused_head:
            self._refuse_head()
            return
        log.info("Refused a malformed request from %s: %s", self.client, msg)
        self._refuse(refusal(400, "bad_request", "The request is not valid HTTP/1.1 (request "
                                                 "line, headers or Content-Length)."))

    # -- timeouts and refusals -----------------------------------------------------------------

    def _start_timer(self, seconds: float | None) -> None:
        self._cancel_timer()
        if seconds is not None:
            self._timer = self.loop.call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        transport: Any = self.transport
        if transport is None or transport.is_closing() or self._lingering:
            return
        if self._between:
            if self.cycle is None or self.cycle.response_complete:
                transport.close()  # nothing of a request arrived: an idle connection
            return
        if self._in_head:
            what, limit = "request line and headers", self.head_timeout_s
        else:
            what, limit = "body", self.body_timeout_s
        log.info("Timed out a request from %s: its %s took over %s s.", self.client, what, limit)
        cycle = self.cycle
        if not self._in_head and cycle is not None:
            if cycle.response_started or cycle.response_complete:
                transport.close()  # answered (or half answered) already: nothing more to say
                return
            cycle.disconnected = True  # the app's receive() returns http.disconnect;
            cycle.message_event.set()  # whatever it sends now is dropped
        self._refuse(refusal(408, "request_timeout", f"The {what} did not arrive within "
                                                     f"{limit:g} s."))

    def _refuse_head(self) -> None:
        log.warning("Refused a request head over %d bytes from %s.", self.max_head_bytes,
                    self.client)
        self._refuse(refusal(431, "headers_too_large", f"The request line and headers take "
                                                       f"more than {self.max_head_bytes:,} "
                                                       "bytes; send fewer or shorter headers."))

    def _refuse(self, answer: bytes) -> None:
        self._cancel_timer()
        transport: Any = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            transport.close()  # an answer to the previous request is due first: none is sent
            return
        transport.write(answer)
        if not transport.can_write_eof():
            transport.close()
            return
        # half-close: the client reads the answer, then EOF; its own EOF closes the transport
        # (eof_received), the timer does if it never sends one
        transport.write_eof()
        self._lingering = True
        self.loop.call_later(LINGER_SECONDS, transport.close)


class _Buffered:
    """A transport whose writes wait for :meth:`flush` (closing flushes first)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def flush(self) -> None:
        if self.parts:
            data, self.parts = b"".join(self.parts), []
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def _one_write(cycle: Any) -> Any:
    """``cycle.send`` writing a response's status line and headers with its first body part.

    uvicorn writes them in two calls, so a small answer costs two ``send`` syscalls (uvloop
    makes them holding the GIL) and wakes its client twice; held until the body, they leave
    in one.
    """
    original = cycle.send
    held: dict[str, Any] | None = None

    async def send(message: Any) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            held = message
            return
        if held is None:
            await original(message)
            return
        start, held = held, None
        transport, buffered = cycle.transport, _Buffered(cycle.transport)
        cycle.transport = buffered
        try:
            await original(start)
            await original(message)
        finally:
            cycle.transport = transport
            buffered.flush()

    return send


def guarded(max_head_bytes: int = 16 * 1024, *, head_timeout_s: float | None = None,
            body_timeout_s: float | None = None, max_connections: int | None = None,
            limit_setting: str = "max_connections") -> type[GuardedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with its limits.

    :param max_head_bytes: most bytes of a request line and headers (431 beyond).
    :param head_timeout_s: seconds a head may take to arrive (408 beyond; None: no limit).
    :param body_timeout_s: seconds a body may take after its head (408 beyond; None: no limit).
    :param max_connections: open connections at most (503 beyond; None: no cap).
    :param limit_setting: the setting that sets ``max_connections``, named in the 503.
    :return: a subclass of :class:`GuardedHttpToolsProtocol` with those limits.
    :raises ValueError: a limit is not positive.
    """
    for name, value in (("max_head_bytes", max_head_bytes), ("head_timeout_s", head_timeout_s),
                        ("body_timeout_s", body_timeout_s), ("max_connections", max_connections)):
        if value is not None and value <= 0:
            raise ValueError(f"{name}={value!r}: give a positive number (or None: no limit).")
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "max_head_bytes": max_head_bytes, "head_timeout_s": head_timeout_s,
        "body_timeout_s": body_timeout_s, "max_connections": max_connections,
        "limit_setting": limit_setting})
