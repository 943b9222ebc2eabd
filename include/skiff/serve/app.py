"""The model server's data plane over HTTP: SageMaker's container contract, Starlette on uvicorn.

Routes (every answer JSON, never a trace, no server path in any of them):

- ``GET /ping``: 200 ``{}`` once every endpoint has a model (the container health check),
  503 before;
- ``GET /health``: 200 while the process serves, models or not (a liveness check), with
  ``ready`` saying what ``/ping`` would, and the prediction log's counters when it is on
  (:mod:`skiff.serve.predlog`);
- ``POST /invocations``: the default endpoint (a container serves one model);
- ``POST /endpoints/<name>/invocations``: the path ``sagemaker-runtime``'s ``invoke_endpoint``
  uses, answered as that service does (a model's error is ``ModelError``, 424; an unknown
  endpoint ``ValidationError``, 400), so ``boto3.client("sagemaker-runtime",
  endpoint_url="http://127.0.0.1:8080")`` works;
- anything else: 404 / 405 JSON.

A body over ``SKIFF_SERVE_MAX_BODY_BYTES`` gets 413; more than ``SKIFF_SERVE_MAX_REQUESTS``
requests at once get 503 (:class:`skiff.web.ConcurrencyLimit`); a model call that does not
come back within ``SKIFF_SERVE_PREDICT_TIMEOUT_S`` gets 503. The limits below HTTP (head
size, timeouts, connection cap, malformed requests) are :mod:`skiff.web.protocol`'s. Model
swaps and the endpoint listing are the control plane's (:mod:`skiff.serve.control`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from skiff.web.middleware import (
    NO_STORE,
    BodyTooLarge,
    ConcurrencyLimit,
    error_response,
    exception_handlers,
    read_body,
)

if TYPE_CHECKING:
    from skiff.config import ServingConfig
    from skiff.serve.server import ModelServer

__all__ = ["MAX_HEADER_BYTES", "create_app", "run_bounded", "serving_server"]

log = logging.getLogger(__name__)

_JSON = "application/json"
#: SageMaker's header of the caller's custom attributes (the prediction log reads
#: ``request_id`` and ``session_id`` in it: :mod:`skiff.serve.predlog`).
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
#: Largest request line plus headers of the serving listeners (431 beyond).
MAX_HEADER_BYTES = 16 * 1024
#: Seconds past the model's own timeout before a request stops waiting for its thread.
_GRACE_S = 1.0
#: Worker threads running blocking calls (model invocations, the ``/predict`` handler).
_THREADS = 64


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, headers={**NO_STORE, **(headers or {})}, media_type=_JSON)


class _Workers:
    """A few daemon threads running blocking calls for the event loop.

    Leaner than ``run_in_executor`` on a ``ThreadPoolExecutor`` (no executor future to chain
    to an asyncio one): a call goes in a C queue, its result comes back with one
    ``call_soon_threadsafe``. Threads start on demand, up to ``size``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> asyncio.Future:
        future = loop.create_future()
        self._queue.put((loop, future, fn))
        if self._idle == 0 and len(self._threads) < self.size:
            with self._lock:
                if len(self._threads) < self.size:
                    thread = threading.Thread(target=self._work, daemon=True,
                                              name=f"skiff-serve-{len(self._threads)}")
                    self._threads.append(thread)
                    thread.start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            loop, future, fn = self._queue.get()
            with self._lock:
                self._idle -= 1
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001  (handed to the waiting request)
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request stopped waiting (timeout): the result is dropped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_WORKERS = _Workers(_THREADS)


async def run_bounded(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run a blocking call in a worker thread; stop waiting for it after ``timeout_s``.

    The wait includes the queue for a free thread (at most ``_THREADS`` run at once).

    :param fn: the call (a model invocation: the batcher bounds its own wait, a model called
        without batching does not).
    :param timeout_s: most seconds to wait.
    :return: what ``fn`` returned.
    :raises TimeoutError: it did not return in time (the thread is left to finish).
    """
    async with asyncio.timeout(timeout_s):
        return await _WORKERS.submit(asyncio.get_running_loop(), fn)


class _DataPlane:
    """The routes, over a :class:`ModelServer` and the serving settings."""

    def __init__(self, models: ModelServer, config: ServingConfig) -> None:
        self.models = models
        self.config = config

    async def ping(self, request: Request) -> Response:
        if self.models.healthy():
            return _json(200, b"{}")
        return error_response(503, "unhealthy", "An endpoint has no model yet (or none is "
                                                "deployed).")

    async def health(self, request: Request) -> Response:
        doc: dict[str, Any] = {"status": "ok", "ready": self.models.healthy(),
                               "endpoints": len(self.models.endpoints)}
        if self.models.predlog is not None:
            doc["prediction_log"] = self.models.predlog.stats()
        return _json(200, json.dumps(doc).encode())

    async def _invoke(self, request: Request, name: str | None) -> tuple[int, bytes]:
        try:
            body = await read_body(request, self.config.max_body_bytes,
                                   "SKIFF_SERVE_MAX_BODY_BYTES")
        except BodyTooLarge as exc:
            return 413, json.dumps({"error": "too_large", "message": exc.message}).encode()
        content_type = request.headers.get("content-type", _JSON)
        attributes = request.headers.get(CUSTOM_ATTRIBUTES)
        try:
            return await run_bounded(lambda: self.models.invoke(name, body, content_type,
                                                                attributes),
                                     self.config.predict_timeout_s + _GRACE_S)
        except TimeoutError:
            log.warning("Endpoint %s: no answer from the model within %.1f s.",
                        name or self.models.default_endpoint, self.config.predict_timeout_s)
            return 503, json.dumps({"error": "model_timeout", "message": "The model did not "
                                    "answer in time; retry later."}).encode()

    async def invocations(self, request: Request) -> Response:
        try:
            status, body = await self._invoke(request, None)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody reads it
        return _json(status, body, {"Connection": "close"} if status == 413 else None)

    async def runtime_invocations(self, request: Request) -> Response:
        """Answer as the SageMaker runtime service does, so boto3 raises its usual errors.

        A model's error becomes ``ModelError`` (HTTP 424 with ``OriginalStatusCode`` and
        ``OriginalMessage``); an unknown endpoint a ``ValidationError`` (HTTP 400).
        """
        name = request.path_params["name"]
        try:
            status, body = await self._invoke(request, name)
        except ClientDisconnect:
            return Response(status_code=400)
        if status == 200:
            return _json(200, body)
        if status == 413:
            return _json(413, body, {"Connection": "close", "x-amzn-ErrorType": "ValidationError"})
        if status == 404:
            return _json(400, json.dumps({"message": f"Endpoint {name} not found."}).encode(),
                         {"x-amzn-ErrorType": "ValidationError"})
        message = body.decode(errors="replace")
        doc = {"ErrorCode": ("CLIENT_ERROR_FROM_MODEL" if status < 500
                             else "SERVER_ERROR_FROM_MODEL"),
               "Message": f"Received {'client' if status < 500 else 'server'} error "
                          f"({status}) from primary with message \"{message}\".",
               "OriginalStatusCode": status, "OriginalMessage": message}
        return _json(424, json.dumps(doc).encode(), {"x-amzn-ErrorType": "ModelError"})


def serving_server(app: Any, config: ServingConfig) -> Any:
    """A uvicorn server of one of the serving apps (data plane, control plane, ``/predict``)
    with the serving limits: head size, head and body timeouts, connection cap, keep-alive.

    :param app: the ASGI app.
    :param config: the serving settings.
    :return: the ``uvicorn.Server`` (bind and run it with :class:`skiff.web.ServerGroup`).
    """
    from skiff.web.protocol import guarded
    from skiff.web.runner import uvicorn_server

    protocol = guarded(MAX_HEADER_BYTES, head_timeout_s=config.header_timeout_s,
                       body_timeout_s=config.body_timeout_s,
                       max_connections=config.max_connections,
                       limit_setting="SKIFF_SERVE_MAX_CONNECTIONS")
    return uvicorn_server(app, protocol, keep_alive_s=config.keep_alive_s)


def create_app(models: ModelServer, config: ServingConfig) -> Starlette:
    """The data plane's ASGI app.

    :param models: the endpoints it serves.
    :param config: the serving settings (body limit, requests at once, model timeout).
    :return: the Starlette app.
    """
    plane = _DataPlane(models, config)
    return Starlette(
        routes=[Route("/ping", plane.ping, methods=["GET"]),
                Route("/health", plane.health, methods=["GET"]),
                Route("/invocations", plane.invocations, methods=["POST"]),
                Route("/endpoints/{name}/invocations", plane.runtime_invocations,
                      methods=["POST"])],
        middleware=[Middleware(ConcurrencyLimit, limit=config.max_requests,
                               setting="SKIFF_SERVE_MAX_REQUESTS")],
        exception_handlers=exception_handlers("use GET /ping, POST /invocations or POST "
                                              "/endpoints/<name>/invocations"),
    )
