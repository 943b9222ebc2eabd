"""Ingest by arrival: the landing files that arrived in a data interval, all or nothing, once.

:func:`ingest_arrivals` appends to the raw log the landing files of every contract table
whose arrival hour lies in ``[start, end)`` (the landing zone is laid out by arrival hour,
``<table>/YYYY/MM/DD/HH/<name>.ndjson.gz``), as one unit:

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

A re-run of an interval appends only files that were not there before (a straggler that
landed after the first run), so clearing and re-running the task is safe. An interval with
no files appends nothing: validation then declares it empty.

:func:`arrival_state` answers the grace-period wait: how many files the interval has, and
whether the collector has moved on (a file of the hour after the interval exists).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skiff.data.contract import TABLES, TableContract
from skiff.data.warehouse import LandedFile, Warehouse
from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.times import parse_time

__all__ = [
    "ARRIVAL_COLUMN",
    "EVENT_TABLES",
    "IngestSummary",
    "LandingFile",
    "LandingZone",
    "arrival_state",
    "decode_events",
    "ingest_arrivals",
    "interval_batch_id",
]

log = logging.getLogger(__name__)

#: The column the collector adds to a contract's: its clock (epoch ms) when it accepted the event.
ARRIVAL_COLUMN = "arrival_ts_ms"
#: The tables whose files tell whether the collector has moved on to a later hour.
EVENT_TABLES = ("browsing_train", "search_train")
#: Columns a landing event may not leave empty, by table (the rest may be null).
_REQUIRED = {
    "browsing_train": ("session_id_hash", "event_type", "server_timestamp_epoch_ms"),
    "search_train": ("session_id_hash", "server_timestamp_epoch_ms"),
    "sku_to_content": ("product_sku_hash",),
}
_HOUR = timedelta(hours=1)


# --------------------------------------------------------------------- landing-zone stand-in
# skiff.data.landing (LandingZone.from_uri / list / read, LandingFile, decode_events) is being
# written beside this module, with the same names and signatures. Until it is merged, this
# section is the reader the ingest uses: it lists and reads the layout of ISSUE14 (local
# folder or S3) and decodes a file with pyarrow's JSON reader against the contract. At merge,
# delete this section and import LandingFile, LandingZone and decode_events from
# skiff.data.landing (decode_events there checks every event with contract.check_event).
# This section is also why the module runs past 400 lines until then.


@dataclass(frozen=True)
class LandingFile:
    """A complete file of the landing zone.

    :param table: the contract table its events belong to.
    :param hour: the UTC arrival hour of its first event (its folder).
    :param name: the file name.
    :param uri: where it is: a path, or ``s3://bucket/key``.
    :param size: its size in bytes.
    """

    table: str
    hour: datetime
    name: str
    uri: str
    size: int

    @property
    def key(self) -> str:
        """``<table>/YYYY/MM/DD/HH/<name>``: the file's place under the zone's root."""
        return f"{self.table}/{self.hour:%Y/%m/%d/%H}/{self.name}"


def _is_landing_name(name: str) -> bool:
    return name.endswith(".ndjson.gz") and not name.startswith(".") and "/" not in name


def _arrival_hours(start: datetime, end: datetime) -> list[datetime]:
    """The arrival hours whose files belong to ``[start, end)``: every hour starting in it."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    if hour < start:
        hour += _HOUR
    hours = []
    while hour < end:
        hours.append(hour)
        hour += _HOUR
    return hours


class LandingZone(ABC):
    """Where landing files are listed and read: a local folder or an S3 prefix."""

    uri: str

    @staticmethod
    def from_uri(uri: str | Path, *, endpoint_url: str | None = None,
                 client: Any = None) -> LandingZone:
        """The zone at ``uri``: ``s3://bucket/prefix`` or a folder.

        :param uri: the zone's root (``SKIFF_LANDING_URI``).
        :param endpoint_url: an S3 endpoint (moto, MinIO); default boto3's.
        :param client: an S3 client to use instead of making one (in Airflow: the Amazon
            provider's ``S3Hook(aws_conn_id).get_conn()``).
        :raises SkiffConfigError: the URI is neither.
        """
        text = str(uri)
        if text.startswith("s3://"):
            bucket, _, prefix = text[len("s3://"):].partition("/")
            if not bucket:
                raise SkiffConfigError(f"SKIFF_LANDING_URI={text!r} names no bucket; use "
                                       "s3://bucket/prefix.")
            return _S3LandingZone(bucket, prefix.strip("/"), endpoint_url=endpoint_url,
                                  client=client)
        if "://" in text:
            raise SkiffConfigError(f"SKIFF_LANDING_URI={text!r}: use a folder or "
                                   "s3://bucket/prefix.")
        return _LocalLandingZone(Path(text))

    @abstractmethod
    def list(self, table: str, start: datetime, end: datetime) -> list[LandingFile]:
        """The complete files of the arrival hours starting in [start, end), oldest first."""

    @abstractmethod
    def read(self, file: LandingFile) -> bytes:
        """The bytes of a file :meth:`list` returned."""


class _LocalLandingZone(LandingZone):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def list(self, table: str, start: datetime, end: datetime) -> list[LandingFile]:
        found = []
        for hour in _arrival_hours(_utc(start), _utc(end)):
            folder = self.root / table / f"{hour:%Y/%m/%d/%H}"
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if _is_landing_name(path.name) and path.is_file():
                    found.append(LandingFile(table, hour, path.name, str(path),
                                             path.stat().st_size))
        return found

    def read(self, file: LandingFile) -> bytes:
        return Path(file.uri).read_bytes()


class _S3LandingZone(LandingZone):
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        self.bucket, self.prefix = bucket, prefix
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self._endpoint_url, self._client = endpoint_url, client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self._endpoint_url)
        return self._client

    def list(self, table: str, start: datetime, end: datetime) -> list[LandingFile]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for hour in _arrival_hours(_utc(start), _utc(end)):
            relative = f"{table}/{hour:%Y/%m/%d/%H}/"
            folder = f"{self.prefix}/{relative}" if self.prefix else relative
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(folder):]
                    if _is_landing_name(name):
                        found.append(LandingFile(table, hour, name,
                                                 f"s3://{self.bucket}/{obj['Key']}", obj["Size"]))
        return sorted(found, key=lambda f: (f.hour, f.name))

    def read(self, file: LandingFile) -> bytes:
        key = file.uri[len(f"s3://{self.bucket}/"):]
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def decode_events(table: str | TableContract, data: bytes, *, name: str = "landing file"):
    """A landing file's events as an Arrow table: the contract's columns + ``arrival_ts_ms``.

    :param table: the contract table, or its name.
    :param data: the file's bytes (gzip NDJSON).
    :param name: the file's name or URI, for error messages.
    :raises DataContractError: the file is not gzip NDJSON of this contract; the message
        names the file and what is wrong.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pajson

    contract = table if isinstance(table, TableContract) else _contract(table)
    schema = pa.schema(list(contract.schema) + [pa.field(ARRIVAL_COLUMN, pa.int64())])
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DataContractError(f"{name}: not a complete gzip file ({exc}).") from None
    if not text.strip():
        return schema.empty_table()
    try:
        events = pajson.read_json(io.BytesIO(text), parse_options=pajson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="error"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        why = _first_bad_line(text, schema) or str(exc)
        raise DataContractError(
            f"{name} does not match the {contract.name} contract: {why}; its lines must be "
            f"JSON objects with the fields {', '.join(schema.names)}. Nothing of the interval "
            "was appended.") from None
    columns = []
    for f in schema:  # "" counts as missing, as in the official files
        col = events.column(f.name)
        if pa.types.is_string(f.type):
            col = pc.if_else(pc.equal(col, ""), pa.scalar(None, f.type), col)
        columns.append(col)
    events = pa.Table.from_arrays(columns, schema=schema)
    for column in (*_REQUIRED[contract.name], ARRIVAL_COLUMN):
        missing = events.column(column).null_count
        if missing:
            raise DataContractError(
                f"{name} does not match the {contract.name} contract: {missing} events have no "
                f"{column} (required). Nothing of the interval was appended.")
    return events


def _first_bad_line(text: bytes, schema) -> str | None:
    """Which line breaks the schema, and how (pyarrow's reader does not say)."""
    import json

    kinds = {"string": (str,), "int64": (int,), "double": (int, float)}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON"
        if not isinstance(event, dict):
            return f"line {number} is not a JSON object"
        for key, value in event.items():
            if key not in schema.names:
                return f"line {number}: {key} is not a field of it"
            ok = kinds.get(str(schema.field(key).type), (object,))
            if value is not None and (isinstance(value, bool) or not isinstance(value, ok)):
                return f"line {number}: {key} is {value!r}, not {schema.field(key).type}"
    return None


def _contract(name: str) -> TableContract:
    for contract in TABLES:
        if contract.name == name:
            return contract
    raise ValueError(f"{name!r} is not a contract table; use one of "
                     f"{', '.join(t.name for t in TABLES)}.")


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
    :param rows: rows appended per raw table (0 for a table without new files).
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
        taken by arrival hour, so the interval is whole hours (``SKIFF_SCHEDULE`` fires on
        the hour).
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

    listed = [f for contract in TABLES for f in landing.list(contract.name, start_dt, end_dt)]
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
        landed.append(LandedFile(_contract(file.table), file.key, data, checksum, events))

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

    The collector cuts its files at hour boundaries and writes them in order, so a file of the
    hour after the interval means the interval's last file is written too.

    :return: ``{"files": <event files of [start, end)>, "moved_on": <an event file of the
        hour from end exists>}``.
    """
    start_dt, end_dt = _utc(parse_time(start)), _utc(parse_time(end))
    files = sum(len(landing.list(t, start_dt, end_dt)) for t in EVENT_TABLES)
    moved_on = any(landing.list(t, end_dt, end_dt + _HOUR) for t in EVENT_TABLES)
    return {"files": files, "moved_on": moved_on}
