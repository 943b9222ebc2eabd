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
        {"items": ["sku1", "sku2", ...], "scores": [0.31, 0.12, ...],
         "ignored": ["sku-new"], "ignored_count": 1}, ...]}
    {"model": "intent", "model_version": "TrainIntentFlow/7", "predictions": [
        {"probability": 0.42}, ...]}

A next-item session is forgiving (new products appear every hour; a shopper's session is
never fully known): SKUs missing from the model's vocabulary are dropped before the model
reads the session and listed under ``ignored`` (first seen first, each once, at most
:data:`MAX_IGNORED`; ``ignored_count`` counts them all). A session with no known SKU gets
the bundle's most popular items, with ``"fallback": "popular"`` (scores: each item's share
of the training sessions' items); a bundle without that list (written before it existed)
answers an empty list and a ``message`` saying so. The filtering lives here, on the model
side, so the local server and SageMaker's container (which runs this file) answer alike.
The intent vocabulary is fixed: an unknown event type is the caller's error.

A bad request (unknown event types, empty session, malformed JSON) is answered with status
400 and ``{"error": "bad_request", "message": "..."}`` by the local server. In the SageMaker
container a handler can only raise, so :class:`BadRequest`'s message starts with
``bad_request:`` and the ``/predict`` handler maps it to a 400 the same way.

How the annotations travel: :meth:`Codec.encode` returns :class:`EncodedSession` rows (id
lists that also carry ``ignored`` and ``fallback``; a fallback row holds the OOV id so the
model call keeps one row per session). :meth:`Codec.annotations` reads them back as plain
columns: the local server's model adds them to its outputs (so micro-batching slices them
with the rows), the container keeps them on the request context, and
:meth:`Codec.response` turns them into ``ignored`` and the fallback.

Bundle metadata (``code/skiff_model.json`` next to this file in the tarball): ``kind``
(``intent`` | ``rec``), ``version``, ``vocabulary`` (tokens by id, ``[PAD]`` and ``[OOV]``
first), ``max_len`` (ids the model sees), ``k`` (list length of a next-item export), and
for next-item bundles since format 2 ``popular``: ``{"items": [...], "scores": [...]}``,
the training sessions' most popular SKUs, most popular first.
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
    "MAX_IGNORED",
    "BadRequest",
    "Codec",
    "EncodedSession",
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

#: Most unknown SKUs a prediction lists under ``ignored`` (``ignored_count`` counts them all).
MAX_IGNORED = 20

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


class EncodedSession(list):
    """One session's model ids, with what encoding left out of it.

    A plain ``list`` of ids to the model (JSON, slicing and batching see a list).

    :param ids: the ids the model reads.
    :param ignored: the tokens dropped as unknown, first seen first, each once.
    :param fallback: no token was known: ``ids`` is a placeholder, the answer is the
        popular items.
    """

    __slots__ = ("ignored", "fallback")

    def __init__(self, ids: Sequence[int], ignored: Sequence[str] = (),
                 fallback: bool = False) -> None:
        super().__init__(ids)
        self.ignored = tuple(ignored)
        self.fallback = fallback


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
        self.popular_items, self.popular_scores = _popular(meta.get("popular"))
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

    def encode(self, sessions: Sequence[Sequence[str]]) -> list[EncodedSession]:
        """Ids of each session's tokens (see the module docstring for unknown SKUs).

        :param sessions: the token lists.
        :return: one :class:`EncodedSession` per session (all its ids; the model reads the
            most recent ``max_len``, and for ``rec`` the first id of the untruncated session
            is kept separately by :meth:`model_inputs`).
        :raises BadRequest: an intent session names a token that is not an event type.
        """
        index = self.index
        out = []
        for i, session in enumerate(sessions):
            ids = [index.get(t, _OOV) for t in session]
            if _OOV not in ids:
                out.append(EncodedSession(ids))
                continue
            unknown = list(dict.fromkeys(t for t, j in zip(session, ids) if j == _OOV))
            if self.kind == "intent":
                shown = ", ".join(repr(t[:70]) for t in sorted(unknown)[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise BadRequest(f"session {i}: unknown event types {shown}{more} (the model "
                                 f"{self.version} knows {', '.join(self.tokens[2:])}).")
            known = [j for j in ids if j != _OOV]
            out.append(EncodedSession(known or [_OOV], unknown, fallback=not known))
        return out

    def annotations(self, ids: Sequence[Sequence[int]]) -> dict[str, list[Any]]:
        """What :meth:`encode` left out of each row, as columns (none for plain id lists).

        :param ids: rows from :meth:`encode` (other lists count as fully known sessions).
        :return: ``{"ignored": [tuple of tokens, ...], "fallback": [bool, ...]}``, or ``{}``
            when no row is an :class:`EncodedSession` or nothing was left out.
        """
        if not any(isinstance(row, EncodedSession) and (row.ignored or row.fallback)
                   for row in ids):
            return {}
        return {"ignored": [getattr(row, "ignored", ()) for row in ids],
                "fallback": [bool(getattr(row, "fallback", False)) for row in ids]}

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
            (lists or arrays), plus the :meth:`annotations` columns when there are any.
        :param k: list length for ``rec`` (default: everything the model returned).
        :return: the response (see the module docstring).
        """
        if self.kind == "intent":
            predictions = [{"probability": round(float(p), 6)}
                           for p in _tolist(outputs["probability"])]
        else:
            tokens = self.tokens
            ignored = outputs.get("ignored")
            fallback = outputs.get("fallback")
            predictions = []
            for n, (items, scores) in enumerate(zip(_tolist(outputs["items"]),
                                                    _tolist(outputs["scores"]))):
                if fallback is not None and fallback[n]:
                    prediction = self.popular(k)
                else:
                    items, scores = items[:k] if k else items, scores[:k] if k else scores
                    prediction = {"items": [tokens[i] for i in items],
                                  "scores": [round(float(s), 6) for s in scores]}
                unknown = list(ignored[n]) if ignored is not None else []
                prediction["ignored"] = unknown[:MAX_IGNORED]
                prediction["ignored_count"] = len(unknown)
                predictions.append(prediction)
        return {"model": self.kind, "model_version": self.version, "predictions": predictions}

    def popular(self, k: int | None = None) -> dict[str, Any]:
        """The fallback prediction of a session with no known SKU: the popular items.

        :param k: list length (default: the bundle's ``k``).
        :return: ``items``, ``scores`` and ``"fallback": "popular"`` (and a ``message``
            when the bundle carries no popular items).
        """
        n = k or self.k or len(self.popular_items)
        out: dict[str, Any] = {"items": self.popular_items[:n],
                               "scores": self.popular_scores[:n], "fallback": "popular"}
        if not self.popular_items:
            out["message"] = (f"No SKU of the session is known to the model {self.version}, "
                              "and its bundle carries no popular items (written before they "
                              "were kept); a retrained model answers them.")
        return out


def _popular(doc: Any) -> tuple[list[str], list[float]]:
    """The bundle's popular items and scores (empty lists when it has none).

    :raises ValueError: ``doc`` is not ``{"items": [str, ...], "scores": [number, ...]}``
        with as many scores as items.
    """
    if doc is None:
        return [], []
    items = doc.get("items") if isinstance(doc, dict) else None
    scores = doc.get("scores") if isinstance(doc, dict) else None
    if not (isinstance(items, list) and isinstance(scores, list) and len(items) == len(scores)
            and all(isinstance(t, str) for t in items)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores)):
        raise ValueError('Bundle metadata "popular" must be {"items": [SKU, ...], "scores": '
                         "[number, ...]} with one score per item.")
    return list(items), [float(x) for x in scores]


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
        and the sessions' :meth:`Codec.annotations` are kept on ``context`` for
        :func:`output_handler`.
    :raises BadRequest: the request breaks the contract (the container answers an error whose
        message starts with ``bad_request:``).
    """
    codec = _codec()
    body = data.read() if hasattr(data, "read") else data
    sessions, k = codec.parse(body, getattr(context, "request_content_type", "application/json"))
    ids = codec.encode(sessions)
    setattr(context, "skiff_k", k)
    setattr(context, "skiff_annotations", codec.annotations(ids))
    return json.dumps({"signature_name": "serve", "inputs": codec.model_inputs(ids)})


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
    outputs = {**outputs, **getattr(context, "skiff_annotations", {})}
    return json.dumps(codec.response(outputs, getattr(context, "skiff_k", None))), \
        "application/json"
