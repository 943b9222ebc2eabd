"""The prediction log: every answered session, handed to a sender process off the request's path.

:class:`PredictionLog` is what the model server (:class:`~skiff.serve.server.ModelServer`)
calls after each answer, for ``/invocations``, ``/endpoints/<name>/invocations`` and the
``/predict`` handler's in-process calls alike. :meth:`PredictionLog.record` only samples
(``SKIFF_PREDLOG_SAMPLE``) and writes the bytes it already holds (request body, answer,
latency, status, the caller's custom attributes, the model's version) as one frame to a
``SOCK_SEQPACKET`` socket pair, without waiting: a full socket means the answer is dropped
and counted, never a blocked request. No parsing, no event building, no HTTP in the server
process.

The other end is a child process (:mod:`skiff.serve.predlog_sender`, started by
:meth:`PredictionLog.start` at ``SKIFF_PREDLOG_NICE``) that turns the frames into
``predictions`` events (one per session of the request, the contract's table:
``include/skiff/data/contract.toml``) and posts them as NDJSON to the collector's
``/collect?table=predictions`` with httpx, every ``SKIFF_PREDLOG_FLUSH_S`` or sooner when a
batch is full, each post bounded by ``SKIFF_PREDLOG_TIMEOUT_S``. When the collector is slow
or down the child holds up to ``SKIFF_PREDLOG_BUFFER`` answers (a failed post's events go
back in front, then it backs off, up to 30 s); one more is dropped and counted. Events the
collector rejects (they break the contract) are counted apart and never retried.

The child writes its counters to a small shared file mapping that :meth:`PredictionLog.stats`
reads (the model server's ``GET /health``: ``sent``, ``dropped``, ``rejected``, ``queued``,
``posts_failed``); every event carries ``dropped_before``, the drops of its sender
(``sender_id``) so far, so the loss is monitored from the data
(``mon_serving_hourly.dropped_events``). :meth:`PredictionLog.close` ends the socket: the child
posts what it holds (one try), publishes its last counters and exits. It exits the same way
when the server dies (the socket's end of file): no orphan sender.

The caller can name the request and the shopper's session in SageMaker's custom attributes
(``X-Amzn-SageMaker-Custom-Attributes``, boto3's ``CustomAttributes``):
``request_id=<id>;session_id=<hash>[,<hash>...]`` (one session id per session of the
request). Without a request id the sender makes one. See ``docs/monitoring.md``.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FRAME_HEADER", "MAX_FRAME_BYTES", "STATUS", "PredictionLog", "parse_attributes"]

log = logging.getLogger(__name__)

#: A frame's fixed part: served at (epoch s), latency (ms), the model's training end (epoch ms,
#: -1: unknown), the server's drops so far, the answer's status, then the byte lengths of the
#: endpoint, the model kind, the model version, the custom attributes, the request body and
#: the answer, which follow in that order.
FRAME_HEADER = struct.Struct("<ddqqHHHHHII")
#: Largest frame (a bigger answer is dropped and counted); the sender's receive buffer.
MAX_FRAME_BYTES = 8 * 1024 * 1024
#: The sender's counters in the shared mapping: sent, dropped, rejected, queued, posts failed.
STATUS = struct.Struct("<qqqqq")
#: The socket's send buffer asked for (the kernel caps it at ``net.core.wmem_max``): what
#: waits for the sender while it is not scheduled.
_SOCKET_BYTES = 4 * 1024 * 1024
#: Longest custom-attributes header kept (SageMaker's limit).
_MAX_ATTRIBUTES = 1024
_SEND_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)


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


class PredictionLog:
    """The request side of the prediction log: frames to the sender process, drops counted.

    :param url: the collector's ``/collect`` URL (``?table=predictions`` is added).
    :param sample: share of the answered requests logged, 0..1.
    :param buffer: most answers the sender holds while the collector is slow or down.
    :param flush_s: seconds between two posts.
    :param timeout_s: most seconds one post takes (connect, write, read).
    :param nice: the sender process's niceness (added to the server's).
    :param clock: seconds since the epoch, the answers' ``served_at`` (tests pass a fake).
    """

    def __init__(self, url: str, *, sample: float = 1.0, buffer: int = 10_000,
                 flush_s: float = 1.0, timeout_s: float = 2.0, nice: int = 10,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample={sample!r} must be between 0 and 1.")
        if buffer < 1:
            raise ValueError(f"buffer={buffer!r} must be at least 1.")
        if not 0 <= nice <= 19:
            raise ValueError(f"nice={nice!r} must be between 0 and 19.")
        self.url = url
        self.sample = sample
        self.buffer = buffer
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.nice = nice
        self.clock = clock
        self._sock: socket.socket | None = None
        self._child: subprocess.Popen | None = None
        self._status_file: Any = None
        self._status: mmap.mmap | None = None
        self._last = (0, 0, 0, 0, 0)  # the sender's counters once its mapping is closed
        self._drop_lock = threading.Lock()
        self._warn = RateLimitedWarning(log)
        self._model_seen: tuple[Any, bytes, int] = (None, b"", -1)  # the last bundle's fields
        #: This server's id in its events: ``dropped_before`` counts per sender.
        self.sender_id = uuid.uuid4().hex
        #: Answers dropped in the server process (the socket was full, or the sender gone).
        self.dropped = 0

    @classmethod
    def from_config(cls, config: Any) -> PredictionLog | None:
        """The log a :class:`~skiff.config.ServingConfig` asks for (None when
        ``SKIFF_PREDLOG_URL`` is empty)."""
        if not config.predlog_url:
            return None
        return cls(config.predlog_url, sample=config.predlog_sample,
                   buffer=config.predlog_buffer, flush_s=config.predlog_flush_s,
                   timeout_s=config.predlog_timeout_s, nice=config.predlog_nice)

    # -- the request's path --------------------------------------------------------------

    def record(self, endpoint: str, kind: str, meta: dict[str, Any] | None, body: bytes,
               status: int, answer: bytes, latency_ms: float,
               attributes: str | None = None) -> None:
        """Hand one answered request to the sender (or drop it, counted, when it cannot take it).

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
        sock = self._sock
        seen, version, trained = self._model_seen
        if seen is not meta:  # a model's metadata is one dict for as long as it is loaded
            version, trained = _model_fields(meta)
            self._model_seen = (meta, version, trained)
        name, model = endpoint.encode(), kind.encode()
        extra = attributes.encode("utf-8", "replace")[:_MAX_ATTRIBUTES] if attributes else b""
        frame = b"".join((FRAME_HEADER.pack(self.clock(), latency_ms, trained, self.dropped,
                                            status, len(name), len(model), len(version),
                                            len(extra), len(body), len(answer)),
                          name, model, version, extra, body, answer))
        try:
            if sock is None or len(frame) > MAX_FRAME_BYTES:
                raise BlockingIOError
            sock.send(frame, _SEND_FLAGS)
        except OSError as exc:  # full (BlockingIOError), too big, or the sender is gone
            with self._drop_lock:
                self.dropped += 1
            if not isinstance(exc, BlockingIOError):
                self._warn("Prediction log: the sender cannot take answers (%s); they are "
                           "dropped and counted.", exc)

    # -- the sender process --------------------------------------------------------------

    def start(self) -> PredictionLog:
        """Start the sender process (once)."""
        if self._child is not None:
            return self
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BYTES)
        self._status_file = tempfile.TemporaryFile()
        self._status_file.truncate(STATUS.size)
        self._status = mmap.mmap(self._status_file.fileno(), STATUS.size)
        settings = {"url": self.url, "buffer": self.buffer, "flush_s": self.flush_s,
                    "timeout_s": self.timeout_s, "nice": self.nice,
                    "sender_id": self.sender_id}
        root = str(Path(__file__).resolve().parents[2])  # the directory holding this skiff
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        fds = (theirs.fileno(), self._status_file.fileno())
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "skiff.serve.predlog_sender", str(fds[0]), str(fds[1]),
                 json.dumps(settings)], pass_fds=fds, env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()  # the child's copy is its own: its end of file is ours closing
        self._sock = ours
        log.info("Prediction log: sender process %d posting to %s (sample %.3g, buffer %d).",
                 self._child.pid, self.url, self.sample, self.buffer)
        return self

    def close(self, timeout_s: float | None = None) -> None:
        """End the socket: the sender posts what it holds (one try) and exits; what could not
        go is counted dropped.

        :param timeout_s: most seconds to wait for the sender (default: twice the post
            timeout); then it is killed.
        """
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        child = self._child
        if child is not None and child.returncode is None:
            try:
                child.wait(timeout_s if timeout_s is not None else 2 * self.timeout_s + 5)
            except subprocess.TimeoutExpired:
                log.warning("Prediction log: the sender did not stop in time; killed.")
                child.kill()
                child.wait()
        if self._status is not None:
            self._last = STATUS.unpack_from(self._status)
            self._status.close()
            self._status_file.close()
            self._status = None

    def stats(self) -> dict[str, Any]:
        """The counters, for ``GET /health`` (``dropped``: the server's and the sender's)."""
        try:
            counters = STATUS.unpack_from(self._status) if self._status is not None else self._last
        except ValueError:  # closed by a concurrent close(): its last counters are kept
            counters = self._last
        sent, dropped, rejected, queued, failed = counters
        child = self._child
        return {"url": self.url, "sample": self.sample, "sent": sent,
                "dropped": self.dropped + dropped, "rejected": rejected, "queued": queued,
                "posts_failed": failed,
                "sender_running": child is not None and child.poll() is None}


class RateLimitedWarning:
    """A warning logged at most once a ``period_s`` (one line a minute, not one per answer or
    post): the server's and the sender process's."""

    def __init__(self, logger: logging.Logger, period_s: float = 60.0) -> None:
        self._log, self._period_s, self._at = logger, period_s, None

    def __call__(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if self._at is None or now - self._at >= self._period_s:
            self._at = now
            self._log.warning(message, *args)


def _model_fields(meta: dict[str, Any] | None) -> tuple[bytes, int]:
    """A bundle's version (UTF-8) and training end (epoch ms, -1: unknown), for its frames."""
    meta = meta or {}
    version = meta.get("version")
    trained = _trained_until(meta)
    return (str(version).encode() if version else b""), (-1 if trained is None else trained)
