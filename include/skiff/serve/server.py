"""The local model server: endpoints by name, atomic swaps, SageMaker's container contract on HTTP.

The embedded default of the serving stage. It speaks what a SageMaker container speaks, so
the same clients work against either:

- ``GET /ping``: 200 once every endpoint has a model (the container health check);
- ``POST /invocations``: the default endpoint (a container serves one model);
- ``POST /endpoints/<name>/invocations``: the path ``sagemaker-runtime``'s ``invoke_endpoint``
  uses, so ``boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080")`` works;
- ``GET /endpoints`` and ``POST /endpoints/<name>/model`` (``{"model_dir", "config_name"}``):
  the local control plane that deploys use (loads, warms and swaps a model).

Bodies follow :mod:`skiff.serve.codec`. :class:`Endpoint` holds one name and its current
model: :meth:`Endpoint.swap` loads the new model completely before a single reference
assignment replaces the old one, so requests in flight finish on the model they started
with and a model that fails to load is never served; concurrent requests are grouped into
one model call by a :class:`~skiff.serve.batcher.MicroBatcher`. :class:`ModelServer` holds
the endpoints, answers :meth:`ModelServer.invoke` without HTTP, and
:meth:`ModelServer.http_server` binds its HTTP face.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.exceptions import ModelLoadError, SkiffConfigError
from skiff.serve.batcher import MicroBatcher
from skiff.serve.codec import BadRequest, bad_request_body
from skiff.serve.httpserver import KeepAliveHandler, ThreadedServer
from skiff.serve.model import LoadedModel

if TYPE_CHECKING:
    from skiff.serve.store import EndpointStore

__all__ = ["MAX_BODY_BYTES", "Endpoint", "ModelServer"]

log = logging.getLogger(__name__)

#: Largest request body the server reads, in bytes (SageMaker's invocation limit).
MAX_BODY_BYTES = 6 * 1024 * 1024
_JSON = "application/json"
_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")


class Endpoint:
    """One endpoint name and the model it serves now; swaps are atomic.

    :param name: the endpoint name (SageMaker's rules: letters, digits, hyphens).
    :param max_batch: most sessions one model call serves (1: no batching, every request
        calls the model in its own thread).
    :param batch_wait_ms: how long the first request of a batch waits for more, in ms.
    """

    def __init__(self, name: str, *, max_batch: int = 64, batch_wait_ms: float = 0.0) -> None:
        if not _NAME.match(name):
            raise SkiffConfigError(f"Endpoint name {name!r} must be 1-63 letters, digits or "
                                   "hyphens.")
        self.name = name
        self.config_name: str | None = None
        self._model: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._batcher = MicroBatcher(name, max_batch, batch_wait_ms / 1000) \
            if max_batch > 1 else None

    @property
    def model(self) -> LoadedModel | None:
        """The model serving now (None before the first swap)."""
        return self._model

    def swap(self, model_dir: str | Path, config_name: str | None = None) -> LoadedModel:
        """Load, check and warm the model of ``model_dir``, then make it the one served.

        The old model keeps serving while the new one loads; the switch is one reference
        assignment, so a request sees either model, whole. Requests already running finish
        on the old model. If loading fails, nothing changes.

        :param model_dir: the bundle folder.
        :param config_name: the endpoint config it belongs to (reported by ``/endpoints``).
        :return: the new model.
        :raises ModelLoadError: the bundle does not load; the old model is still served.
        """
        with self._swap_lock:  # one load at a time per endpoint
            new = LoadedModel.load(model_dir)
            old, self._model = self._model, new
            self.config_name = config_name
        log.info("Endpoint %s now serves %s (%s); before: %s", self.name, new.version,
                 model_dir, old.version if old else "nothing")
        return new

    def invoke(self, body: bytes, content_type: str = _JSON) -> tuple[int, bytes]:
        """Answer one invocation: status and JSON body; never raises for a bad request.

        :param body: the request body (see :mod:`skiff.serve.codec`).
        :param content_type: its media type.
        :return: ``(200, response)``, ``(400, bad request)``, ``(503, no model)`` or
            ``(500, model failure)``.
        """
        model = self._model  # the model this request runs on, whatever swaps happen meanwhile
        if model is None:
            return 503, _error_body("no_model", f"endpoint {self.name} has no model yet.")
        try:
            sessions, k = model.codec.parse(body, content_type)
            ids = model.codec.encode(sessions)
        except BadRequest as exc:
            return 400, bad_request_body(exc.message)
        try:
            if self._batcher is not None:
                outputs = self._batcher.submit(model, ids)
            else:
                outputs = model.predict(ids)
            return 200, json.dumps(model.codec.response(outputs, k)).encode()
        except Exception as exc:  # noqa: BLE001  (reported as a 500 body, logged with its trace)
            log.exception("Endpoint %s: model %s failed", self.name, model.version)
            return 500, _error_body("model_error", f"the model failed: {type(exc).__name__}.")

    def describe(self) -> dict[str, Any]:
        """Name, config and model of the endpoint."""
        model = self._model
        out: dict[str, Any] = {"endpoint_name": self.name, "endpoint_config_name": self.config_name,
                               "status": "InService" if model else "Creating"}
        if model:
            out.update(model.describe())
        if self._batcher is not None:
            out["batches"] = {"calls": self._batcher.calls, "rows": self._batcher.rows}
        return out

    def close(self) -> None:
        """Stop the batcher thread."""
        if self._batcher is not None:
            self._batcher.close()


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


class ModelServer:
    """Endpoints by name, answering invocations with or without HTTP.

    :param max_batch: see :class:`Endpoint`.
    :param batch_wait_ms: see :class:`Endpoint`.
    :param default_endpoint: the endpoint ``POST /invocations`` serves (default: the first added).
    """

    def __init__(self, *, max_batch: int = 64, batch_wait_ms: float = 0.0,
                 default_endpoint: str | None = None) -> None:
        self.max_batch = max_batch
        self.batch_wait_ms = batch_wait_ms
        self.default_endpoint = default_endpoint
        self.endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()

    def endpoint(self, name: str, create: bool = False) -> Endpoint:
        """The endpoint called ``name``.

        :param name: endpoint name.
        :param create: create it (empty) when missing.
        :return: the endpoint.
        :raises KeyError: it does not exist and ``create`` is False.
        """
        with self._lock:
            if name not in self.endpoints:
                if not create:
                    raise KeyError(name)
                self.endpoints[name] = Endpoint(name, max_batch=self.max_batch,
                                                batch_wait_ms=self.batch_wait_ms)
                self.default_endpoint = self.default_endpoint or name
            return self.endpoints[name]

    def deploy(self, name: str, model_dir: str | Path, config_name: str | None = None
               ) -> LoadedModel:
        """Swap ``model_dir`` into endpoint ``name`` (created if new); see :meth:`Endpoint.swap`."""
        return self.endpoint(name, create=True).swap(model_dir, config_name)

    def invoke(self, name: str | None, body: bytes, content_type: str = _JSON
               ) -> tuple[int, bytes]:
        """Answer an invocation of endpoint ``name`` (None: the default endpoint).

        :return: ``(status, JSON body)``; 404 for an unknown endpoint.
        """
        name = name or self.default_endpoint
        endpoint = self.endpoints.get(name) if name else None
        if endpoint is None:
            return 404, _error_body("not_found", f"no endpoint {name!r}; have "
                                                 f"{sorted(self.endpoints)}.")
        return endpoint.invoke(body, content_type)

    def healthy(self) -> bool:
        """True when there is an endpoint and every endpoint has a model."""
        return bool(self.endpoints) and all(e.model for e in self.endpoints.values())

    def describe(self) -> dict[str, Any]:
        """Every endpoint's :meth:`Endpoint.describe`."""
        return {"endpoints": [e.describe() for e in self.endpoints.values()]}

    def load_store(self, store: EndpointStore) -> list[str]:
        """Load every endpoint recorded in ``store`` (a restarted server resumes serving).

        An endpoint whose model no longer loads is left out and logged.

        :return: the endpoint names now served.
        """
        served = []
        for record in store.endpoints():
            try:
                self.deploy(record.endpoint_name, record.model_dir, record.endpoint_config_name)
                served.append(record.endpoint_name)
            except ModelLoadError as exc:
                log.error("Endpoint %s not loaded: %s", record.endpoint_name, exc)
        return served

    def http_server(self, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
        """The HTTP face of this server (not started: call ``serve_forever`` or use a thread).

        :param host: address to bind.
        :param port: port (0 picks a free one; read it from ``server_address``).
        :return: the bound server.
        """
        server = _HTTPServer((host, port), _Handler)
        server.model_server = self
        return server

    def close(self) -> None:
        """Stop every endpoint's batcher."""
        for endpoint in self.endpoints.values():
            endpoint.close()


class _HTTPServer(ThreadedServer):
    model_server: ModelServer


class _Handler(KeepAliveHandler):
    """SageMaker container routes plus the local control plane."""

    server_version = "skiff-model-server"
    server: _HTTPServer

    def _reply(self, status: int, body: bytes, content_type: str = _JSON,
               error_type: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._reply(411, _error_body("length_required", "send a Content-Length header."))
            return None
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(413, _error_body("too_large", f"the body has {length} bytes; at most "
                                                      f"{MAX_BODY_BYTES}."))
            return None
        return self.rfile.read(int(length))

    def do_GET(self) -> None:  # noqa: N802
        models = self.server.model_server
        path = self.path.split("?", 1)[0]
        if path == "/ping":
            ok = models.healthy()
            self._reply(200 if ok else 503, b"{}" if ok else
                        _error_body("unhealthy", "an endpoint has no model yet."))
        elif path == "/endpoints":
            self._reply(200, json.dumps(models.describe()).encode())
        else:
            self._reply(404, _error_body("not_found", f"no route GET {path}."))

    def do_POST(self) -> None:  # noqa: N802
        models = self.server.model_server
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        body = self._body()
        if body is None:
            return
        content_type = self.headers.get("Content-Type", _JSON)
        if parts == ["invocations"]:
            self._reply(*models.invoke(None, body, content_type))
        elif len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations":
            self._runtime_reply(parts[1], *models.invoke(parts[1], body, content_type))
        elif len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "model":
            self._reply(*self._deploy(parts[1], body))
        else:
            self._reply(404, _error_body("not_found", f"no route POST {path}."))

    def _runtime_reply(self, name: str, status: int, body: bytes) -> None:
        """Answer as the SageMaker runtime service does, so boto3 raises its usual errors.

        A model's error becomes ``ModelError`` (HTTP 424 with ``OriginalStatusCode`` and
        ``OriginalMessage``); an unknown endpoint a ``ValidationError`` (HTTP 400).
        """
        if status == 200:
            self._reply(200, body)
        elif status == 404:
            self._reply(400, json.dumps({"message": f"Endpoint {name} not found."}).encode(),
                        error_type="ValidationError")
        else:
            message = body.decode(errors="replace")
            doc = {"ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500
                   else "SERVER_ERROR_FROM_MODEL",
                   "Message": f"Received {'client' if status < 500 else 'server'} error "
                              f"({status}) from primary with message \"{message}\".",
                   "OriginalStatusCode": status, "OriginalMessage": message}
            self._reply(424, json.dumps(doc).encode(), error_type="ModelError")

    def _deploy(self, name: str, body: bytes) -> tuple[int, bytes]:
        try:
            request = json.loads(body)
            model_dir = request["model_dir"]
        except (ValueError, KeyError, TypeError):
            return 400, bad_request_body('send {"model_dir": "...", "config_name": "..."}.')
        try:
            self.server.model_server.deploy(name, model_dir, request.get("config_name"))
        except ModelLoadError as exc:
            return 422, _error_body("model_load_failed", str(exc))
        except SkiffConfigError as exc:
            return 400, bad_request_body(str(exc))
        return 200, json.dumps(self.server.model_server.endpoint(name).describe()).encode()
