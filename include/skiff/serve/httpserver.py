"""A lean keep-alive HTTP/1.1 base for Skiff's local servers (standard library only).

``http.server`` parses every request's headers with the ``email`` package and writes the
headers and the body in two ``send`` calls; on a small JSON API that is most of the cost of a
request. :class:`KeepAliveHandler` keeps ``BaseHTTPRequestHandler``'s behaviour and routing
(``do_GET`` ...) but parses plain ``HTTP/1.1`` requests with a few string operations
(anything unusual goes through the standard parser) and sends each response in one write.
:class:`ThreadedServer` is ``ThreadingHTTPServer`` with daemon threads and a listen backlog
that absorbs bursts of new connections.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Headers", "KeepAliveHandler", "ThreadedServer"]

_MAX_HEADERS = 100
_MAX_LINE = 65536


class Headers(dict):
    """Request headers by lower-case name; ``get`` and ``[]`` ignore case like ``email``'s."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)


class KeepAliveHandler(BaseHTTPRequestHandler):
    """``BaseHTTPRequestHandler`` with a fast path for well-formed HTTP/1.1 requests."""

    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connections
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # buffered: headers and body leave in one send at the request's end

    def parse_request(self) -> bool:
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        parts = line.split(" ")
        if len(parts) != 3 or parts[2] != "HTTP/1.1" or not parts[1].startswith("/"):
            return super().parse_request()  # HTTP/1.0, absolute URIs, garbage: the stdlib way
        self.command, self.path, self.request_version = parts
        self.requestline = line
        self.close_connection = False
        headers = Headers()
        for _ in range(_MAX_HEADERS + 1):
            raw = self.rfile.readline(_MAX_LINE + 1)
            if len(raw) > _MAX_LINE:
                self.send_error(431, "Request header too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = str(raw, "iso-8859-1").partition(":")
            if not sep or not name or name != name.strip():
                self.send_error(400, f"Bad header line {raw[:40]!r}")
                return False
            headers[name.lower()] = value.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        if headers.get("connection", "").lower() == "close":
            self.close_connection = True
        if headers.get("expect", "").lower() == "100-continue":
            self.handle_expect_100()
            self.wfile.flush()
        return True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: a server log line per request costs more than the request."""


class ThreadedServer(ThreadingHTTPServer):
    """A thread per connection, daemon threads, a backlog of 256 new connections."""

    daemon_threads = True
    request_queue_size = 256
