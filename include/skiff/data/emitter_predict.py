"""The live shoppers asking the served model as they browse: ``GET /predict``, off the emitter.

A shop's pages ask the recommender (and the intent model) while a shopper browses; the
answers the endpoint gives are logged by the model server (:mod:`skiff.serve.predlog`) and
judged against what the shopper did next (the monitoring marts). :class:`ShopperPredictions`
plays those pages for the live emitter (:func:`skiff.data.emitter_http.run_live`):

- it is handed each browsing event at its event time (not its delivery: the page asks when
  the shopper clicks), keeps each session's tokens so far (event types; the SKUs of its
  product views) and forgets a session an hour after its last event;
- a session asks when its id falls in the sampled share (``SKIFF_EMIT_PREDICT_SHARE``: the
  first 60 bits of the session hash, so the same sessions ask in every run of a seed):
  after each event the intent model with its event types so far, and after a product view
  also the next-item model with the SKUs viewed so far (the API's default ``k``,
  ``SKIFF_PREDICT_TOP_K``), each with the session's id so the quality marts can join what
  the shopper did next; at most the last :data:`MAX_TOKENS` tokens of a session are sent
  (100 SKUs keep the query under the API's 8,192 characters);
- the requests go through a bounded queue to one background thread with httpx, each
  bounded by ``SKIFF_EMIT_PREDICT_TIMEOUT_S``: a slow or missing server never slows the
  emitter. A request that finds the queue full is dropped, one that fails (transport error,
  5xx) or is refused (4xx) is counted, and none is retried: a page does not ask again.

:meth:`ShopperPredictions.stats` counts them; ``skiff emit`` prints them when it stops.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

__all__ = ["MAX_TOKENS", "MODELS", "ShopperPredictions", "event_token", "session_asks"]

log = logging.getLogger(__name__)

#: Most tokens of a session sent in one request (the prediction log keeps as many).
MAX_TOKENS = 100
#: The models a shopper asks.
MODELS = ("intent", "rec")
_FORGET_MS = 3_600_000  # a session idle this long (event time) is forgotten
_SAMPLE_BITS = 60


def event_token(row: Mapping[str, Any]) -> str:
    """The event type token of a browsing row, as the marts and the intent model name them.

    :param row: a ``browsing_train`` row.
    :return: ``view`` for a pageview, else the product action (``detail``, ``add``, ...).
    """
    return "view" if row["event_type"] == "pageview" else str(row["product_action"])


def session_asks(session_id_hash: str, share: float) -> bool:
    """Whether a session is among the sampled ``share`` that ask (fixed per session id).

    :param session_id_hash: the session's 64-hex id.
    :param share: 0..1.
    """
    return int(session_id_hash[:_SAMPLE_BITS // 4], 16) < share * (1 << _SAMPLE_BITS)


class _Session:
    __slots__ = ("last_ms", "skus", "tokens")

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.skus: list[str] = []
        self.last_ms = 0


class ShopperPredictions:
    """Sampled shoppers asking ``GET /predict`` as they browse (see the module docstring).

    :param url: the ``/predict`` URL, e.g. ``http://127.0.0.1:8000/predict``.
    :param share: share of the sessions that ask, 0..1.
    :param timeout_s: seconds one request may take.
    :param queue_size: requests waiting at most; more are dropped.
    :param models: the models asked, of :data:`MODELS` (a server of one model only).
    :param client: an httpx client to use (tests); default one made here.
    :raises ValueError: ``share`` is out of range or a model unknown.
    """

    def __init__(self, url: str, *, share: float, timeout_s: float = 2.0,
                 queue_size: int = 1_000, models: tuple[str, ...] = MODELS,
                 client: httpx.Client | None = None) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"share={share} must be within [0, 1].")
        if not models or set(models) - set(MODELS):
            raise ValueError(f"models={models!r}: use some of {', '.join(MODELS)}.")
        self.models = frozenset(models)
        self.url = url
        self.share = share
        self._client = client or httpx.Client(timeout=timeout_s,
                                              headers={"user-agent": "skiff-emit"})
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._counts = {"asked": 0, "answered": 0, "refused": 0, "failed": 0, "dropped": 0}
        self._thread = threading.Thread(target=self._send, daemon=True,
                                         name="skiff-emit-predict")
        self._thread.start()

    def observe(self, rows: Iterable[Mapping[str, Any]], *, ask: bool = True) -> None:
        """Take browsing events in event time order; the sampled sessions ask after each.

        :param rows: ``browsing_train`` rows.
        :param ask: False to only learn the sessions' tokens (the events before a run's start).
        """
        for row in rows:
            sid, ts = row["session_id_hash"], int(row["server_timestamp_epoch_ms"])
            if not session_asks(sid, self.share):
                continue
            session = self._sessions.get(sid)
            if session is None:
                session = self._sessions[sid] = _Session()
            token = event_token(row)
            session.tokens.append(token)
            session.last_ms = ts
            if token == "detail" and row.get("product_sku_hash"):
                session.skus.append(row["product_sku_hash"])
            if not ask:
                continue
            if "intent" in self.models:
                self._put({"session": ",".join(session.tokens[-MAX_TOKENS:]),
                           "session_id": sid})
            if token == "detail" and session.skus and "rec" in self.models:
                self._put({"session": ",".join(session.skus[-MAX_TOKENS:]), "model": "rec",
                           "session_id": sid})
            self._forget(ts)

    def _forget(self, now_ms: int) -> None:
        if len(self._sessions) < 256:
            return
        for sid in [s for s, v in self._sessions.items() if now_ms - v.last_ms > _FORGET_MS]:
            del self._sessions[sid]

    def _put(self, params: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(params)
        except queue.Full:
            self._count("dropped")

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _send(self) -> None:
        while (params := self._queue.get()) is not None:
            self._count("asked")
            try:
                answer = self._client.get(self.url, params=params)
            except httpx.HTTPError as exc:
                self._count("failed")
                log.debug("GET %s failed: %s", self.url, exc)
                continue
            except Exception:  # noqa: BLE001  (the sender outlives any request)
                self._count("failed")
                log.exception("GET %s failed unexpectedly.", self.url)
                continue
            if answer.is_success:
                self._count("answered")
            elif answer.status_code < 500:
                self._count("refused")
                log.debug("GET %s refused (%s): %s", self.url, answer.status_code,
                          answer.text[:200])
            else:
                self._count("failed")

    def stats(self) -> dict[str, int]:
        """Requests ``asked``, ``answered`` (2xx), ``refused`` (4xx), ``failed`` (transport
        error, 5xx), ``dropped`` (queue full), and ``queued``."""
        with self._lock:
            return {**self._counts, "queued": self._queue.qsize()}

    def close(self, timeout_s: float = 10.0) -> dict[str, int]:
        """Send what is queued (for at most ``timeout_s``), stop the thread, close the client.

        :return: :meth:`stats`, what was still queued counted dropped.
        """
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    self._count("dropped")
            except queue.Empty:
                break
        self._client.close()
        return self.stats()

    def __enter__(self) -> ShopperPredictions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
