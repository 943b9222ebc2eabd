"""The local model server: SageMaker's inference-container contract, atomic swaps, micro-batches.

The embedded default of the serving stage. It speaks what a SageMaker container speaks, so
the same clients work against either:

- ``GET /ping``: 200 once every endpoint has a model (the container health check);
- ``POST /invocations``: the default endpoint (a container serves one model);
- ``POST /endpoints/<name>/invocations``: the path ``sagemaker-runtime``'s ``invoke_endpoint``
  uses, so ``boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080")`` works;
- ``GET /endpoints`` and ``POST /endpoints/<name>/model`` (``{"model_dir", "config_name"}``):
  the local control plane that deploys use (loads, warms and swaps a model).

Bodies follow :mod:`skiff.serve.codec` (the same module is the container's
``code/inference.py``). Pieces, each usable alone:

- :func:`write_bundle` / :func:`read_bundle_meta` / :func:`unpack_bundle`: the model
  bundle the flows write (SavedModel under ``1/``, ``code/inference.py`` and
  ``code/skiff_model.json``) and :func:`bundle_tarball`, its SageMaker tarball;
- :class:`LoadedModel`: a bundle loaded and warmed up, predicting from token ids;
- :class:`Endpoint`: one name, one current model; :meth:`Endpoint.swap` loads the new model
  completely before a single reference assignment replaces the old one, so requests in flight
  finish on the model they started with and a model that fails to load is never served;
  concurrent requests are grouped into one model call by a micro-batcher;
- :class:`ModelServer`: endpoints by name, :meth:`ModelServer.invoke` (no HTTP), and
  :meth:`ModelServer.http_server` (the HTTP face);
- :class:`EndpointStore`: which model each local endpoint serves, kept in
  ``$SKIFF_HOME/serving`` so a restarted server and a deploy task agree;
- :class:`LocalRuntimeClient`: an in-process stand-in for the ``sagemaker-runtime`` client.

``skiff serve`` runs the server with the ``GET /predict`` adapter in front of it:
:class:`skiff_api.local_stack.LocalStack` (``skiff_api`` builds on this package, never the
other way round).

TensorFlow is imported when a model is loaded, not with this module.
"""

from __future__ import annotations

import _thread
import io
import json
import logging
import os
import queue
import re
import shutil
import tarfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from skiff.exceptions import ModelLoadError, ServingError, SkiffConfigError
from skiff.serve.httpserver import KeepAliveHandler, ThreadedServer
from skiff.serve.codec import (
    KINDS,
    META_FILE,
    BadRequest,
    Codec,
    bad_request_body,
)

__all__ = [
    "SAVED_MODEL_DIR",
    "MAX_BODY_BYTES",
    "write_bundle",
    "read_bundle_meta",
    "bundle_tarball",
    "unpack_bundle",
    "LoadedModel",
    "Endpoint",
    "ModelServer",
    "EndpointStore",
    "EndpointRecord",
    "LocalRuntimeClient",
    "LocalModelError",
    "configure_tensorflow",
]

log = logging.getLogger(__name__)

#: Folder of the SavedModel inside a bundle (TF Serving's numbered version folder).
SAVED_MODEL_DIR = "1"
#: Largest request body the server reads, in bytes (SageMaker's invocation limit).
MAX_BODY_BYTES = 6 * 1024 * 1024
_JSON = "application/json"
_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")


# --------------------------------------------------------------------------- bundles

def write_bundle(model: Any, path: str | Path, *, kind: str, vocabulary: Any, version: str,
                 max_len: int, k: int = 20, extra: dict[str, Any] | None = None) -> Path:
    """Write a servable model bundle: the SavedModel plus what serving needs to read requests.

    Layout (also the layout of the SageMaker tarball, see :func:`bundle_tarball`)::

        <path>/1/                      SavedModel (skiff.train.models.export_saved_model)
        <path>/code/inference.py       the TF Serving container's pre/post-processing
        <path>/code/skiff_model.json   kind, version, vocabulary, max_len, k

    :param model: a Keras intent (tokens only) or next-item model.
    :param path: the bundle folder (replaced if it exists).
    :param kind: ``intent`` or ``rec``.
    :param vocabulary: a :class:`skiff.train.features.Vocabulary` or its tokens (PAD, OOV first).
    :param version: the model's identity, e.g. the Metaflow run pathspec.
    :param max_len: ids the model sees (the training window; the most recent are kept).
    :param k: list length of a next-item export.
    :param extra: more metadata to keep (metrics, data version ...), JSON-serialisable.
    :return: the bundle folder.
    :raises SkiffConfigError: ``kind`` is unknown or ``max_len < 1``.
    """
    from skiff.train import models

    if kind not in KINDS:
        raise SkiffConfigError(f"kind={kind!r} is not one of {KINDS}.")
    if max_len < 1:
        raise SkiffConfigError(f"max_len={max_len} must be >= 1.")
    tokens = list(getattr(vocabulary, "tokens", vocabulary))
    Codec({"kind": kind, "version": version, "vocabulary": tokens, "max_len": max_len})
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    models.export_saved_model(model, path / SAVED_MODEL_DIR, k=k)
    _write_code(path, kind=kind, vocabulary=tokens, version=version, max_len=max_len, k=k,
                extra=extra)
    return path


def _write_code(path: Path, *, kind: str, vocabulary: Any, version: str, max_len: int, k: int,
                extra: dict[str, Any] | None) -> None:
    tokens = list(getattr(vocabulary, "tokens", vocabulary))
    meta = {"format": 1, "kind": kind, "version": str(version), "max_len": int(max_len),
            "k": int(k) if kind == "rec" else 0, "vocabulary": tokens,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **(extra or {})}
    Codec(meta)  # validates the metadata before it is written
    code = path / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("codec.py"), code / "inference.py")
    (code / META_FILE).write_text(json.dumps(meta))


def read_bundle_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a bundle folder.

    :param path: the bundle folder.
    :return: the ``code/skiff_model.json`` document.
    :raises ModelLoadError: the folder is not a bundle.
    """
    file = Path(path) / "code" / META_FILE
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is not a model bundle: {file} is missing (write it "
                             "with skiff.serve.server.write_bundle).") from None
    except ValueError as exc:
        raise ModelLoadError(f"{file} is not valid JSON: {exc}") from None


def bundle_tarball(path: str | Path, out: str | Path) -> Path:
    """Pack a bundle as SageMaker's ``model.tar.gz`` (``1/``, ``code/`` at the archive root).

    :param path: the bundle folder.
    :param out: the tarball to write.
    :return: the tarball.
    :raises ModelLoadError: ``path`` is not a bundle.
    """
    read_bundle_meta(path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for child in sorted(Path(path).iterdir()):
            tar.add(child, arcname=child.name)
    return out


def unpack_bundle(tarball: bytes | str | Path, path: str | Path) -> Path:
    """Unpack a :func:`bundle_tarball` (its bytes or its file) into the bundle folder ``path``.

    :return: the bundle folder (what it holds is checked when it is read or loaded).
    """
    path = Path(path)
    source = {"fileobj": io.BytesIO(tarball)} if isinstance(tarball, bytes) else {"name": tarball}
    with tarfile.open(**source) as tar:
        tar.extractall(path, filter="data")
    return path


# --------------------------------------------------------------------------- one model

class LoadedModel:
    """A bundle loaded into this process, warmed up, predicting from token ids.

    Immutable once built: an :class:`Endpoint` swaps whole objects, never their insides.

    :param path: the bundle folder.
    :param meta: its metadata.
    :param saved: the restored SavedModel.
    """

    def __init__(self, path: Path, meta: dict[str, Any], saved: Any) -> None:
        self.path = path
        self.meta = meta
        self.codec = Codec(meta)
        self.kind = self.codec.kind
        self.version = self.codec.version
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._saved = saved  # keeps the variables alive
        # the traced graph itself: calling it skips the polymorphic function's signature
        # matching, about 0.5 ms of the ~1.4 ms a tiny model's call costs
        concrete = getattr(saved.serve, "concrete_functions", None)
        self._fn = concrete[0] if concrete and len(concrete) == 1 else saved.serve

    @classmethod
    def load(cls, path: str | Path) -> LoadedModel:
        """Load a bundle and check it end to end with one prediction.

        :param path: the bundle folder.
        :return: the ready model.
        :raises ModelLoadError: anything is wrong: missing files, bad metadata, a signature
            that is not the kind's, or a failing warm-up prediction.
        """
        from skiff.train import models

        path = Path(path)
        meta = read_bundle_meta(path)
        try:
            Codec(meta)
        except ValueError as exc:
            raise ModelLoadError(f"{path}: {exc}") from None
        try:
            saved = models.load_saved_model(path / SAVED_MODEL_DIR)
        except Exception as exc:  # noqa: BLE001  (TF raises many types; none may escape a swap)
            raise ModelLoadError(f"{path}: the SavedModel does not load: "
                                 f"{type(exc).__name__}: {exc}") from exc
        model = cls(path, meta, saved)
        model._check_signature()
        try:
            model.warm_up()
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{path}: the warm-up prediction failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
        return model

    def _check_signature(self) -> None:
        fns = getattr(self._saved.serve, "concrete_functions", None)
        if not fns:
            raise ModelLoadError(f"{self.path}: the SavedModel has no 'serve' function.")
        args, kwargs = fns[0].structured_input_signature
        names = {getattr(spec, "name", None) for spec in args} | set(kwargs)
        expected = {"intent": {"tokens"}, "rec": {"items", "first"}}[self.kind]
        if names != expected:
            hint = (" An intent model with session 'features' cannot be served from tokens: "
                    "export one built with n_features=0." if "features" in names else "")
            raise ModelLoadError(f"{self.path}: a {self.kind} bundle's SavedModel takes "
                                 f"{sorted(expected)}, this one {sorted(names)}.{hint}")

    def warm_up(self) -> None:
        """Run one prediction (the first call of a SavedModel is slow; keep it off requests)."""
        outputs = self.predict([[2, 2]])
        if self.kind == "intent":
            p = outputs["probability"]
            if p.shape != (1,) or not np.isfinite(p).all():
                raise ModelLoadError(f"{self.path}: warm-up gave probabilities {p!r}.")
        elif outputs["items"].shape[0] != 1 or outputs["items"].shape[1] < 1:
            raise ModelLoadError(f"{self.path}: warm-up gave items of shape "
                                 f"{outputs['items'].shape}.")

    def predict(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Model outputs for id lists (from ``self.codec.encode``), in one model call.

        :param ids: one id list per session.
        :return: ``{"probability": (n,)}`` or ``{"items": (n, k), "scores": (n, k)}``.
        """
        inputs = self.codec.model_inputs(ids)
        arrays = {name: np.asarray(value, dtype=np.int32) for name, value in inputs.items()}
        out = self._fn(**arrays)
        return {name: value.numpy() for name, value in out.items()}

    def describe(self) -> dict[str, Any]:
        """Identity of the model, for ``GET /endpoints`` and deploy results."""
        return {"kind": self.kind, "model_version": self.version, "model_dir": str(self.path),
                "loaded_at": self.loaded_at}


# --------------------------------------------------------------------------- batching

class _Job:
    """One request waiting for the batcher: its model, ids, and a lock released when done."""

    __slots__ = ("model", "ids", "done", "result", "error")

    def __init__(self, model: LoadedModel, ids: list[list[int]]) -> None:
        self.model = model
        self.ids = ids
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None


class _MicroBatcher:
    """Groups concurrent requests into one model call per model (one worker thread).

    The worker takes the first waiting request, then every request already queued (up to
    ``max_batch`` sessions; optionally waiting ``wait_s`` for more), runs each model's
    group in one call and hands every request its rows. Under load, requests arriving
    during a model call form the next batch, so batching adds no wait at low load.
    """

    def __init__(self, name: str, max_batch: int, wait_s: float) -> None:
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.calls = 0
        self.rows = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._held: _Job | None = None
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, model: LoadedModel, ids: list[list[int]]) -> dict[str, np.ndarray]:
        job = _Job(model, ids)
        self._queue.put(job)
        job.done.acquire()  # released by the worker
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _next(self, timeout: float | None) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout == 0:
            return self._queue.get_nowait()
        return self._queue.get(timeout=timeout)

    def _work(self) -> None:
        while True:
            first = self._next(None)
            if first is None:
                return
            batch, rows = [first], len(first.ids)
            deadline = time.perf_counter() + self.wait_s
            while rows < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    job = self._next(remaining if remaining > 0 else 0)
                except queue.Empty:
                    break
                if job is None:  # closing: finish this batch, then stop
                    self._queue.put(None)
                    break
                if rows + len(job.ids) > self.max_batch:
                    self._held = job  # first of the next batch
                    break
                batch.append(job)
                rows += len(job.ids)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        by_model: dict[int, list[_Job]] = {}
        for job in batch:  # a swap may have happened mid-batch: each job keeps its model
            by_model.setdefault(id(job.model), []).append(job)
        for jobs in by_model.values():
            try:
                ids = [row for job in jobs for row in job.ids]
                out = jobs[0].model.predict(ids)
                self.calls += 1
                self.rows += len(ids)
                lo = 0
                for job in jobs:
                    hi = lo + len(job.ids)
                    job.result = {name: value[lo:hi] for name, value in out.items()}
                    lo = hi
            except BaseException as exc:  # noqa: BLE001  (handed to the waiting requests)
                for job in jobs:
                    job.error = exc
            finally:
                for job in jobs:
                    job.done.release()


# --------------------------------------------------------------------------- endpoints

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
        self._batcher = _MicroBatcher(name, max_batch, batch_wait_ms / 1000) \
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


# --------------------------------------------------------------------------- local control plane

@dataclass(frozen=True)
class EndpointRecord:
    """What a local endpoint serves: the local twin of SageMaker's endpoint + endpoint config.

    :param endpoint_name: the endpoint.
    :param endpoint_config_name: the config it serves now.
    :param model_dir: the bundle of that config.
    :param model_version: the bundle's version.
    :param previous_config_name: the config served before (what a rollback returns to).
    :param updated_at: when the record last changed (ISO 8601).
    """

    endpoint_name: str
    endpoint_config_name: str
    model_dir: str
    model_version: str
    previous_config_name: str | None = None
    updated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class EndpointStore:
    """Endpoint configs and endpoints of the local backend, as JSON files.

    ``<root>/configs/<config>.json`` holds a config (its bundle, copied under
    ``<root>/models/<config>/`` so cleaning a flow's output never breaks serving);
    ``<root>/endpoints/<endpoint>.json`` names the config each endpoint serves. Writes are
    atomic (temporary file + rename).

    :param root: the store folder, default ``$SKIFF_HOME/serving``.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        from skiff.config import skiff_home

        self.root = Path(root) if root else skiff_home() / "serving"

    def _write(self, path: Path, doc: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)

    def create_config(self, config_name: str, model_dir: str | Path) -> dict[str, Any]:
        """Copy a bundle into the store and record it as endpoint config ``config_name``.

        :param config_name: a new config name.
        :param model_dir: the bundle folder.
        :return: the config record.
        :raises ModelLoadError: ``model_dir`` is not a bundle.
        :raises ServingError: the config already exists.
        """
        meta = read_bundle_meta(model_dir)
        target = self.root / "models" / config_name
        if (self.root / "configs" / f"{config_name}.json").exists():
            raise ServingError(f"Endpoint config {config_name!r} already exists in {self.root}.")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target)
        doc = {"endpoint_config_name": config_name, "model_dir": str(target),
               "model_version": meta["version"], "kind": meta["kind"],
               "source": str(model_dir), "created_at": datetime.now(UTC).isoformat()}
        self._write(self.root / "configs" / f"{config_name}.json", doc)
        return doc

    def config(self, config_name: str) -> dict[str, Any]:
        """A config record.

        :raises ServingError: there is no such config.
        """
        try:
            return json.loads((self.root / "configs" / f"{config_name}.json").read_text())
        except FileNotFoundError:
            raise ServingError(f"No endpoint config {config_name!r} in {self.root}.") from None

    def endpoint(self, endpoint_name: str) -> EndpointRecord | None:
        """The record of an endpoint, None if it was never deployed."""
        path = self.root / "endpoints" / f"{endpoint_name}.json"
        if not path.exists():
            return None
        return EndpointRecord(**json.loads(path.read_text()))

    def endpoints(self) -> Iterable[EndpointRecord]:
        """Every endpoint record, by name."""
        for path in sorted((self.root / "endpoints").glob("*.json")):
            yield EndpointRecord(**json.loads(path.read_text()))

    def set_endpoint(self, endpoint_name: str, config_name: str) -> EndpointRecord:
        """Point an endpoint at a config (create or update), remembering the previous one.

        :return: the new record.
        :raises ServingError: the config does not exist.
        """
        config = self.config(config_name)
        current = self.endpoint(endpoint_name)
        previous = current.endpoint_config_name if current else None
        if previous == config_name:
            previous = current.previous_config_name if current else None
        record = EndpointRecord(endpoint_name, config_name, config["model_dir"],
                                config["model_version"], previous)
        self._write(self.root / "endpoints" / f"{endpoint_name}.json", record.__dict__)
        return record


# --------------------------------------------------------------------------- in-process client

class LocalModelError(Exception):
    """Raised by :class:`LocalRuntimeClient` like botocore's ``ModelError``.

    ``response`` has the same keys a ``ClientError`` carries (``Error.Code``,
    ``OriginalStatusCode``, ``OriginalMessage``), so callers handle both alike.
    """

    def __init__(self, status: int, body: bytes) -> None:
        message = body.decode(errors="replace")
        super().__init__(f"Received client error ({status}) from the model: {message}")
        self.response = {"Error": {"Code": "ModelError", "Message": message},
                         "OriginalStatusCode": status, "OriginalMessage": message}


class _Body:
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


class LocalRuntimeClient:
    """An in-process ``sagemaker-runtime`` client: ``invoke_endpoint`` on a :class:`ModelServer`.

    The ``/predict`` handler takes any object with boto3's ``invoke_endpoint`` signature;
    ``skiff serve`` gives it this one, so the local path skips a second HTTP hop.

    :param server: the model server.
    """

    def __init__(self, server: ModelServer) -> None:
        self.server = server

    def invoke_endpoint(self, *, EndpointName: str, Body: bytes | str,  # noqa: N803
                        ContentType: str = _JSON, Accept: str = _JSON, **_: Any
                        ) -> dict[str, Any]:
        body = Body.encode() if isinstance(Body, str) else Body
        status, answer = self.server.invoke(EndpointName, body, ContentType)
        if status != 200:
            raise LocalModelError(status, answer)
        return {"Body": _Body(answer), "ContentType": _JSON, "InvokedProductionVariant": "local"}


# --------------------------------------------------------------------------- skiff serve

def configure_tensorflow(threads: int) -> bool:
    """Set TensorFlow's intra- and inter-op thread pools (before its first op runs).

    :param threads: threads per pool; 0 leaves TensorFlow's default (one per core).
    :return: whether the setting took (False once TensorFlow's runtime has started).
    """
    if threads <= 0:
        return True
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime is initialised already (e.g. a model was loaded)
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            log.info("TensorFlow runs already with %s threads; SKIFF_SERVE_TF_THREADS=%s "
                     "applies to a fresh process.", current or "default", threads)
        return current == threads
    return True
