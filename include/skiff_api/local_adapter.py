"""A local stand-in for API Gateway: real HTTP ``GET /predict`` -> proxy event -> the handler.

It turns each request into the payload-2.0 proxy event API Gateway would send, calls the
very handler of :mod:`skiff_api.handler` and writes its answer back, so

    curl 'http://127.0.0.1:8000/predict?session=view,detail,add'

behaves as the AWS URL does. ``skiff serve`` starts it next to the local model server (with
an in-process runtime client, :mod:`skiff_api.local_stack`); alone it reaches a model server
through boto3::

    python -m skiff_api.local_adapter --port 8000 --runtime-url http://127.0.0.1:8080

It needs the standard library and ``skiff.serve``'s keep-alive HTTP base.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from skiff.serve import KeepAliveHandler, ThreadedServer
from skiff_api import handler

__all__ = ["make_server", "main"]

log = logging.getLogger("skiff.predict.adapter")


class _Context:
    """The bits of a Lambda context the handler reads."""

    __slots__ = ("aws_request_id",)
    function_name = "skiff-predict-local"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex


class _AdapterServer(ThreadedServer):
    settings: handler.Settings
    client_factory: Callable[[], Any]
    _client: Any = None
    _client_lock = threading.Lock()

    def client(self) -> Any:
        """This adapter's runtime client, made on first use (like a Lambda container's)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.client_factory()
        return self._client


class _Handler(KeepAliveHandler):
    server_version = "skiff-predict-local"
    server: _AdapterServer

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """Protocol errors answer JSON too; an over-long request line is a 400 like the API's."""
        if code == 414:
            code, message = 400, "The query string is too long."
        body = json.dumps({"error": "bad_request" if code == 400 else f"http_{code}",
                           "message": message or explain or "Bad request."}).encode()
        self.close_connection = True
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def _proxy(self) -> None:
        if self.headers.get("Content-Length", "0") not in ("", "0"):
            self.rfile.read(int(self.headers["Content-Length"]))  # drain; the API takes none
        path, _, query = self.path.partition("?")
        server, context = self.server, _Context()
        event = handler.proxy_event(path, query, self.command)
        event["headers"] = {k.lower(): v for k, v in self.headers.items()}
        event["requestContext"]["requestId"] = context.aws_request_id
        answer = handler.handle(event, context, client=server.client(),
                                settings=server.settings)
        body = answer.get("body", "").encode()
        self.send_response(int(answer.get("statusCode", 500)))
        for name, value in (answer.get("headers") or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _proxy


def make_server(host: str = "127.0.0.1", port: int = 8000, *,
                client_factory: Callable[[], Any] | None = None,
                settings: handler.Settings | None = None) -> ThreadingHTTPServer:
    """A bound (not yet serving) adapter in front of the handler.

    Each adapter has its own client and settings (the handler module's globals, those of a
    Lambda container, are left alone).

    :param host: address to bind.
    :param port: port (0 picks a free one).
    :param client_factory: makes the runtime client (default: boto3's, from ``settings``).
    :param settings: handler settings (default: the environment's).
    :return: the server; run ``serve_forever()`` (in a thread if you like).
    """
    server = _AdapterServer((host, port), _Handler)
    server.settings = settings or handler.Settings()
    server.client_factory = client_factory or (lambda: handler.make_client(server.settings))
    server._client_lock = threading.Lock()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--runtime-url", help="endpoint_url of the sagemaker-runtime client, "
                        "e.g. the local model server http://127.0.0.1:8080")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.runtime_url:
        env["SKIFF_RUNTIME_URL"] = args.runtime_url
    server = make_server(args.host, args.port, settings=handler.Settings(env))
    print(f"GET http://{args.host}:{server.server_address[1]}/predict?session=...", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
