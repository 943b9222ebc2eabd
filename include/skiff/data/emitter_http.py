"""The emitter's deliveries posted to the collector's ``POST /collect``: fast-forward or live.

:class:`CollectorClient` posts one batch (a JSON array of contract events) with httpx and
reads the collector's answer ``{"accepted": n, "rejected": [{"index": i, "reason": ...}]}``
(with status 200, or 400 when none was accepted). While the collector is down (connection
refused, timeout, 408, 429, 5xx) it retries with exponential backoff, 0.2 s doubling to
10 s; a 413 splits the batch in halves; any other 4xx is a
:class:`~skiff.exceptions.DeliveryError` quoting the collector. Delivery is at least once: a
batch retried after a timeout may have been stored already, a duplicate the pipeline drops
like the simulated ones.

- :func:`post_range` (``skiff emit --from T1 --to T2``): every delivery arriving in
  ``[T1, T2)``, in arrival order, as fast as the collector takes them; gives up after
  ``give_up_s`` of a batch failing.
- :func:`run_live` (``skiff emit``): each delivery posted around its arrival time on a
  clock running ``speed`` times faster than real time (never ahead of it: the collector
  rejects events from the future), the due ones batched every ``tick_s``; never gives up:
  what comes due while the collector is down is posted, in order, once it is back. With
  a :class:`~skiff.data.emitter_predict.ShopperPredictions`, it is also handed each browsing
  event at its event time, and the sampled shoppers ask ``/predict`` as they browse.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from skiff.data.contract import BROWSING
from skiff.data.emitter import ARRIVAL, LOOKBACK_HOURS, Emitter
from skiff.data.shoppers import HOUR_MS
from skiff.exceptions import DeliveryError, SkiffConfigError
from skiff.times import from_epoch_ms, to_epoch_ms

if TYPE_CHECKING:
    from skiff.data.emitter_predict import ShopperPredictions

__all__ = ["Answer", "CollectorClient", "EmitSummary", "post_range", "run_live"]

log = logging.getLogger(__name__)

_BACKOFF_S = (0.2, 10.0)  # first and longest wait between two tries of a batch
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_REASONS = 5  # rejection reasons kept


@dataclass
class EmitSummary:
    """What a run of the emitter posted.

    :param events: events posted (duplicates included).
    :param accepted: events the collector accepted.
    :param rejected: events it rejected.
    :param requests: ``POST`` requests that got an answer.
    :param retries: tries that failed and were repeated.
    :param seconds: wall time.
    :param reasons: the first few rejection reasons, as the collector gave them.
    :param until_ms: arrival time (simulated, epoch ms) up to which everything was posted.
    """

    events: int = 0
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)
    until_ms: int | None = None

    def add(self, answer: Answer) -> None:
        """Count one posted batch in."""
        self.events += answer.events
        self.accepted += answer.accepted
        self.rejected += answer.rejected
        self.requests += answer.requests
        self.retries += answer.retries
        self.reasons += answer.reasons[: max(0, _REASONS - len(self.reasons))]


@dataclass
class Answer:
    """The collector's answer to one batch (over all the requests a split made).

    :param events: events in the batch.
    :param accepted: events accepted.
    :param rejected: events rejected.
    :param reasons: the first few rejections, ``"<index in the batch>: <reason>"``.
    :param requests: requests answered (failed tries included).
    :param retries: tries that failed and were repeated.
    """

    events: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    requests: int = 0
    retries: int = 0


class CollectorClient:
    """Posts batches of events to the collector, retrying while it is down.

    :param url: the collector's ``POST /collect`` URL.
    :param give_up_s: seconds of failed tries of one batch after which it raises; None: never.
    :param timeout_s: seconds one request may take.
    :param stop: when set, a batch being retried is abandoned (:class:`DeliveryError`).
    """

    def __init__(self, url: str, *, give_up_s: float | None = 120.0, timeout_s: float = 30.0,
                 stop: threading.Event | None = None) -> None:
        self.url = url
        self.give_up_s = give_up_s
        self.stop = stop or threading.Event()
        self._client = httpx.Client(timeout=timeout_s,
                                    headers={"content-type": "application/json",
                                             "user-agent": "skiff-emit"})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> CollectorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def post(self, events: list[dict[str, Any]]) -> Answer:
        """Post ``events`` (one JSON array) until the collector answers; split on a 413.

        :return: counts, and the reasons of the rejected events (``index: reason``).
        :raises DeliveryError: the collector refused the batch (4xx), was down for longer than
            ``give_up_s``, or :attr:`stop` was set while retrying.
        """
        answer = Answer(events=len(events))
        self._post(events, 0, answer)
        return answer

    def _post(self, events: list[dict[str, Any]], offset: int, answer: Answer) -> None:
        body = json.dumps(events, separators=(",", ":")).encode()
        began, wait = time.monotonic(), _BACKOFF_S[0]
        while True:
            problem = None
            try:
                response = self._client.post(self.url, content=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                answer.requests += 1
                if response.status_code == 413 and len(events) > 1:
                    half = len(events) // 2
                    self._post(events[:half], offset, answer)
                    self._post(events[half:], offset + half, answer)
                    return
                if response.is_success or (response.status_code == 400
                                           and "rejected" in _json(response)):
                    self._read(response, len(events), offset, answer)
                    return
                if response.status_code not in _RETRY_STATUS:
                    raise DeliveryError(
                        f"The collector at {self.url} refused a batch of {len(events)} events: "
                        f"HTTP {response.status_code} {response.text[:500]}")
                problem = f"HTTP {response.status_code}"
            failing = time.monotonic() - began
            if self.give_up_s is not None and failing + wait > self.give_up_s:
                raise DeliveryError(f"The collector at {self.url} is unavailable ({problem}); "
                                    f"gave up on a batch of {len(events)} events after "
                                    f"{failing:.1f}s (SKIFF_EMIT_GIVE_UP_S={self.give_up_s:g}).")
            log.warning("Collector %s unavailable (%s); retrying %s events in %.1fs.",
                        self.url, problem, len(events), wait)
            answer.retries += 1
            if self.stop.wait(wait):
                raise DeliveryError(f"Stopped while retrying {len(events)} events for {self.url}.")
            wait = min(2 * wait, _BACKOFF_S[1])

    @staticmethod
    def _read(response: httpx.Response, n: int, offset: int, answer: Answer) -> None:
        body = _json(response)
        try:
            listed = body.get("rejected", [])
            reasons = [f"{offset + int(r['index'])}: {r['reason']}" for r in listed[:_REASONS]]
            rejected = int(body.get("rejected_total", len(listed)))
            accepted = int(body.get("accepted", n - rejected))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("The collector answered %s with no readable {accepted, rejected}; "
                        "counting the %s events accepted.", response.status_code, n)
            reasons, rejected, accepted = [], 0, n
        if rejected:
            log.warning("The collector rejected %s of %s events, e.g. %s", rejected, n,
                        reasons[0] if reasons else "(no reason given)")
        answer.accepted += accepted
        answer.rejected += rejected
        answer.reasons += reasons[: max(0, _REASONS - len(answer.reasons))]


def _json(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or an empty one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def post_range(emitter: Emitter, client: CollectorClient, since: int | datetime | str,
               until: int | datetime | str, *, batch_size: int = 500) -> EmitSummary:
    """Fast-forward: post every delivery arriving in ``[since, until)``, in arrival order.

    :param emitter: the shoppers.
    :param client: the collector.
    :param since: start, epoch ms or a time (naive means UTC).
    :param until: end (exclusive), likewise.
    :param batch_size: most events in one ``POST``.
    :return: what was posted; ``until_ms`` is the range's end.
    :raises DeliveryError: the collector refused a batch, or stayed down past ``give_up_s``.
    :raises SkiffConfigError: the range is empty.
    """
    summary, began = EmitSummary(), time.perf_counter()
    for delivered in emitter.deliveries(since, until):
        for chunk in _chunks(delivered.rows(), batch_size):
            summary.add(client.post(chunk))
    summary.seconds = time.perf_counter() - began
    summary.until_ms = until if isinstance(until, int) else to_epoch_ms(until)
    return summary


def _arrivals(emitter: Emitter, hour: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The deliveries arriving in ``hour`` and their arrival times."""
    rows = emitter.delivered(hour).rows(arrival=True)
    return rows, np.array([r.pop(ARRIVAL) for r in rows], np.int64)


def _browsing(emitter: Emitter, hour: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The browsing events happening in ``hour`` and their times (what the shoppers do)."""
    table = emitter.events(hour).browsing
    return table.to_pylist(), table[BROWSING.time_column].to_numpy().astype(np.int64)


class _Schedule:
    """The rows from ``start_ms`` on, handed out as their times come due.

    :param emitter: the shoppers.
    :param start_ms: rows before it are skipped.
    :param source: an hour's rows and their times, sorted (default: the deliveries, by
        arrival).
    """

    def __init__(self, emitter: Emitter, start_ms: int,
                 source: Callable[[Emitter, int], tuple[list[dict[str, Any]], np.ndarray]]
                 = _arrivals) -> None:
        self._emitter = emitter
        self._source = source
        self._hour = start_ms // HOUR_MS - 1
        self._rows: list[dict[str, Any]] = []
        self._arrival = np.empty(0, np.int64)
        self._next = 0
        self._start_ms = start_ms

    def due(self, until_ms: int) -> list[dict[str, Any]]:
        """The deliveries arriving before ``until_ms`` not handed out yet, in arrival order."""
        out: list[dict[str, Any]] = []
        while True:
            stop = int(np.searchsorted(self._arrival, until_ms, side="left"))
            out += self._rows[self._next:stop]
            self._next = max(self._next, stop)
            if until_ms <= (self._hour + 1) * HOUR_MS:
                return out
            self._hour += 1
            self._rows, self._arrival = self._source(self._emitter, self._hour)
            self._next = int(np.searchsorted(self._arrival, self._start_ms, side="left"))


def run_live(emitter: Emitter, client: CollectorClient, *,
             start: int | datetime | str | None = None, speed: float = 1.0,
             until: int | datetime | str | None = None, batch_size: int = 500,
             tick_s: float = 1.0, clock: Callable[[], float] = time.time,
             predictions: ShopperPredictions | None = None) -> EmitSummary:
    """Live: post each delivery around its arrival time, batched every ``tick_s``, until stopped.

    The simulated clock starts at ``start`` and runs ``speed`` times faster than ``clock``,
    but never ahead of it. Stops when ``client.stop`` is set, or once everything arriving
    before ``until`` is posted.

    :param emitter: the shoppers.
    :param client: the collector; its ``stop`` event ends the run.
    :param start: simulated start, epoch ms or a time; default now.
    :param speed: how many times faster than real time.
    :param until: simulated end (exclusive); default none.
    :param batch_size: most events in one ``POST``.
    :param tick_s: real seconds between two batches.
    :param clock: real time in seconds (tests).
    :param predictions: the shoppers asking ``/predict``: handed each browsing event as its
        event time comes due (the sessions' events before ``start`` teach it their tokens
        so far); None: nobody asks.
    :return: what was posted; ``until_ms`` is the simulated time reached.
    :raises DeliveryError: the collector refused a batch (a 4xx other than 408, 413, 429).
    :raises SkiffConfigError: ``speed`` is not positive.
    """
    if not speed > 0:
        raise SkiffConfigError(f"speed={speed} must be > 0.")
    began = clock()
    start_ms = int(began * 1000) if start is None else (
        start if isinstance(start, int) else to_epoch_ms(start))
    until_ms = None if until is None else (until if isinstance(until, int) else to_epoch_ms(until))
    schedule, summary = _Schedule(emitter, start_ms), EmitSummary()
    browsing = None
    if predictions is not None:
        browsing = _Schedule(emitter, start_ms, _browsing)
        for hour in range(max(0, start_ms // HOUR_MS - LOOKBACK_HOURS), start_ms // HOUR_MS + 1):
            rows, times = _browsing(emitter, hour)
            predictions.observe(rows[:int(np.searchsorted(times, start_ms))], ask=False)
    log.info("Emitting from %s at %gx to %s.", from_epoch_ms(start_ms).isoformat(), speed,
             client.url)
    logged_hour, next_tick = start_ms // HOUR_MS, began
    while not client.stop.is_set():
        now = clock()
        sim_ms = min(start_ms + int((now - began) * 1000 * speed), int(now * 1000))
        if until_ms is not None:
            sim_ms = min(sim_ms, until_ms)
        if browsing is not None and predictions is not None:
            predictions.observe(browsing.due(sim_ms))
        try:
            for chunk in _chunks(schedule.due(sim_ms), batch_size):
                summary.add(client.post(chunk))
        except DeliveryError:
            if client.stop.is_set():
                break
            raise
        summary.until_ms = max(sim_ms, start_ms)
        if sim_ms // HOUR_MS > logged_hour:
            logged_hour = sim_ms // HOUR_MS
            log.info("Emitted %s events up to %s (%s rejected).", summary.events,
                     from_epoch_ms(sim_ms).isoformat(), summary.rejected)
            if predictions is not None:
                log.info("Asked %s: %s.", predictions.url, predictions.stats())
        if until_ms is not None and sim_ms >= until_ms:
            break
        next_tick = max(next_tick + tick_s, clock())
        client.stop.wait(max(0.0, next_tick - clock()))
    summary.seconds = clock() - began
    return summary
