"""The prediction log: every answered session, sent to the collector off the request's path.

:class:`PredictionLog` is what the model server (:class:`~skiff.serve.server.ModelServer`)
calls after each answer, for ``/invocations``, ``/endpoints/<name>/invocations`` and the
``/predict`` handler's in-process calls alike. :meth:`PredictionLog.record` only samples
(``SKIFF_PREDLOG_SAMPLE``) and appends the raw answer to a bounded in-memory queue
(``SKIFF_PREDLOG_BUFFER``): no parsing, no I/O, no lock on the request's path. One
background thread turns the queued answers into ``predictions`` events (one per session of
the request, the contract's table: ``include/skiff/data/contract.toml``) and posts them as
NDJSON to the collector's ``/collect?table=predictions`` with httpx, every
``SKIFF_PREDLOG_FLUSH_S`` or sooner when a batch is full, each post bounded by
``SKIFF_PREDLOG_TIMEOUT_S``.

When the collector is slow or down the events wait in the queue (a failed post puts its
events back in front, then the sender backs off, up to :data:`MAX_BACKOFF_S`); an answer
that finds the queue full is dropped and counted. Events the collector rejects (they break
the contract) are counted apart and never retried. The counts (``sent``, ``dropped``,
``rejected``, ``queued``) are in the model server's ``GET /health``, and every event carries
``dropped_before``, the drops of its sender (``sender_id``) so far, so the loss is monitored
from the data (``mon_serving_hourly.dropped_events``).

The caller can name the request and the shopper's session in SageMaker's custom attributes
(``X-Amzn-SageMaker-Custom-Attributes``, boto3's ``CustomAttributes``):
``request_id=<id>;session_id=<hash>[,<hash>...]`` (one session id per session of the
request). Without a request id the log makes one. See ``docs/monitoring.md``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["MAX_BACKOFF_S", "MAX_INPUT_TOKENS", "PredictionLog", "parse_attributes"]

log = logging.getLogger(__name__)

#: Most tokens of a session an event keeps (the latest); ``session_length`` counts them all.
MAX_INPUT_TOKENS = 100
#: Longest wait between two posts while the collector fails, in seconds.
MAX_BACKOFF_S = 30.0
#: Most events in one post, and most bytes (under the collector's default 1 MiB body limit).
_POST_EVENTS = 500
_POST_BYTES = 512 * 1024
#: Longest stretch the sender holds the GIL building events, in seconds; then it sleeps
#: :data:`_PAUSE_S`, so the request threads waiting for the GIL take it. (``sleep(0)`` does
#: not hand it over: the sender takes the GIL back before a waiting thread has woken up.)
_SLICE_S = 0.0003
_PAUSE_S = 0.0002
#: Longest custom-attributes header read (SageMaker's limit).
_MAX_ATTRIBUTES = 1024

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_HASH = re.compile(r"[0-9a-f]{64}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: JSON in and out with msgspec (airflow-core's own dependency): the sender's work, and so
#: its GIL time in the serving process, is mostly decoding answers and encoding events, and
#: msgspec does both several times faster than ``json``.
_ENCODE = msgspec.json.encode
_DECODE = msgspec.json.decode
#: A list of contract-shaped tokens, each followed by a NUL: checks a whole list in one match.
_TOKENS = re.compile(r"(?:[A-Za-z0-9_-]{1,128}\x00)*")


def parse_attributes(raw: str | None) -> dict[str, str]:
    """The ``key=value`` pairs of a custom-attributes header (``;``-separated).

    :param raw: the header's value (None: absent).
    :return: the pairs; malformed parts are left out.
    """
    if not raw:
        return {}
    out = {}
    for part in raw[:_MAX_ATTRIBUTES].split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _epoch_ms(text: Any) -> int | None:
    """Epoch ms of an ISO 8601 time (naive means UTC), None for anything else."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return int(when.timestamp() * 1000)


def _trained_until(meta: dict[str, Any]) -> int | None:
    """End of a bundle's training data: its data version's interval end, else its last session."""
    version = meta.get("data_version")
    if not isinstance(version, dict):
        return None
    return _epoch_ms(version.get("interval_end")) or _epoch_ms(version.get("max_session_end_at"))


def _tokens(values: Any, keep: int | None = None) -> list[str] | None:
    """The contract-shaped tokens of a list (others left out), the latest ``keep``."""
    if not isinstance(values, list):
        return None
    try:  # the usual case, every token well formed: one match over the whole list
        joined = "\x00".join(values) + "\x00"
        tokens = values if joined.count("\x00") == len(values) and _TOKENS.fullmatch(joined) \
            else None
    except TypeError:  # a token that is not a string
        tokens = None
    if tokens is None:
        tokens = [t for t in values if isinstance(t, str) and _TOKEN.fullmatch(t)]
    tokens = tokens[-keep:] if keep else tokens
    return tokens or None


class _Answer:
    """One answered request as the request's thread left it (parsed by the sender)."""

    __slots__ = ("served_at", "endpoint", "kind", "meta", "body", "status", "answer",
                 "latency_ms", "attributes")

    def __init__(self, served_at: float, endpoint: str, kind: str, meta: dict[str, Any] | None,
                 body: bytes, status: int, answer: bytes, latency_ms: float,
                 attributes: str | None) -> None:
        self.served_at = served_at
        self.endpoint = endpoint
        self.kind = kind
        self.meta = meta
        self.body = body
        self.status = status
        self.answer = answer
        self.latency_ms = latency_ms
        self.attributes = attributes


class PredictionLog:
    """A bounded queue of answers and the thread that posts them to the collector.

    :param url: the collector's ``/collect`` URL (``?table=predictions`` is added).
    :param sample: share of the answered requests logged, 0..1.
    :param buffer: most events waiting (queued answers plus events a failed post put back).
    :param flush_s: seconds between two posts.
    :param timeout_s: most seconds one post takes (connect, write, read).
    :param clock: seconds since the epoch (tests pass a fake).
    :param transport: an ``httpx`` transport (tests); default: the network.
    """

    def __init__(self, url: str, *, sample: float = 1.0, buffer: int = 10_000,
                 flush_s: float = 1.0, timeout_s: float = 2.0,
                 clock: Callable[[], float] = time.time, transport: Any = None) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample={sample!r} must be between 0 and 1.")
        if buffer < 1:
            raise ValueError(f"buffer={buffer!r} must be at least 1.")
        self.url = url
        self.sample = sample
        self.buffer = buffer
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._transport = transport
        self._queue: deque[_Answer] = deque()
        self._retry: deque[bytes] = deque()  # built events (JSON lines) a failed post put back
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warned_at = 0.0
        self._meta_seen: tuple[Any, int | None] = (None, None)  # the last bundle's training end
        #: This process's id in its events: ``dropped_before`` counts per sender.
        self.sender_id = uuid.uuid4().hex
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.posts_failed = 0

    @classmethod
    def from_config(cls, config: Any) -> PredictionLog | None:
        """The log a :class:`~skiff.config.ServingConfig` asks for (None when
        ``SKIFF_PREDLOG_URL`` is empty)."""
        if not config.predlog_url:
            return None
        return cls(config.predlog_url, sample=config.predlog_sample,
                   buffer=config.predlog_buffer, flush_s=config.predlog_flush_s,
                   timeout_s=config.predlog_timeout_s)

    # -- the request's path --------------------------------------------------------------

    def record(self, endpoint: str, kind: str, meta: dict[str, Any] | None, body: bytes,
               status: int, answer: bytes, latency_ms: float,
               attributes: str | None = None) -> None:
        """Queue one answered request (or drop it, counted, when the queue is full).

        Cheap and never blocking: the request's thread calls it before its answer leaves.

        :param endpoint: the endpoint that answered.
        :param kind: its model kind (``intent``, ``rec``).
        :param meta: the bundle metadata of the model it ran on (None: no model yet).
        :param body: the request body.
        :param status: the answer's status.
        :param answer: the answer's JSON body.
        :param latency_ms: the server's time to answer.
        :param attributes: the caller's custom attributes (see the module docstring).
        """
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        if len(self._queue) + len(self._retry) >= self.buffer:
            with self._count_lock:
                self.dropped += 1
            return
        self._queue.append(_Answer(self.clock(), endpoint, kind, meta, body, status, answer,
                                   latency_ms, attributes))
        if len(self._queue) == _POST_EVENTS:  # a batch is full: post it now (once per batch)
            self._wake.set()

    # -- the sender ----------------------------------------------------------------------

    def start(self) -> PredictionLog:
        """Start the sender thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="skiff-predlog", daemon=True)
            self._thread.start()
            log.info("Prediction log: posting to %s (sample %.3g, buffer %d).", self.url,
                     self.sample, self.buffer)
        return self

    def close(self, timeout_s: float | None = None) -> None:
        """Post what is queued (one try), then stop; what could not go is counted dropped.

        :param timeout_s: most seconds to wait for the sender (default: twice the post timeout).
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else 2 * self.timeout_s + 1)

    def stats(self) -> dict[str, Any]:
        """The counters, for ``GET /health``."""
        return {"url": self.url, "sample": self.sample, "sent": self.sent,
                "dropped": self.dropped, "rejected": self.rejected,
                "queued": len(self._queue) + len(self._retry),
                "posts_failed": self.posts_failed}

    def _run(self) -> None:
        import httpx

        failures = 0
        with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
            while True:
                if failures:  # backing off: only a stop cuts the wait short, not a full batch
                    self._stop.wait(min(MAX_BACKOFF_S, self.flush_s * 2 ** failures))
                else:
                    self._wake.wait(self.flush_s)
                self._wake.clear()
                stopping = self._stop.is_set()
                try:
                    failures = 0 if self.flush(client) else failures + 1
                except Exception:  # noqa: BLE001  (the sender must outlive any surprise)
                    log.exception("Prediction log: the sender failed; it carries on.")
                    failures += 1
                if stopping:
                    break
        left = len(self._queue) + len(self._retry)
        if left:
            with self._count_lock:
                self.dropped += left
            self._queue.clear()
            self._retry.clear()
            log.warning("Prediction log: %d events not sent at shutdown (dropped).", left)

    def flush(self, client: Any) -> bool:
        """Post everything queued now, in batches; stop at the first failed post.

        :param client: an ``httpx.Client``.
        :return: False when a post failed (its events are back in the queue).
        """
        while self._retry or self._queue:
            events = self._take()
            if events and not self._post(client, events):
                return False
        return True

    def _take(self) -> list[bytes]:
        """The next batch of events as JSON lines: those put back first, then new answers."""
        lines: list[bytes] = []
        size = 0
        slice_end = time.perf_counter() + _SLICE_S
        while (self._retry or self._queue) and len(lines) < _POST_EVENTS and size < _POST_BYTES:
            if self._retry:
                line = self._retry.popleft()
                lines.append(line)
                size += len(line)
                continue
            for event in self._events(self._queue.popleft()):
                line = _ENCODE(event)
                lines.append(line)
                size += len(line)
            if time.perf_counter() >= slice_end:  # hand the GIL to the waiting requests
                time.sleep(_PAUSE_S)
                slice_end = time.perf_counter() + _SLICE_S
        return lines

    def _post(self, client: Any, events: list[bytes]) -> bool:
        body = b"\n".join(events) + b"\n"
        try:
            response = client.post(self.url, params={"table": "predictions"}, content=body,
                                   headers={"Content-Type": "application/x-ndjson"})
        except Exception as exc:  # noqa: BLE001  (httpx.HTTPError and any transport error)
            return self._failed(events, f"{type(exc).__name__}: {exc}")
        if response.status_code >= 500 or response.status_code in (408, 413, 429):
            return self._failed(events, f"HTTP {response.status_code}")
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        accepted = int(doc.get("accepted", 0)) if isinstance(doc, dict) else 0
        rejected = doc.get("rejected", []) if isinstance(doc, dict) else []
        lost = len(events) - accepted
        with self._count_lock:
            self.sent += accepted
            self.rejected += lost
        if lost:
            reason = rejected[0].get("reason") if rejected and isinstance(rejected[0], dict) \
                else f"HTTP {response.status_code}"
            self._warn("Prediction log: the collector rejected %d of %d events (first: %s).",
                       lost, len(events), reason)
        return True

    def _failed(self, events: list[bytes], why: str) -> bool:
        """Put a failed post's events back (as many as the buffer holds; the rest dropped)."""
        with self._count_lock:
            self.posts_failed += 1
        room = max(0, self.buffer - len(self._queue) - len(self._retry))
        kept = events[:room]
        self._retry.extendleft(reversed(kept))
        if len(events) > len(kept):
            with self._count_lock:
                self.dropped += len(events) - len(kept)
        self._warn("Prediction log: post to %s failed (%s); %d events wait, %d dropped so far.",
                   self.url, why, len(self._queue) + len(self._retry), self.dropped)
        return False

    def _warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60.0:  # one line a minute, not one per post
            self._warned_at = now
            log.warning(message, *args)

    # -- events --------------------------------------------------------------------------

    def _trained_until(self, meta: dict[str, Any]) -> int | None:
        """:func:`_trained_until` of a bundle's metadata, read once per loaded model."""
        seen, value = self._meta_seen
        if seen is not meta:  # a model's metadata is one dict for as long as it is loaded
            value = _trained_until(meta)
            self._meta_seen = (meta, value)
        return value

    def _events(self, answer: _Answer) -> list[dict[str, Any]]:
        """The ``predictions`` events of one answered request, one per session."""
        attributes = parse_attributes(answer.attributes)
        request_id = attributes.get("request_id", "")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = os.urandom(16).hex()
        session_ids = attributes.get("session_id", "").split(",")
        meta = answer.meta or {}
        sessions = _sessions(answer.body)
        doc = _json(answer.answer) if answer.status == 200 else None
        predictions = doc.get("predictions") if isinstance(doc, dict) else None
        version = (doc.get("model_version") if isinstance(doc, dict) else None) \
            or meta.get("version")
        count = max(len(sessions), len(predictions) if isinstance(predictions, list) else 0, 1)
        base = {"request_id": request_id, "served_at": int(answer.served_at * 1000),
                "model": answer.kind, "model_version": str(version) if version else None,
                "endpoint": answer.endpoint, "status": answer.status,
                "latency_ms": round(max(answer.latency_ms, 0.0), 3),
                "trained_until_ms": self._trained_until(meta), "sender_id": self.sender_id,
                "dropped_before": self.dropped}
        events = []
        for i in range(min(count, 256)):
            event = dict(base, session_index=i)
            session = sessions[i] if i < len(sessions) else None
            if session is not None:
                event["session_length"] = min(len(session), 1000)
                event["input_tokens"] = _tokens(session, MAX_INPUT_TOKENS)
            sid = session_ids[i].strip() if i < len(session_ids) else ""
            if _HASH.fullmatch(sid):
                event["session_id_hash"] = sid
            prediction = predictions[i] if isinstance(predictions, list) and \
                i < len(predictions) and isinstance(predictions[i], dict) else None
            if prediction is not None:
                if answer.kind == "intent":
                    event["output_probability"] = prediction.get("probability")
                else:
                    event["output_items"] = _tokens(prediction.get("items"))
                    event["fallback"] = int(bool(prediction.get("fallback")))
                    event["ignored_count"] = prediction.get("ignored_count")
            events.append({k: v for k, v in event.items() if v is not None})
        return events


def _json(data: bytes) -> Any:
    try:
        return _DECODE(data)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None


def _sessions(body: bytes) -> list[list[Any]]:
    """The sessions of a request body, as far as they can be read ([] when not)."""
    doc = _json(body)
    sessions = doc.get("sessions", doc.get("instances")) if isinstance(doc, dict) else None
    if not isinstance(sessions, list):
        return []
    return [s if isinstance(s, list) else [] for s in sessions[:256]]
