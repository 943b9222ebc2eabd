"""Ingest by arrival: the landing files that arrived in a data interval, all or nothing, once.

:func:`ingest_arrivals` appends to the raw log the landing files of every contract table
whose FIRST arrival lies in ``[start, end)``, as one unit. The landing zone is laid out by
arrival hour (``<table>/YYYY/MM/DD/HH/<name>.ndjson.gz``) and every file's name carries its
first arrival (:attr:`~skiff.data.landing.LandingFile.first_ms`), so the interval may be any
length ``SKIFF_SCHEDULE`` gives (every 5 minutes in a demo): each file belongs to exactly one
interval, and for whole hours the interval's files are its hours' folders, as before.

1. list the interval's files (complete files only: a half-written ``.<name>.tmp`` is never
   listed);
2. skip, with a log line, a file the ledger (``raw.ingest_ledger``) already holds, and a file
   whose bytes (sha256) the ledger, or this interval, already holds under another name (the
   same content re-delivered);
3. read and check every remaining file against its contract: a file of the wrong contract
   fails the interval naming the file, before anything is written;
4. append all their events (stamped with the interval's ``batch_id``, ``ingested_at`` and
   each event's ``arrival_ts_ms``) and their ledger rows in one warehouse transaction
   (:meth:`~skiff.data.warehouse.Warehouse.ingest_landed`).

A file may hold events that arrived after the interval's end (the collector rolls a file up
to ``SKIFF_COLLECT_ROLL_SECONDS`` after its first event; only the hour boundary cuts it): they are
appended with the interval holding the file's first arrival, one run EARLY, never late. That
is what the dbt window (``macros/skiff_window.sql``) needs: a run of ``[s, e)`` rebuilds the
sessions with a raw row whose ``arrival_ts_ms`` is in ``[s, e)``; such a row sits in a file
whose first arrival is at or before its own, so before ``e``: the file was ingested by this
run or an earlier one, and the row is in the raw log when the run of its arrival reads it.

A re-run of an interval appends only files that were not there before (a straggler that
landed after the first run), so clearing and re-running the task is safe. An interval with
no files appends nothing: validation then declares it empty.

:func:`arrival_state` answers the grace-period wait: how many files the interval has, and
whether the collector has moved on (a file whose first arrival is at or after the interval's
end exists).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from skiff.data.contract import LANDING_TABLES, TABLES, contract_named
from skiff.data.landing import LandingFile, LandingZone, decode_events
from skiff.data.warehouse import LandedFile, Warehouse
from skiff.times import parse_time

__all__ = [
    "EVENT_TABLES",
    "IngestSummary",
    "arrival_state",
    "ingest_arrivals",
    "interval_batch_id",
]

log = logging.getLogger(__name__)

#: The tables whose files tell whether the collector has moved on to a later hour.
EVENT_TABLES = ("browsing_train", "search_train")
_HOUR = timedelta(hours=1)


# --------------------------------------------------------------------------- the ingest


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def interval_batch_id(start: datetime, end: datetime) -> str:
    """The ``batch_id`` of an interval's landing ingest, ``landing:<start>/<end>`` (UTC ISO)."""
    return f"landing:{_utc(start).isoformat()}/{_utc(end).isoformat()}"


@dataclass
class IngestSummary:
    """What an interval's ingest did.

    :param batch_id: stamped on every appended row.
    :param rows: rows appended per raw table (0 for a shoppers' table without new files;
        ``predictions`` only when it had some).
    :param files: the files appended: ``{"file", "table", "rows"}`` each.
    :param skipped: the files skipped: ``{"file", "reason"}`` each.
    :param seconds: wall time of the ingest.
    """

    batch_id: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A small JSON-able summary (for XCom): batch, rows per table, file counts."""
        return {"batch_id": self.batch_id, "rows": dict(self.rows),
                "files": len(self.files), "skipped": len(self.skipped),
                "seconds": round(self.seconds, 3)}


def ingest_arrivals(
    warehouse: Warehouse,
    landing: LandingZone,
    start: str | datetime,
    end: str | datetime,
    *,
    now: datetime | None = None,
) -> IngestSummary:
    """Append the landing files that arrived in ``[start, end)``, all or nothing, once each.

    :param warehouse: where the raw log and the ledger live.
    :param landing: the landing zone.
    :param start: the interval's start (ISO 8601 or datetime; naive means UTC). Files are
        taken by their first arrival, to the second their names carry (``SKIFF_SCHEDULE``'s
        intervals are whole minutes).
    :param end: the interval's end, excluded.
    :param now: the ``ingested_at`` / ``loaded_at`` stamp (default: the clock).
    :return: what was appended and skipped.
    :raises DataContractError: a file is not gzip NDJSON of its table's contract (the message
        names it); nothing of the interval is appended.
    :raises ValueError: ``end`` is not after ``start``.
    """
    started = time.perf_counter()
    start_dt, end_dt = _utc(parse_time(start)), _utc(parse_time(end))
    if end_dt <= start_dt:
        raise ValueError(f"the interval end {end_dt} must be after its start {start_dt}")
    now = _utc(now or datetime.now(UTC))
    summary = IngestSummary(interval_batch_id(start_dt, end_dt),
                            rows={c.name: 0 for c in TABLES})
    warehouse.ensure_raw_tables()
    warehouse.ensure_ingest_ledger()

    listed = [f for contract in LANDING_TABLES for f in landing.list(contract.name, start_dt, end_dt)]
    known = warehouse.ledger_files(f.key for f in listed)
    fresh: list[tuple[LandingFile, bytes, str]] = []
    for file in listed:
        if file.key in known:
            size, _ = known[file.key]
            if size != file.size:
                log.warning("%s is in the ingest ledger with %s bytes but now has %s: it was "
                            "loaded before and is not loaded again.", file.key, size, file.size)
            else:
                log.info("%s is in the ingest ledger: skipped.", file.key)
            summary.skipped.append({"file": file.key, "reason": "in the ledger"})
            continue
        data = landing.read(file)
        fresh.append((file, data, hashlib.sha256(data).hexdigest()))

    loaded_as = warehouse.ledger_checksums(checksum for _, _, checksum in fresh)
    landed: list[LandedFile] = []
    for file, data, checksum in fresh:
        same = loaded_as.get(checksum)
        if same is not None:
            log.info("%s has the same content (sha256 %s) as %s: re-delivered, skipped.",
                     file.key, checksum[:12], same)
            summary.skipped.append({"file": file.key, "reason": f"same content as {same}"})
            continue
        loaded_as[checksum] = file.key
        events = decode_events(file.table, data, name=file.uri)
        landed.append(LandedFile(contract_named(file.table), file.key, data, checksum, events))

    if landed:
        summary.rows.update(warehouse.ingest_landed(landed, summary.batch_id, now))
    summary.files = [{"file": f.key, "table": f.contract.name, "rows": f.rows} for f in landed]
    summary.seconds = time.perf_counter() - started
    log.info("Interval %s: appended %s from %d files (%d skipped) in %.2fs.",
             summary.batch_id, summary.rows, len(landed), len(summary.skipped), summary.seconds)
    return summary


def arrival_state(landing: LandingZone, start: str | datetime,
                  end: str | datetime) -> dict[str, Any]:
    """What the grace-period wait looks at: the interval's files, and whether the collector
    has moved on.

    The collector writes its files in the order of their first arrivals, so a file whose
    first arrival is at or after the interval's end means the interval's last file is written
    too. Such a file is looked for in the hour folder of ``end`` and, when ``end`` is not on
    the hour, in the next hour's folder too (the collector cuts files at hour boundaries, so
    after a quiet end of the hour the next file may only come in the next hour).

    :return: ``{"files": <event files of [start, end)>, "moved_on": <an event file whose
        first arrival is at or after end exists>}``.
    """
    start_dt, end_dt = _utc(parse_time(start)), _utc(parse_time(end))
    files = sum(len(landing.list(t, start_dt, end_dt)) for t in EVENT_TABLES)
    hour = end_dt.replace(minute=0, second=0, microsecond=0)
    horizon = hour + (_HOUR if hour == end_dt else 2 * _HOUR)
    moved_on = any(landing.list(t, end_dt, horizon) for t in EVENT_TABLES)
    return {"files": files, "moved_on": moved_on}
