"""The prediction log's sender process: the model server's answers in, ``predictions`` events out.

Started by :meth:`skiff.serve.predlog.PredictionLog.start` as ``python -m
skiff.serve.predlog_sender <socket fd> <status fd> <settings JSON>``; never by hand. A reader
thread takes the server's frames (:data:`~skiff.serve.predlog.FRAME_HEADER`) off the socket
into a bounded queue (a frame that finds it full is dropped and counted); the main thread
turns them into events (one per session of the request) and posts them as NDJSON to the
collector with httpx. A failed post's events go back in front of the queue (as many as it
holds, the rest dropped) and the sender backs off, up to :data:`MAX_BACKOFF_S`; events the
collector rejects are counted and never retried. The counters go to the shared status
mapping after every frame and every post. The socket's end of file (the server closed it,
or died) ends the process after one last post; what is left is counted dropped.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import re
import signal
import socket
import sys
import threading
from collections import deque
from typing import Any

import msgspec

from skiff.serve.predlog import (
    FRAME_HEADER,
    MAX_FRAME_BYTES,
    STATUS,
    RateLimitedWarning,
    parse_attributes,
)

__all__ = ["MAX_BACKOFF_S", "MAX_INPUT_TOKENS", "Sender", "main"]

log = logging.getLogger("skiff.serve.predlog")

#: Most tokens of a session an event keeps (the latest); ``session_length`` counts them all.
MAX_INPUT_TOKENS = 100
#: Longest wait between two posts while the collector fails, in seconds.
MAX_BACKOFF_S = 30.0
#: Most events in one post, and most bytes (under the collector's default 1 MiB body limit).
_POST_EVENTS = 500
_POST_BYTES = 512 * 1024

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_HASH = re.compile(r"[0-9a-f]{64}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: JSON in and out with msgspec (airflow-core's own dependency): several times faster than
#: ``json`` at decoding answers and encoding events, the sender's work.
_ENCODE = msgspec.json.encode
_DECODE = msgspec.json.decode
#: A list of contract-shaped tokens, each followed by a NUL: checks a whole list in one match.
_TOKENS = re.compile(r"(?:[A-Za-z0-9_-]{1,128}\x00)*")


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


class Sender:
    """The queue of frames and the posts to the collector.

    :param url: the collector's ``/collect`` URL (``?table=predictions`` is added).
    :param buffer: most answers held (queued frames plus answers a failed post put back).
    :param flush_s: seconds between two posts.
    :param timeout_s: most seconds one post takes.
    :param sender_id: the server's id in its events.
    :param status: where the counters are published (None: nowhere).
    """

    def __init__(self, url: str, *, buffer: int, flush_s: float, timeout_s: float,
                 sender_id: str, status: mmap.mmap | None = None) -> None:
        self.url = url
        self.buffer = buffer
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.sender_id = sender_id
        self.status = status
        self._queue: deque[bytes] = deque()
        self._retry: deque[bytes] = deque()  # built events (JSON lines) a failed post put back
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._warn = RateLimitedWarning(log)
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.posts_failed = 0

    def put(self, frame: bytes) -> None:
        """Queue one frame, or drop it (counted) when the queue is full."""
        if len(self._queue) + len(self._retry) >= self.buffer:
            with self._lock:
                self.dropped += 1
        else:
            self._queue.append(frame)
            if len(self._queue) == _POST_EVENTS:  # a batch is full: post it now
                self._wake.set()
        self.publish()

    def stop(self) -> None:
        """Post what is held (one try), then let :meth:`run` return."""
        self._stop.set()
        self._wake.set()

    def publish(self) -> None:
        """Write the counters to the status mapping."""
        if self.status is not None:
            with self._lock:
                STATUS.pack_into(self.status, 0, self.sent, self.dropped, self.rejected,
                                 len(self._queue) + len(self._retry), self.posts_failed)

    def run(self) -> None:
        """Post every ``flush_s`` (backing off while posts fail) until :meth:`stop`."""
        import httpx

        failures = 0
        with httpx.Client(timeout=self.timeout_s) as client:
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
                self.publish()
                if stopping:
                    break
        left = len(self._queue) + len(self._retry)
        if left:
            with self._lock:
                self.dropped += left
            self._queue.clear()
            self._retry.clear()
            log.warning("Prediction log: %d events not sent at shutdown (dropped).", left)
        self.publish()

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
        while (self._retry or self._queue) and len(lines) < _POST_EVENTS and size < _POST_BYTES:
            if self._retry:
                line = self._retry.popleft()
                lines.append(line)
                size += len(line)
                continue
            for event in self.events(self._queue.popleft()):
                line = _ENCODE(event)
                lines.append(line)
                size += len(line)
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
        with self._lock:
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
        room = max(0, self.buffer - len(self._queue) - len(self._retry))
        kept = events[:room]
        self._retry.extendleft(reversed(kept))
        with self._lock:
            self.posts_failed += 1
            self.dropped += len(events) - len(kept)
        self._warn("Prediction log: post to %s failed (%s); %d events wait, %d dropped so far.",
                   self.url, why, len(self._queue) + len(self._retry), self.dropped)
        return False

    def events(self, frame: bytes) -> list[dict[str, Any]]:
        """The ``predictions`` events of one frame (one answered request), one per session."""
        (served_at, latency_ms, trained, server_dropped, status, *sizes) = \
            FRAME_HEADER.unpack_from(frame)
        parts, at = [], FRAME_HEADER.size
        for size in sizes:
            parts.append(frame[at:at + size])
            at += size
        endpoint, kind, version, extra = (p.decode("utf-8", "replace") for p in parts[:4])
        body, answer = parts[4], parts[5]
        attributes = parse_attributes(extra)
        request_id = attributes.get("request_id", "")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = os.urandom(16).hex()
        session_ids = attributes.get("session_id", "").split(",")
        sessions = _sessions(body)
        doc = _json(answer) if status == 200 else None
        predictions = doc.get("predictions") if isinstance(doc, dict) else None
        version = (doc.get("model_version") if isinstance(doc, dict) else None) or version
        count = max(len(sessions), len(predictions) if isinstance(predictions, list) else 0, 1)
        base = {"request_id": request_id, "served_at": int(served_at * 1000),
                "model": kind, "model_version": str(version) if version else None,
                "endpoint": endpoint, "status": status,
                "latency_ms": round(max(latency_ms, 0.0), 3),
                "trained_until_ms": trained if trained >= 0 else None,
                "sender_id": self.sender_id, "dropped_before": server_dropped + self.dropped}
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
                if kind == "intent":
                    event["output_probability"] = prediction.get("probability")
                else:
                    event["output_items"] = _tokens(prediction.get("items"))
                    event["fallback"] = int(bool(prediction.get("fallback")))
                    event["ignored_count"] = prediction.get("ignored_count")
            events.append({k: v for k, v in event.items() if v is not None})
        return events


def _read(sock: socket.socket, sender: Sender) -> None:
    """Move the server's frames into the sender's queue until end of file, then stop it."""
    buffer = bytearray(MAX_FRAME_BYTES)
    view = memoryview(buffer)
    try:
        while True:
            size = sock.recv_into(view)
            if not size:
                break
            sender.put(bytes(view[:size]))
    except OSError as exc:
        log.warning("Prediction log: reading the server's answers failed (%s); stopping.", exc)
    finally:
        sender.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the sender until the server closes its end of the socket.

    :param argv: ``<socket fd> <status fd> <settings JSON>``.
    :return: the exit status.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m skiff.serve.predlog_sender <socket fd> <status fd> <settings "
              "JSON> (started by the model server's prediction log)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s "
                        "[sender %(process)d]: %(message)s")
    for chatty in ("httpx", "httpcore"):  # one INFO line per post otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C stops the server, which ends us
    settings = json.loads(args[2])
    if settings["nice"]:
        os.nice(settings["nice"])
    sock = socket.socket(fileno=int(args[0]))
    status = mmap.mmap(int(args[1]), STATUS.size)
    sender = Sender(settings["url"], buffer=settings["buffer"], flush_s=settings["flush_s"],
                    timeout_s=settings["timeout_s"], sender_id=settings["sender_id"],
                    status=status)
    threading.Thread(target=_read, args=(sock, sender), name="skiff-predlog-read",
                     daemon=True).start()
    sender.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
