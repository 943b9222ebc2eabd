"""The collector's HTTP/1.1 parser: uvicorn's httptools protocol with the request head capped.

uvicorn's ``httptools`` protocol (llhttp, in C) costs the collector about a quarter less CPU
a request than its pure-Python ``h11`` one (``bench/bench_collect.py``), but, unlike h11's
``h11_max_incomplete_event_size``, it sets no limit on the request line and headers:
httptools keeps appending to a header value that never ends. :class:`CappedHttpToolsProtocol`
counts the bytes received while a request's head is incomplete and, past ``max_head_bytes``,
answers 431 (JSON, as the collector's other errors) and closes the connection, lingering as
nginx does: it half-closes, then reads and drops what the client is still sending (up to
``LINGER_SECONDS``), since closing a socket with unread bytes sends a reset that can destroy
the answer before the client reads it. Malformed requests are still uvicorn's plain-text 400.

httptools comes with Airflow (``fastapi[standard]`` -> ``uvicorn[standard]``), and
``requirements-dev.txt`` pins it beside uvicorn.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CappedHttpToolsProtocol", "capped"]

log = logging.getLogger(__name__)

#: Longest a refused connection is kept open to drain what its client still sends.
LINGER_SECONDS = 5.0


def _too_large(limit: int) -> bytes:
    body = json.dumps({"error": "headers_too_large", "message": f"The request line and "
                       f"headers take more than {limit:,} bytes; send fewer or shorter "
                       "headers."}).encode()
    return (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\ncache-control: no-store\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the cap."""


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line and headers over ``max_head_bytes``.

    Two counts, either of which refuses: the bytes of the URL and headers httptools hands
    over (``on_url``, ``on_header``; checked when the head is complete, so a head that
    arrives in one read is measured exactly), and the bytes read while a head is still
    incomplete (checked after each read, so a header that never ends is cut off; only with
    pipelining can such a read also hold the end of the previous request's body). Over the
    cap: 431 and the connection closed; nothing reaches the app.
    """

    #: Most bytes of a request line and headers (:func:`capped` sets it).
    max_head_bytes = 16 * 1024
    _in_head = True
    _head_bytes = 0
    _read_bytes = 0
    _refused = False
    _lingering = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._read_bytes = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_bytes > self.max_head_bytes:
            self._refused = True
            raise _HeadTooLarge  # httptools stops; uvicorn calls send_400_response
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused:
            self._refuse()
        else:
            super().send_400_response(msg)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused: read and dropped until the client closes or the linger ends
        super().data_received(data)
        if not self._in_head or self.transport is None or self.transport.is_closing():
            return
        self._read_bytes += len(data)
        if self._read_bytes > self.max_head_bytes:
            self._refuse()

    def _refuse(self) -> None:
        log.warning("Refused a request head over %d bytes from %s.", self.max_head_bytes,
                    self.client)
        transport: Any = self.transport
        if self.cycle is not None and not self.cycle.response_complete:
            transport.close()  # an answer to the previous request is due first: none is sent
            return
        transport.write(_too_large(self.max_head_bytes))
        if not transport.can_write_eof():
            transport.close()
            return
        # half-close: the client reads the answer, then EOF; its own EOF closes the transport
        # (eof_received), the timer does if it never sends one
        transport.write_eof()
        self._lingering = True
        self.loop.call_later(LINGER_SECONDS, transport.close)


def capped(max_head_bytes: int) -> type[CappedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with its cap.

    :param max_head_bytes: most bytes of a request line and headers.
    :return: a subclass of :class:`CappedHttpToolsProtocol` with that cap.
    """
    if max_head_bytes < 1:
        raise ValueError(f"max_head_bytes={max_head_bytes!r}: give a positive byte count.")
    return type("CappedHttpToolsProtocol", (CappedHttpToolsProtocol,),
                {"max_head_bytes": max_head_bytes})
