"""A local stand-in for API Gateway: real HTTP ``GET /predict`` -> proxy event -> the handler.

It turns each request into the payload-2.0 proxy event API Gateway would send, calls the
very handler of :mod:`skiff_api.handler` (in a worker thread: it blocks on the model) and
writes its answer back, so

    curl 'http://127.0.0.1:8000/predict?session=view,detail,add'

behaves as the AWS URL does. ``skiff serve`` starts it next to the local model server (with
an in-process runtime client, :mod:`skiff_api.local_stack`); alone it reaches a model server
through boto3::

    python -m skiff_api.local_adapter --port 8000 --runtime-url http://127.0.0.1:8080

It is a Starlette app on uvicorn with :mod:`skiff.web`'s protocol (head cap, timeouts,
connection cap, JSON refusals); the handler answers every route (404, 405 included). A body
(the API takes none) over :data:`MAX_BODY_BYTES` gets 413; a handler that does not answer
within ``SKIFF_SERVE_PREDICT_TIMEOUT_S`` (and a second) gets 503.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from skiff.config import ServingConfig
from skiff.serve.app import run_bounded, serving_server
from skiff.web.middleware import (
    BodyTooLarge,
    ConcurrencyLimit,
    error_response,
    exception_handlers,
)
from skiff.web.runner import ServerGroup
from skiff_api import handler

__all__ = ["MAX_BODY_BYTES", "create_app", "main"]

log = logging.getLogger("skiff.predict.adapter")

#: Largest request body read (``/predict`` takes none; API Gateway's limit is 10 MB).
MAX_BODY_BYTES = 64 * 1024
_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class _Context:
    """The bits of a Lambda context the handler reads."""

    __slots__ = ("aws_request_id",)
    function_name = "skiff-predict-local"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex


class _Adapter:
    """One adapter's settings and runtime client (made on first use, like a Lambda container's)."""

    def __init__(self, settings: handler.Settings, client_factory: Callable[[], Any],
                 timeout_s: float) -> None:
        self.settings = settings
        self.client_factory = client_factory
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.client_factory()
        return self._client

    def handle(self, scope: Scope, body: bytes) -> dict[str, Any]:
        context = _Context()
        event = handler.proxy_event(scope["path"], scope["query_string"].decode("latin-1"),
                                    scope["method"])
        event["headers"] = {k.decode("latin-1"): v.decode("latin-1")
                            for k, v in scope["headers"]}
        event["requestContext"]["requestId"] = context.aws_request_id
        if body:
            event["body"] = body.decode("utf-8", errors="replace")
        return handler.handle(event, context, client=self.client(), settings=self.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request, as plain ASGI (no Starlette ``Request``: this is the hot path)."""
        try:
            body = await _body(scope, receive)
        except BodyTooLarge as exc:
            await exc.response()(scope, receive, send)
            return
        except ClientDisconnect:
            return  # nobody to answer
        try:
            answer = await run_bounded(lambda: self.handle(scope, body), self.timeout_s)
        except TimeoutError:
            log.warning("%s %s: no answer within %.1f s.", scope["method"], scope["path"],
                        self.timeout_s)
            await error_response(503, "model_timeout", "The model did not answer in time; "
                                                       "retry later.")(scope, receive, send)
            return
        content = answer.get("body", "").encode()
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1"))
                   for k, v in (answer.get("headers") or {}).items()
                   if k.lower() != "content-length"]
        headers.append((b"content-length", b"%d" % len(content)))
        await send({"type": "http.response.start", "status": int(answer.get("statusCode", 500)),
                    "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _body(scope: Scope, receive: Receive) -> bytes:
    """The request's body (none unless it declares one), at most :data:`MAX_BODY_BYTES`."""
    headers = dict(scope["headers"])
    length = headers.get(b"content-length")
    if length is None and b"transfer-encoding" not in headers:
        return b""
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The body has {int(length):,} bytes; at most {MAX_BODY_BYTES:,} "
                           "(/predict takes none).")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The body exceeds {MAX_BODY_BYTES:,} bytes (/predict takes "
                               "none).")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def create_app(*, client_factory: Callable[[], Any] | None = None,
               settings: handler.Settings | None = None,
               config: ServingConfig | None = None) -> Starlette:
    """The adapter's ASGI app, in front of the handler.

    Each adapter has its own client and settings (the handler module's globals, those of a
    Lambda container, are left alone).

    :param client_factory: makes the runtime client (default: boto3's, from ``settings``).
    :param settings: handler settings (default: the environment's).
    :param config: serving settings (requests at once, model timeout); default the environment's.
    :return: the Starlette app.
    """
    settings = settings or handler.Settings()
    config = config or ServingConfig.from_env()
    adapter = _Adapter(settings, client_factory or (lambda: handler.make_client(settings)),
                       config.predict_timeout_s + 1.0)
    return Starlette(
        routes=[Route("/{path:path}", adapter, methods=_METHODS)],
        middleware=[Middleware(ConcurrencyLimit, limit=config.max_requests,
                               setting="SKIFF_SERVE_MAX_REQUESTS")],
        exception_handlers=exception_handlers("use GET /predict?session=..."),
    )


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
    config = ServingConfig.from_env()
    app = create_app(settings=handler.Settings(env), config=config)
    group = ServerGroup([("api", serving_server(app, config), args.host, args.port)])
    host, port = group.address("api")
    group.wait(lambda: print(f"GET http://{host}:{port}/predict?session=...", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
