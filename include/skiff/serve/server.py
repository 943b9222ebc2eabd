"""The local model server's endpoints: names, the model each serves, atomic swaps, invocations.

The embedded default of the serving stage, without HTTP: :class:`Endpoint` holds one name
and its current model; :meth:`Endpoint.swap` loads the new model completely before a single
reference assignment replaces the old one, so requests in flight finish on the model they
started with and a model that fails to load (or is of the wrong kind) is never served;
concurrent requests are grouped into one model call by a
:class:`~skiff.serve.batcher.MicroBatcher`, and a request waits for its call at most
``predict_timeout_s`` (503 after). :class:`ModelServer` holds the endpoints and answers
:meth:`ModelServer.invoke` (bodies follow :mod:`skiff.serve.codec`).

Its HTTP faces are apart: the data plane (SageMaker's container contract: ``/ping``,
``/invocations``, ``/endpoints/<name>/invocations``) in :mod:`skiff.serve.app`, the control
plane (swaps, ``GET /endpoints``; own port, bearer token) in :mod:`skiff.serve.control`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.exceptions import ModelLoadError, ServingError, SkiffConfigError
from skiff.serve.batcher import MicroBatcher, PredictTimeout
from skiff.serve.bundle import read_bundle_meta
from skiff.serve.codec import BadRequest, bad_request_body
from skiff.serve.model import LoadedModel

if TYPE_CHECKING:
    from skiff.serve.predlog import PredictionLog
    from skiff.serve.store import EndpointStore

__all__ = ["Endpoint", "KindMismatch", "ModelServer", "expected_kind"]

log = logging.getLogger(__name__)

_JSON = "application/json"
_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")
#: Seconds a request waits for its model call unless told (``SKIFF_SERVE_PREDICT_TIMEOUT_S``).
PREDICT_TIMEOUT_S = 5.0


class KindMismatch(ServingError):
    """A model of one kind (intent, rec) sent to an endpoint serving the other; never swapped in."""


def expected_kind(name: str) -> str | None:
    """The kind an endpoint's name promises: ``<prefix>-intent`` and ``<prefix>-rec`` (the
    names :meth:`skiff.config.ServingConfig.endpoint` gives and ``/predict`` calls); None
    for another name.

    :param name: the endpoint name.
    :return: ``intent``, ``rec`` or None.
    """
    for kind in ("intent", "rec"):
        if name.endswith(f"-{kind}"):
            return kind
    return None


class Endpoint:
    """One endpoint name and the model it serves now; swaps are atomic.

    :param name: the endpoint name (SageMaker's rules: letters, digits, hyphens).
    :param max_batch: most sessions one model call serves (1: no batching, every request
        calls the model in its own thread).
    :param batch_wait_ms: how long the first request of a batch waits for more, in ms.
    :param predict_timeout_s: most seconds a request waits for its batched model call.
    :param kind: the kind of model it serves (default: what its name promises, see
        :func:`expected_kind`; else the first model swapped in sets it).
    """

    def __init__(self, name: str, *, max_batch: int = 64, batch_wait_ms: float = 0.0,
                 predict_timeout_s: float = PREDICT_TIMEOUT_S, kind: str | None = None) -> None:
        if not _NAME.match(name):
            raise SkiffConfigError(f"Endpoint name {name!r} must be 1-63 letters, digits or "
                                   "hyphens.")
        self.name = name
        self.config_name: str | None = None
        self.predict_timeout_s = predict_timeout_s
        self._kind = kind or expected_kind(name)
        self._model: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._batcher = MicroBatcher(name, max_batch, batch_wait_ms / 1000) \
            if max_batch > 1 else None

    @property
    def model(self) -> LoadedModel | None:
        """The model serving now (None before the first swap)."""
        return self._model

    @property
    def kind(self) -> str | None:
        """The kind of model this endpoint serves (None: not known until a first swap)."""
        model = self._model
        return model.kind if model is not None else self._kind

    def check_kind(self, model_dir: str | Path) -> dict[str, Any]:
        """The bundle's metadata, if its kind is this endpoint's (cheap: no model is loaded).

        :param model_dir: the bundle folder.
        :return: its metadata.
        :raises ModelLoadError: the folder is not a bundle.
        :raises KindMismatch: the bundle is of another kind than the endpoint serves.
        """
        meta = read_bundle_meta(model_dir)
        kind = self.kind
        if kind is not None and meta.get("kind") != kind:
            raise KindMismatch(f"endpoint {self.name} serves {kind} models; this bundle is a "
                               f"{meta.get('kind')!r} model ({meta.get('version')}). Deploy it "
                               f"to a {meta.get('kind')} endpoint.")
        return meta

    def swap(self, model_dir: str | Path, config_name: str | None = None,
             load_timeout_s: float | None = None) -> LoadedModel:
        """Load, check and warm the model of ``model_dir``, then make it the one served.

        The old model keeps serving while the new one loads; the switch is one reference
        assignment, so a request sees either model, whole. Requests already running finish
        on the old model. If loading fails, or takes longer than ``load_timeout_s`` (its
        caller has given up and will not smoke-test it), nothing changes.

        :param model_dir: the bundle folder.
        :param config_name: the endpoint config it belongs to (reported by ``/endpoints``).
        :param load_timeout_s: most seconds the load may take (None: no limit).
        :return: the new model.
        :raises ModelLoadError: the bundle does not load, or too slowly; the old model is
            still served.
        :raises KindMismatch: the bundle is of another kind; the old model is still served.
        """
        with self._swap_lock:  # one load at a time per endpoint
            self.check_kind(model_dir)
            started = time.monotonic()
            new = LoadedModel.load(model_dir)
            took = time.monotonic() - started
            if load_timeout_s is not None and took > load_timeout_s:
                raise ModelLoadError(f"{model_dir} took {took:.1f} s to load, over the "
                                     f"{load_timeout_s:g} s limit (SKIFF_SERVE_LOAD_TIMEOUT_S); "
                                     f"endpoint {self.name} keeps its model.")
            if self.kind is not None and new.kind != self.kind:  # the bundle changed meanwhile
                raise KindMismatch(f"endpoint {self.name} serves {self.kind} models; "
                                   f"{model_dir} holds a {new.kind} model.")
            old, self._model = self._model, new
            self.config_name = config_name
        log.info("Endpoint %s now serves %s (%s); before: %s", self.name, new.version,
                 model_dir, old.version if old else "nothing")
        return new

    def invoke(self, body: bytes, content_type: str = _JSON) -> tuple[int, bytes]:
        """Answer one invocation: status and JSON body; never raises for a bad request.

        :param body: the request body (see :mod:`skiff.serve.codec`).
        :param content_type: its media type.
        :return: ``(200, response)``, ``(400, bad request)``, ``(503, no model, or no answer
            from the model within ``predict_timeout_s``)`` or ``(500, model failure)``.
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
                outputs = self._batcher.submit(model, ids, self.predict_timeout_s)
            else:
                outputs = model.predict(ids)
            return 200, json.dumps(model.codec.response(outputs, k)).encode()
        except PredictTimeout as exc:
            log.warning("Endpoint %s: model %s: %s", self.name, model.version, exc)
            return 503, _error_body("model_timeout", f"endpoint {self.name}: {exc} Retry "
                                                     "later.")
        except Exception as exc:  # noqa: BLE001  (reported as a 500 body, logged with its trace)
            log.exception("Endpoint %s: model %s failed", self.name, model.version)
            return 500, _error_body("model_error", f"the model failed: {type(exc).__name__}.")

    def describe(self) -> dict[str, Any]:
        """Name, config, kind and model of the endpoint (for the control plane: it shows the
        model's folder)."""
        model = self._model
        out: dict[str, Any] = {"endpoint_name": self.name, "endpoint_config_name": self.config_name,
                               "kind": self.kind, "status": "InService" if model else "Creating"}
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
    :param predict_timeout_s: see :class:`Endpoint`.
    :param load_timeout_s: most seconds a :meth:`deploy` may take to load its model (None: no
        limit); see :meth:`Endpoint.swap`.
    :param default_endpoint: the endpoint ``POST /invocations`` serves (default: the first added).
    :param predlog: where every answer of a known endpoint is logged (None: nowhere); the
        server starts it and :meth:`close` stops it.
    """

    def __init__(self, *, max_batch: int = 64, batch_wait_ms: float = 0.0,
                 predict_timeout_s: float = PREDICT_TIMEOUT_S,
                 load_timeout_s: float | None = None,
                 default_endpoint: str | None = None,
                 predlog: PredictionLog | None = None) -> None:
        self.max_batch = max_batch
        self.batch_wait_ms = batch_wait_ms
        self.predict_timeout_s = predict_timeout_s
        self.load_timeout_s = load_timeout_s
        self.default_endpoint = default_endpoint
        self.endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()
        self.predlog = predlog.start() if predlog is not None else None

    def endpoint(self, name: str, create: bool = False, kind: str | None = None) -> Endpoint:
        """The endpoint called ``name``.

        :param name: endpoint name.
        :param create: create it (empty) when missing.
        :param kind: the kind of model a created endpoint serves (default: see :class:`Endpoint`).
        :return: the endpoint.
        :raises KeyError: it does not exist and ``create`` is False.
        """
        with self._lock:
            if name not in self.endpoints:
                if not create:
                    raise KeyError(name)
                self.endpoints[name] = Endpoint(name, max_batch=self.max_batch,
                                                batch_wait_ms=self.batch_wait_ms,
                                                predict_timeout_s=self.predict_timeout_s,
                                                kind=kind)
                self.default_endpoint = self.default_endpoint or name
            return self.endpoints[name]

    def deploy(self, name: str, model_dir: str | Path, config_name: str | None = None
               ) -> LoadedModel:
        """Swap ``model_dir`` into endpoint ``name`` (created if new); see :meth:`Endpoint.swap`.

        A new endpoint's kind is what its name promises, else the bundle's; when its first
        model is refused, it is not created (``/ping`` stays as it was).
        """
        new = name not in self.endpoints
        endpoint = self.endpoint(name, create=True)
        try:
            return endpoint.swap(model_dir, config_name, self.load_timeout_s)
        except BaseException:
            if new and endpoint.model is None:
                with self._lock:
                    if self.endpoints.get(name) is endpoint:
                        del self.endpoints[name]
                        if self.default_endpoint == name:
                            self.default_endpoint = next(iter(self.endpoints), None)
                endpoint.close()
            raise

    def invoke(self, name: str | None, body: bytes, content_type: str = _JSON,
               attributes: str | None = None) -> tuple[int, bytes]:
        """Answer an invocation of endpoint ``name`` (None: the default endpoint).

        With a prediction log, the answer is queued for it (an endpoint of a known kind only;
        see :mod:`skiff.serve.predlog`).

        :param name: the endpoint.
        :param body: the request body.
        :param content_type: its media type.
        :param attributes: the caller's custom attributes (``request_id=…;session_id=…``).
        :return: ``(status, JSON body)``; 404 for an unknown endpoint.
        """
        name = name or self.default_endpoint
        endpoint = self.endpoints.get(name) if name else None
        if endpoint is None:
            return 404, _error_body("not_found", f"no endpoint {name!r}; have "
                                                 f"{sorted(self.endpoints)}.")
        predlog = self.predlog
        if predlog is None:
            return endpoint.invoke(body, content_type)
        model = endpoint.model
        started = time.perf_counter()
        status, answer = endpoint.invoke(body, content_type)
        kind = model.kind if model is not None else endpoint.kind
        if kind is not None:
            predlog.record(endpoint.name, kind, model.meta if model is not None else None, body,
                           status, answer, (time.perf_counter() - started) * 1000, attributes)
        return status, answer

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
            except ServingError as exc:
                log.error("Endpoint %s not loaded: %s", record.endpoint_name, exc)
        return served

    def close(self) -> None:
        """Stop every endpoint's batcher, and the prediction log (after one last post)."""
        for endpoint in self.endpoints.values():
            endpoint.close()
        if self.predlog is not None:
            self.predlog.close()
