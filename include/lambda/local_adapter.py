"""A local stand-in for API Gateway: real HTTP ``GET /predict`` -> proxy event -> the handler.

It turns each request into the payload-2.0 proxy event API Gateway would send, calls the
very ``lambda_handler`` of ``handler.py`` and writes its answer back, so

    curl 'http://127.0.0.1:8000/predict?session=view,detail,add'

behaves as the AWS URL does. ``skiff serve`` starts it next to the local model server (with
an in-process runtime client); alone it reaches a model server through boto3::

    python include/lambda/local_adapter.py --port 8000 --runtime-url http://127.0.0.1:8080

It needs the standard library and ``skiff.serve.httpserver`` (a lean keep-alive HTTP base).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from skiff.serve import KeepAliveHandler, ThreadedServer

__all__ = ["HANDLER_MODULE", "load_handler", "make_server", "main"]

log = logging.getLogger("skiff.predict.adapter")

#: Name the handler module is registered under in ``sys.modules``.
HANDLER_MODULE = "skiff_lambda_handler"


def load_handler() -> ModuleType:
    """The ``handler.py`` beside this file, imported once (``lambda`` is no package name).

    :return: the handler module.
    """
    module = sys.modules.get(HANDLER_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(HANDLER_MODULE,
                                                      Path(__file__).with_name("handler.py"))
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[HANDLER_MODULE] = module
        spec.loader.exec_module(module)
    return module


class _Context:
    """The bits of a Lambda context the handler reads."""

    __slots__ = ("aws_request_id",)
    function_name = "skiff-predict-local"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex


class _AdapterServer(ThreadedServer):
    handler: ModuleType
    settings: Any
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
        event = server.handler.proxy_event(path, query, self.command)
        event["headers"] = {k.lower(): v for k, v in self.headers.items()}
        event["requestContext"]["requestId"] = context.aws_request_id
        answer = server.handler.handle(event, context, client=server.client(),
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
                settings: Any = None) -> ThreadingHTTPServer:
    """A bound (not yet serving) adapter in front of the handler.

    Each adapter has its own client and settings (the handler module's globals, those of a
    Lambda container, are left alone).

    :param host: address to bind.
    :param port: port (0 picks a free one).
    :param client_factory: makes the runtime client (default: boto3's, from ``settings``).
    :param settings: handler settings (default: the environment's).
    :return: the server; run ``serve_forever()`` (in a thread if you like).
    """
    handler = load_handler()
    server = _AdapterServer((host, port), _Handler)
    server.handler = handler
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
    handler = load_handler()
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
