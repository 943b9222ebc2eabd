"""The invocation contract of Skiff's model endpoints: JSON in, JSON out.

One contract for both serving paths: the local model server (:mod:`skiff.serve.server`) speaks
it, and this very file is shipped as ``code/inference.py`` in the model tarball, where
SageMaker's TensorFlow Serving container calls :func:`input_handler` and
:func:`output_handler` around TF Serving. It therefore imports only the standard library.

Request (``Content-Type: application/json``)::

    {"sessions": [["view", "detail", "add"], ...], "k": 10}     # k: next-item models only

(``k`` larger than the model's export ``k`` gets the export's ``k`` items.)

Response::

    {"model": "rec", "model_version": "TrainRecFlow/42", "predictions": [
        {"items": ["sku1", "sku2", ...], "scores": [0.31, 0.12, ...]}, ...]}
    {"model": "intent", "model_version": "TrainIntentFlow/7", "predictions": [
        {"probability": 0.42}, ...]}

A bad request (unknown tokens, empty session, malformed JSON) is answered with status 400 and
``{"error": "bad_request", "message": "..."}`` by the local server. In the SageMaker
container a handler can only raise, so :class:`BadRequest`'s message starts with
``bad_request:`` and the ``/predict`` handler maps it to a 400 the same way.

Bundle metadata (``code/skiff_model.json`` next to this file in the tarball): ``kind``
(``intent`` | ``rec``), ``version``, ``vocabulary`` (tokens by id, ``[PAD]`` and ``[OOV]``
first), ``max_len`` (ids the model sees), ``k`` (list length of a next-item export).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

__all__ = [
    "KINDS",
    "META_FILE",
    "MAX_SESSIONS",
    "MAX_SESSION_TOKENS",
    "BadRequest",
    "Codec",
    "bad_request_body",
    "input_handler",
    "output_handler",
]

#: Model kinds a bundle can hold.
KINDS = ("intent", "rec")
#: Name of the bundle metadata file, inside the bundle's ``code/`` folder.
META_FILE = "skiff_model.json"
#: Most sessions one invocation may carry.
MAX_SESSIONS = 256
#: Most tokens one session of an invocation may carry (the model sees the last ``max_len``).
MAX_SESSION_TOKENS = 1000

_PAD, _OOV = 0, 1


class BadRequest(ValueError):
    """The request breaks the contract; ``str()`` starts with ``bad_request:``."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bad_request: {message}")
        self.message = message


def bad_request_body(message: str) -> bytes:
    """The JSON body of a 400 answer.

    :param message: what is wrong, for the caller.
    :return: ``{"error": "bad_request", "message": ...}`` as UTF-8 JSON.
    """
    return json.dumps({"error": "bad_request", "message": message}).encode()


class Codec:
    """Turns request JSON into model ids and model outputs into response JSON.

    :param meta: the bundle metadata (see the module docstring).
    :raises ValueError: the metadata lacks a field or names an unknown kind.
    """

    def __init__(self, meta: dict[str, Any]) -> None:
        missing = [f for f in ("kind", "version", "vocabulary", "max_len") if f not in meta]
        if missing:
            raise ValueError(f"Bundle metadata lacks {missing}.")
        if meta["kind"] not in KINDS:
            raise ValueError(f"Bundle kind {meta['kind']!r} is not one of {KINDS}.")
        tokens = list(meta["vocabulary"])
        if len(tokens) < 3:
            raise ValueError("Bundle vocabulary needs PAD, OOV and at least one token.")
        self.meta = meta
        self.kind: str = meta["kind"]
        self.version: str = str(meta["version"])
        self.max_len = int(meta["max_len"])
        self.k = int(meta.get("k", 0))
        self.tokens = tokens
        # PAD and OOV are not valid inputs: a request naming them is refused like any unknown
        self.index = {t: i for i, t in enumerate(tokens) if i > _OOV}

    # -- requests ---------------------------------------------------------------------------

    def parse(self, body: bytes | str, content_type: str = "application/json"
              ) -> tuple[list[list[str]], int | None]:
        """The sessions and ``k`` of a request body.

        :param body: the raw body.
        :param content_type: its media type; only JSON is understood.
        :return: ``(sessions, k)``; ``k`` is None when the request leaves it out.
        :raises BadRequest: not JSON, wrong shape, too many sessions or tokens, bad ``k``.
        """
        if content_type and content_type.split(";")[0].strip().lower() not in (
                "application/json", "application/x-json", ""):
            raise BadRequest(f"content type {content_type!r} is not supported; send "
                             "application/json.")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not valid JSON (UTF-8).") from None
        except RecursionError:
            raise BadRequest("the body nests JSON too deeply.") from None
        if not isinstance(payload, dict):
            raise BadRequest('the body must be a JSON object like {"sessions": [["a", "b"]]}.')
        sessions = payload.get("sessions", payload.get("instances"))
        if not isinstance(sessions, list) or not sessions:
            raise BadRequest('"sessions" must be a non-empty list of token lists.')
        if len(sessions) > MAX_SESSIONS:
            raise BadRequest(f"{len(sessions)} sessions in one request; at most {MAX_SESSIONS}.")
        for i, session in enumerate(sessions):
            if not isinstance(session, list) or not session:
                raise BadRequest(f"session {i} must be a non-empty list of tokens.")
            if len(session) > MAX_SESSION_TOKENS:
                raise BadRequest(f"session {i} has {len(session)} tokens; at most "
                                 f"{MAX_SESSION_TOKENS}.")
            if not all(isinstance(t, str) for t in session):
                raise BadRequest(f"session {i} must hold strings only.")
        k = payload.get("k")
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise BadRequest(f'"k" must be a positive integer; got {k!r}.')
        return sessions, k

    def encode(self, sessions: Sequence[Sequence[str]]) -> list[list[int]]:
        """Ids of each session's tokens, all of them known, each session cut to ``max_len``.

        :param sessions: the token lists.
        :return: one id list per session (the most recent ``max_len`` ids; for ``rec`` the
            first id of the untruncated session is kept separately by :meth:`model_inputs`).
        :raises BadRequest: a token is not in the model's vocabulary.
        """
        index = self.index
        out = []
        for i, session in enumerate(sessions):
            ids = [index.get(t, _OOV) for t in session]
            if _OOV in ids:
                unknown = sorted({t for t, j in zip(session, ids) if j == _OOV})
                shown = ", ".join(repr(t[:70]) for t in unknown[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                what = "event types" if self.kind == "intent" else "SKUs"
                raise BadRequest(f"session {i}: unknown {what} {shown}{more} (not in the "
                                 f"model {self.version}'s vocabulary).")
            out.append(ids)
        return out

    def model_inputs(self, ids: Sequence[Sequence[int]]) -> dict[str, list[Any]]:
        """The SavedModel's ``serve`` inputs, as right-padded lists (TF Serving's JSON).

        :param ids: id lists from :meth:`encode`, in session order.
        :return: ``{"tokens": [[...]]}`` (intent) or ``{"items": [[...]], "first": [...]}``.
        """
        window = [s[-self.max_len:] for s in ids]
        width = max(len(s) for s in window)
        padded = [s + [_PAD] * (width - len(s)) for s in window]
        if self.kind == "intent":
            return {"tokens": padded}
        return {"items": padded, "first": [s[0] for s in ids]}

    # -- responses --------------------------------------------------------------------------

    def response(self, outputs: dict[str, Any], k: int | None = None) -> dict[str, Any]:
        """The response document from the model's outputs.

        :param outputs: ``{"probability": [...]}`` or ``{"items": [[...]], "scores": [[...]]}``
            (lists or arrays).
        :param k: list length for ``rec`` (default: everything the model returned).
        :return: the response (see the module docstring).
        """
        if self.kind == "intent":
            predictions = [{"probability": round(float(p), 6)}
                           for p in _tolist(outputs["probability"])]
        else:
            tokens = self.tokens
            predictions = []
            for items, scores in zip(_tolist(outputs["items"]), _tolist(outputs["scores"])):
                items, scores = items[:k] if k else items, scores[:k] if k else scores
                predictions.append({"items": [tokens[i] for i in items],
                                    "scores": [round(float(s), 6) for s in scores]})
        return {"model": self.kind, "model_version": self.version, "predictions": predictions}


def _tolist(value: Any) -> list[Any]:
    return value.tolist() if hasattr(value, "tolist") else list(value)


# -- SageMaker TensorFlow Serving container hooks (code/inference.py) ---------------------------

_CODEC: Codec | None = None


def _codec() -> Codec:
    global _CODEC
    if _CODEC is None:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), META_FILE)) as f:
            _CODEC = Codec(json.load(f))
    return _CODEC


def input_handler(data: Any, context: Any) -> str:
    """TF Serving container pre-processing: request JSON -> TF Serving REST ``predict`` JSON.

    :param data: the request body stream.
    :param context: the container's request context (``request_content_type``).
    :return: ``{"signature_name": "serve", "inputs": {...}}`` as JSON; the ``k`` asked for
        is kept on ``context`` for :func:`output_handler`.
    :raises BadRequest: the request breaks the contract (the container answers an error whose
        message starts with ``bad_request:``).
    """
    codec = _codec()
    body = data.read() if hasattr(data, "read") else data
    sessions, k = codec.parse(body, getattr(context, "request_content_type", "application/json"))
    setattr(context, "skiff_k", k)
    return json.dumps({"signature_name": "serve",
                       "inputs": codec.model_inputs(codec.encode(sessions))})


def output_handler(response: Any, context: Any) -> tuple[str, str]:
    """TF Serving container post-processing: TF Serving's answer -> the response JSON.

    :param response: the ``requests`` response of TF Serving.
    :param context: the request context.
    :return: ``(body, content_type)``.
    :raises ValueError: TF Serving answered an error.
    """
    if response.status_code != 200:
        raise ValueError(response.content.decode(errors="replace"))
    outputs = json.loads(response.content)["outputs"]
    codec = _codec()
    if not isinstance(outputs, dict):  # a single-output signature comes back as a bare list
        outputs = {"probability": outputs}
    return json.dumps(codec.response(outputs, getattr(context, "skiff_k", None))), \
        "application/json"
