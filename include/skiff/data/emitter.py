"""The embedded shoppers: the events of any hour, and when a real client would deliver them.

An :class:`Emitter` simulates :mod:`skiff.data.shoppers`' model (the generator's: same
catalogue for the same seed and size, same planted structure) without end, one hour at a
time, and every hour is a pure function of the seed and the hour:

- **Sessions** starting in hour ``S`` are a Poisson number on the daily traffic curve, drawn
  from streams named ``(seed, S)``; a session's events are cut :data:`LOOKBACK_HOURS` after
  the end of ``S`` (about one session in 50,000 runs that long), so :meth:`Emitter.events`
  of hour ``E`` are those of the sessions started in ``E - LOOKBACK_HOURS .. E`` that fall
  in ``E``: sessions cross hour boundaries, and any hour can be drawn alone.
- **Delivery** of hour ``E``'s events, drawn from ``(seed, E)``, is what a client does: a
  network delay of 20 ms-20 s (so events close together in a session arrive slightly out of
  order), ``late_share`` of the events held back 2 minutes to ``max_lateness_minutes``
  (offline phones; most land in a later hour), ``duplicate_share`` posted a second time by a
  retry 1-30 s later. :meth:`Emitter.delivered` of hour ``H`` gathers the events arriving
  in ``H`` from every event hour that can reach it, in arrival order.

With ``drift``, the sessions starting from ``drift_from`` on browse differently
(:data:`skiff.data.shoppers.DRIFTS`: shorter sessions, or other products), for the
monitoring's drift checks; the sessions before are as without it.

Delivered rows carry ``arrival_ts_ms``, the simulated time the collector receives them.
:mod:`skiff.data.emitter_http` posts them to the collector; :mod:`skiff.data.emitter_files`
writes them as its landing files would be, for tests, the soak and ``skiff emit --to-files``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from skiff.config import EmitConfig
from skiff.data.contract import BROWSING, SEARCH
from skiff.data.shoppers import (
    DRIFTS,
    HOUR_MS,
    KEY_CATALOGUE,
    KEY_DELIVERY,
    KEY_HOUR_SESSIONS,
    KEY_HOUR_STARTS,
    Streams,
    build_catalogue,
    hour_starts,
    simulate,
    stream,
)
from skiff.exceptions import SkiffConfigError
from skiff.times import from_epoch_ms, to_epoch_ms

__all__ = ["ARRIVAL", "LOOKBACK_HOURS", "Emitter", "Events"]

#: Column of delivered rows: when the collector receives the event (epoch ms, simulated).
ARRIVAL = "arrival_ts_ms"
#: Hours after the end of its start hour at which a session's events are cut.
LOOKBACK_HOURS = 2
_DELAY_MS = (20, 20_000)  # network/client delay of an on-time event: lognormal, clipped
_DELAY_MEDIAN_MS = 250
_LATE_MIN_MS = 120_000  # a late event is held back at least this long
_RETRY_MS = (1_000, 30_000)  # a duplicate follows its first post after this long
_CACHE_ENTRIES = 12  # simulated sessions, events and deliveries of recent hours kept
_EVENT_TABLES = (BROWSING, SEARCH)


@dataclass(frozen=True)
class Events:
    """Events of the two event tables, in time order: of the event, or of arrival if delivered.

    :param browsing: ``browsing_train`` rows (contract columns, plus ``arrival_ts_ms`` if
        delivered).
    :param search: ``search_train`` rows, likewise.
    """

    browsing: pa.Table
    search: pa.Table

    def __len__(self) -> int:
        return self.browsing.num_rows + self.search.num_rows

    @property
    def tables(self) -> dict[str, pa.Table]:
        """The tables by contract name."""
        return {BROWSING.name: self.browsing, SEARCH.name: self.search}

    def rows(self, *, arrival: bool = False) -> list[dict[str, Any]]:
        """Both tables' rows as JSON-ready objects, merged in time order (browsing first on ties).

        :param arrival: keep the ``arrival_ts_ms`` key of delivered rows.
        :return: one dict a row, keyed by the contract's columns.
        """
        key = _time_key(self.browsing)
        times = np.concatenate([self.browsing[key].to_numpy(), self.search[key].to_numpy()])
        rows = []
        for table in (self.browsing, self.search):
            if not arrival and ARRIVAL in table.column_names:
                table = table.drop_columns([ARRIVAL])
            rows += table.to_pylist()
        return [rows[i] for i in np.argsort(times, kind="stable")]

    def between(self, since_ms: int, until_ms: int) -> Events:
        """The rows whose time (arrival, if delivered) lies in ``[since_ms, until_ms)``."""
        return Events(*(_between(t, since_ms, until_ms) for t in (self.browsing, self.search)))


def _time_key(table: pa.Table) -> str:
    return ARRIVAL if ARRIVAL in table.column_names else BROWSING.time_column


def _between(table: pa.Table, since_ms: int, until_ms: int) -> pa.Table:
    times = table[_time_key(table)].to_numpy()
    return table.filter(pa.array((times >= since_ms) & (times < until_ms)))


def _sorted(table: pa.Table) -> pa.Table:
    """``table`` in time order (arrival, if delivered); ties keep their order."""
    return table.take(pa.array(np.argsort(table[_time_key(table)].to_numpy(), kind="stable")))


class Emitter:
    """Shoppers of any hour, deterministic per seed (see the module docstring).

    :param seed: the seed; the same seed gives the same catalogue and hours.
    :param sessions_per_hour: mean sessions starting in an hour at the daily peak (14:00 UTC).
    :param products: catalogue size.
    :param duplicate_share: share of the events posted twice.
    :param late_share: share of the events posted 2 minutes to ``max_lateness_minutes`` late.
    :param max_lateness_minutes: the latest a late event is posted.
    :param drift: one of :data:`~skiff.data.shoppers.DRIFTS`: how the shoppers change from
        ``drift_from`` on; None: they do not.
    :param drift_from: when the drift starts (sessions starting then or later), epoch ms or
        a time; None: at the epoch (every session).
    :raises SkiffConfigError: an argument is out of range.
    """

    def __init__(self, *, seed: int = 42, sessions_per_hour: float = 450.0,
                 products: int = 5_000, duplicate_share: float = 0.002,
                 late_share: float = 0.01, max_lateness_minutes: int = 90,
                 drift: str | None = None,
                 drift_from: int | datetime | str | None = None) -> None:
        if drift is not None and drift not in DRIFTS:
            raise SkiffConfigError(f"drift={drift!r} is not one of {', '.join(DRIFTS)} "
                                   "(SKIFF_EMIT_DRIFT, skiff emit --drift).")
        self.drift = drift
        self.drift_from_ms = 0 if drift_from is None else _ms(drift_from)
        for name, value, low, high in (
                ("seed", seed, 0, 2**63), ("sessions_per_hour", sessions_per_hour, 1e-3, 1e6),
                ("products", products, 20, 10**6), ("duplicate_share", duplicate_share, 0, 0.5),
                ("late_share", late_share, 0, 0.5),
                ("max_lateness_minutes", max_lateness_minutes, 3, 24 * 60)):
            if not low <= value <= high:  # also rejects nan
                raise SkiffConfigError(f"{name}={value} must be within [{low:g}, {high:g}].")
        self.seed = seed
        self.sessions_per_hour = float(sessions_per_hour)
        self.duplicate_share = float(duplicate_share)
        self.late_share = float(late_share)
        self.max_lateness_ms = int(max_lateness_minutes) * 60_000
        self.catalogue = build_catalogue(stream(seed, KEY_CATALOGUE), products)
        latest = self.max_lateness_ms + _DELAY_MS[1] + _RETRY_MS[1]
        #: Event hours whose deliveries can reach an arrival hour: it and the ones before.
        self.spread_hours = math.ceil(latest / HOUR_MS)
        self._cache: OrderedDict[tuple[str, int], Any] = OrderedDict()

    @classmethod
    def from_config(cls, config: EmitConfig) -> Emitter:
        """An emitter of :class:`skiff.config.EmitConfig`'s shoppers."""
        return cls(seed=config.seed, sessions_per_hour=config.sessions_per_hour,
                   products=config.products, duplicate_share=config.duplicate_share,
                   late_share=config.late_share, max_lateness_minutes=config.max_lateness_minutes,
                   drift=config.drift or None, drift_from=config.drift_from or None)

    @property
    def catalogue_table(self) -> pa.Table:
        """The ``sku_to_content`` rows: fixed per seed and size, delivered once."""
        return self.catalogue.table

    # ------------------------------------------------------------ hours

    def sessions(self, hour: int | datetime) -> Events:
        """Every event of the sessions starting in ``hour`` (cut :data:`LOOKBACK_HOURS` after it).

        :param hour: hours since the epoch, or a datetime on the hour.
        :return: the events, session by session.
        """
        return self._sessions(_hour(hour))

    def events(self, hour: int | datetime) -> Events:
        """The events that happen in ``hour``, in time order, as they happened (no delivery).

        :param hour: hours since the epoch, or a datetime on the hour.
        """
        return self._events(_hour(hour))

    def delivered(self, hour: int | datetime) -> Events:
        """The deliveries arriving in ``hour``, in arrival order, with ``arrival_ts_ms``.

        Late events of earlier hours are in, this hour's late ones are not; a duplicate is a
        second, identical row.

        :param hour: hours since the epoch, or a datetime on the hour.
        """
        h = _hour(hour)
        parts = [self._deliveries(e) for e in range(max(0, h - self.spread_hours), h + 1)]
        since, until = h * HOUR_MS, (h + 1) * HOUR_MS
        return Events(*(
            _sorted(pa.concat_tables([_between(p.tables[c.name], since, until) for p in parts]))
            for c in _EVENT_TABLES))

    def deliveries(self, since: int | datetime | str,
                   until: int | datetime | str) -> Iterator[Events]:
        """The deliveries arriving in ``[since, until)``, one arrival hour at a time.

        :param since: start, epoch ms or a time (naive means UTC).
        :param until: end (exclusive), likewise.
        :return: each arrival hour's deliveries (cut to the range), in order.
        :raises SkiffConfigError: the range is empty.
        """
        since_ms, until_ms = _ms(since), _ms(until)
        if since_ms >= until_ms:
            raise SkiffConfigError(f"The range {from_epoch_ms(since_ms).isoformat()} .. "
                                   f"{from_epoch_ms(until_ms).isoformat()} is empty: --to must "
                                   "be after --from.")
        for h in range(since_ms // HOUR_MS, -(-until_ms // HOUR_MS)):
            delivered = self.delivered(h)
            if since_ms > h * HOUR_MS or until_ms < (h + 1) * HOUR_MS:
                delivered = delivered.between(since_ms, until_ms)
            yield delivered

    # ------------------------------------------------------------ simulation

    def _cached(self, kind: str, hour: int, build: Callable[[], Any]) -> Any:
        key = (kind, hour)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._cache[key] = build()
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return value

    def _sessions(self, s: int) -> Events:
        return self._cached("sessions", s, lambda: self._simulate(s))

    def _events(self, e: int) -> Events:
        return self._cached("events", e, lambda: self._gather(e))

    def _deliveries(self, e: int) -> Events:
        return self._cached("delivery", e, lambda: self._deliver(e))

    def _simulate(self, s: int) -> Events:
        starts = hour_starts(stream(self.seed, KEY_HOUR_STARTS, s), self.sessions_per_hour, s)
        if not len(starts):
            return Events(BROWSING.schema.empty_table(), SEARCH.schema.empty_table())
        streams = Streams(self.seed, (KEY_HOUR_SESSIONS, s), 0, len(starts))
        return Events(*simulate(self.catalogue, streams, starts, s * HOUR_MS,
                                (s + 1 + LOOKBACK_HOURS) * HOUR_MS, drift=self.drift,
                                drift_from_ms=self.drift_from_ms))

    def _gather(self, e: int) -> Events:
        parts = [self._sessions(s) for s in range(max(0, e - LOOKBACK_HOURS), e + 1)]
        since, until = e * HOUR_MS, (e + 1) * HOUR_MS
        return Events(*(
            _sorted(pa.concat_tables([_between(p.tables[c.name], since, until) for p in parts]))
            for c in _EVENT_TABLES))

    def _deliver(self, e: int) -> Events:
        """Hour ``e``'s events with their arrival times, duplicates appended (not sorted)."""
        events = self._events(e)
        n_browsing = events.browsing.num_rows
        ts = np.concatenate([t[BROWSING.time_column].to_numpy() for t in
                             (events.browsing, events.search)]).astype(np.int64)
        rng = stream(self.seed, KEY_DELIVERY, e)
        u = rng.random((len(ts), 4))  # late?, how late, duplicate?, retry after
        delay = np.clip(_DELAY_MEDIAN_MS * np.exp(0.9 * rng.standard_normal(len(ts))), *_DELAY_MS)
        late = u[:, 0] < self.late_share
        delay[late] += _LATE_MIN_MS + u[late, 1] * (self.max_lateness_ms - _LATE_MIN_MS)
        arrival = ts + delay.astype(np.int64)
        dup = np.flatnonzero(u[:, 2] < self.duplicate_share)
        retry = (_RETRY_MS[0] + u[dup, 3] * (_RETRY_MS[1] - _RETRY_MS[0])).astype(np.int64)
        rows = np.concatenate([np.arange(len(ts)), dup])
        arrival = np.concatenate([arrival, arrival[dup] + retry])
        out = []
        for table, mine, offset in ((events.browsing, rows < n_browsing, 0),
                                    (events.search, rows >= n_browsing, n_browsing)):
            taken = table.take(pa.array(rows[mine] - offset))
            out.append(taken.append_column(ARRIVAL, pa.array(arrival[mine], pa.int64())))
        return Events(*out)


def _ms(value: int | datetime | str) -> int:
    return value if isinstance(value, int) else to_epoch_ms(value)


def _hour(value: int | datetime) -> int:
    """Hours since the epoch of an hour given as such or as a datetime on the hour."""
    if isinstance(value, int):
        if value < 0:
            raise SkiffConfigError(f"hour={value} is before 1970: hours count from the epoch.")
        return value
    ms = to_epoch_ms(value)
    if ms % HOUR_MS:
        raise SkiffConfigError(f"{value} is not on the hour: an hour starts at minute 0.")
    return _hour(ms // HOUR_MS)
