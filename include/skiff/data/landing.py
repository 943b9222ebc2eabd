"""The landing zone: gzip NDJSON files of collected events, by table and arrival hour.

The layout is Firehose's: ``<root>/<table>/YYYY/MM/DD/HH/<name>.ndjson.gz``, where the hour
is the UTC arrival hour of the file's first event, and the name carries that first arrival to
the second (``skiff-collect-<YYYY-MM-DD-HH-MM-SS>-<hex>``; Firehose's
``<stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>`` alike): :attr:`LandingFile.first_ms`. A
file belongs to the one interval holding its first arrival (:meth:`LandingZone.list`), so
intervals of any length (``SKIFF_SCHEDULE``) split the zone into disjoint sets of files.
``<root>`` is a local folder (the embedded default, ``$SKIFF_HOME/landing``) or
``s3://bucket/prefix`` (production, where Firehose delivers). A file appears whole or not at
all: locally it is written as ``.<name>.tmp``, fsync'd and renamed; on S3 it is one
``put_object``. Readers list only names ending ``.ndjson.gz`` and not starting with ``.``, so
a half-written file is never read.

A file holds one JSON object per line: the table's contract columns (values as the contract
types, epoch ms as integers) and ``arrival_ts_ms``, when the collector accepted the event.
:func:`encode_lines` (or :func:`encode_events`) writes one, :func:`decode_events` reads one
back as an Arrow table, checking every line against the contract.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.data.contract import TableContract, check_event, contract_named
from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.times import to_epoch_ms

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "SUFFIX",
    "fsync_dir",
    "ARRIVAL_COLUMN",
    "LandingFile",
    "LandingZone",
    "LocalLandingZone",
    "S3LandingZone",
    "landing_name",
    "is_landing_name",
    "first_arrival_ms",
    "compress_ndjson",
    "encode_lines",
    "encode_events",
    "decode_events",
]

log = logging.getLogger(__name__)

#: Suffix of every landing file.
SUFFIX = ".ndjson.gz"
#: The column the collector adds to the contract's: its clock when it accepted the event.
ARRIVAL_COLUMN = "arrival_ts_ms"
_HOUR = timedelta(hours=1)


def landing_name(first_arrival_ms: int, token: str | None = None) -> str:
    """A landing file's name: ``skiff-collect-<YYYY-MM-DD-HH-MM-SS>-<16 hex>.ndjson.gz``.

    :param first_arrival_ms: arrival time of the file's first event (epoch ms).
    :param token: 16 hex characters telling files apart (default: random); the collector
        derives it from the log segment, so re-rolling a segment rewrites the same file.
    """
    token = token or secrets.token_hex(8)
    if len(token) != 16 or any(c not in "0123456789abcdef" for c in token):
        raise ValueError(f"token {token!r} must be 16 lowercase hex characters")
    when = datetime.fromtimestamp(first_arrival_ms / 1000, tz=UTC)
    return f"skiff-collect-{when:%Y-%m-%d-%H-%M-%S}-{token}{SUFFIX}"


def is_landing_name(name: str) -> bool:
    """Whether readers take a file of this name (complete files only; temp names start ``.``)."""
    return name.endswith(SUFFIX) and not name.startswith(".") and "/" not in name


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _hour_floor(when: datetime) -> datetime:
    return _utc(when).replace(minute=0, second=0, microsecond=0)


def _folders(start: datetime, end: datetime) -> list[datetime]:
    """The arrival-hour folders that may hold files of [start, end): every hour overlapping it."""
    start, end = _utc(start), _utc(end)
    hour, out = _hour_floor(start), []
    while hour < end:
        out.append(hour)
        hour += _HOUR
    return out


#: The first arrival in a landing file's name: ``-YYYY-MM-DD-HH-MM-SS-`` (UTC).
_NAME_TIME = re.compile(r"(?<![0-9])(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?![0-9])")


def first_arrival_ms(name: str, hour: datetime) -> int:
    """The first arrival of a landing file (epoch ms, to the second), from its name.

    The name's time (:func:`landing_name`; Firehose's names alike) if it lies in the file's
    folder hour, else (no time, a file put by hand in another hour's folder) the folder
    hour's start: either way the file belongs to exactly one interval.

    :param name: the file name.
    :param hour: its folder's arrival hour.
    """
    folder_ms = int(_hour_floor(hour).timestamp()) * 1000
    match = _NAME_TIME.search(name)
    if match:
        try:
            when = datetime(*map(int, match.groups()), tzinfo=UTC)
        except ValueError:  # digits that are no date
            return folder_ms
        ms = int(when.timestamp()) * 1000
        if folder_ms <= ms < folder_ms + 3_600_000:
            return ms
    return folder_ms


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

    @property
    def first_ms(self) -> int:
        """Arrival of its first event, epoch ms to the second (see :func:`first_arrival_ms`)."""
        return first_arrival_ms(self.name, self.hour)


class LandingZone(ABC):
    """Where landing files are written and listed: a local folder or an S3 prefix."""

    uri: str

    @staticmethod
    def from_uri(uri: str | Path, *, endpoint_url: str | None = None,
                 client: Any = None) -> LandingZone:
        """The zone at ``uri``: ``s3://bucket/prefix`` or a folder.

        :param uri: the zone's root (``SKIFF_LANDING_URI``).
        :param endpoint_url: an S3 endpoint (moto, MinIO); default boto3's, which honours
            ``AWS_ENDPOINT_URL``.
        :param client: an S3 client to use instead of making one.
        :raises SkiffConfigError: the URI is neither.
        """
        text = str(uri)
        if text.startswith("s3://"):
            bucket, _, prefix = text[len("s3://"):].partition("/")
            if not bucket:
                raise SkiffConfigError(f"SKIFF_LANDING_URI={text!r} names no bucket; use "
                                       "s3://bucket/prefix.")
            return S3LandingZone(bucket, prefix.strip("/"), endpoint_url=endpoint_url,
                                 client=client)
        if "://" in text:
            raise SkiffConfigError(f"SKIFF_LANDING_URI={text!r}: use a folder or "
                                   "s3://bucket/prefix.")
        return LocalLandingZone(Path(text))

    @abstractmethod
    def write(self, table: str, arrival_hour: datetime, name: str, data: bytes) -> LandingFile:
        """Write a whole file atomically (an existing file of that name is replaced).

        :param table: the contract table.
        :param arrival_hour: the arrival hour of its first event (floored to the hour).
        :param name: the file name (see :func:`landing_name`).
        :param data: the gzip NDJSON bytes.
        """

    @abstractmethod
    def list(self, table: str, start: datetime, end: datetime) -> list[LandingFile]:
        """The complete files whose first arrival lies in [start, end), oldest first.

        The hour folders overlapping the interval are listed and their files kept by
        :attr:`LandingFile.first_ms`; for whole hours that is every file of the hours
        starting in the interval. The collector never lets a file span two arrival hours.

        :param table: the contract table.
        :param start: first instant (aware, or naive UTC).
        :param end: first instant excluded.
        """

    @abstractmethod
    def read(self, file: LandingFile) -> bytes:
        """The bytes of a file :meth:`list` returned."""

    @staticmethod
    def _check(table: str, name: str) -> None:
        contract_named(table)
        if not is_landing_name(name):
            raise ValueError(f"{name!r} is not a landing file name (…{SUFFIX}, no leading '.')")


class LocalLandingZone(LandingZone):
    """A landing zone in a local folder: temp file, fsync, rename, fsync the folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def write(self, table: str, arrival_hour: datetime, name: str, data: bytes) -> LandingFile:
        self._check(table, name)
        hour = _hour_floor(arrival_hour)
        folder = self.root / table / f"{hour:%Y/%m/%d/%H}"
        folder.mkdir(parents=True, exist_ok=True)
        final, temp = folder / name, folder / f".{name}.tmp"
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, final)
        fsync_dir(folder)
        return LandingFile(table, hour, name, str(final), len(data))

    def list(self, table: str, start: datetime, end: datetime) -> list[LandingFile]:
        contract_named(table)
        found = []
        for hour in _folders(start, end):
            folder = self.root / table / f"{hour:%Y/%m/%d/%H}"
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except FileNotFoundError:
                continue
            for entry in entries:
                if is_landing_name(entry.name) and entry.is_file():
                    found.append(LandingFile(table, hour, entry.name, entry.path,
                                             entry.stat().st_size))
        return _between(found, start, end)

    def read(self, file: LandingFile) -> bytes:
        return Path(file.uri).read_bytes()


def _between(files: list[LandingFile], start: datetime, end: datetime) -> list[LandingFile]:
    """The files whose first arrival lies in [start, end)."""
    start_ms, end_ms = to_epoch_ms(_utc(start)), to_epoch_ms(_utc(end))
    return [f for f in files if start_ms <= f.first_ms < end_ms]


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3LandingZone(LandingZone):
    """A landing zone under an S3 prefix: one ``put_object`` per file (visible only whole)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._endpoint_url = endpoint_url
        self._client = client

    @property
    def client(self) -> Any:
        """The S3 client, made on first use."""
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self._endpoint_url)
        return self._client

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def write(self, table: str, arrival_hour: datetime, name: str, data: bytes) -> LandingFile:
        self._check(table, name)
        hour = _hour_floor(arrival_hour)
        file = LandingFile(table, hour, name, "", len(data))
        key = self._key(file.key)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                               ContentType="application/gzip")
        return LandingFile(table, hour, name, f"s3://{self.bucket}/{key}", len(data))

    def list(self, table: str, start: datetime, end: datetime) -> list[LandingFile]:
        contract_named(table)
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for hour in _folders(start, end):
            folder = self._key(f"{table}/{hour:%Y/%m/%d/%H}/")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(folder):]
                    if is_landing_name(name):
                        found.append(LandingFile(table, hour, name,
                                                 f"s3://{self.bucket}/{obj['Key']}", obj["Size"]))
        return _between(sorted(found, key=lambda f: (f.hour, f.name)), start, end)

    def read(self, file: LandingFile) -> bytes:
        key = file.uri[len(f"s3://{self.bucket}/"):]
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def compress_ndjson(data: bytes, *, level: int = 6) -> bytes:
    """A landing file's bytes from NDJSON text (each line ends with a newline).

    :param data: the lines.
    :param level: gzip compression level (the collector uses 3: a third of 6's CPU, 7% larger).
    """
    return gzip.compress(data, compresslevel=level, mtime=0)


def encode_lines(lines: Iterable[bytes], *, level: int = 6) -> bytes:
    """A landing file's bytes: gzip of the NDJSON lines (each a JSON object, no newline).

    :param lines: the events' JSON, contract columns and ``arrival_ts_ms`` each.
    :param level: gzip compression level.
    """
    return compress_ndjson(b"".join(line + b"\n" for line in lines), level=level)


def encode_events(events: Iterable[dict[str, Any]], *, level: int = 6) -> bytes:
    """A landing file's bytes from events as dicts (contract columns + ``arrival_ts_ms``).

    Nothing is checked here (tests write bad files with it); :func:`decode_events` checks.

    :param events: the events, in file order.
    :param level: gzip compression level.
    """
    return encode_lines((json.dumps(e, separators=(",", ":")).encode() for e in events),
                        level=level)


def decode_events(table: str | TableContract, data: bytes, *, name: str = "landing file"
                  ) -> pa.Table:
    """A landing file's events as an Arrow table: the contract's columns + ``arrival_ts_ms``.

    Every line is checked against the contract (types, required values, allowed values;
    not the event time's plausibility, which validation judges).

    :param table: the contract table, or its name.
    :param data: the file's bytes (gzip NDJSON).
    :param name: the file's name or URI, for error messages.
    :raises DataContractError: the file is not gzip NDJSON of this contract; the message
        names the file, the line and the field.
    """
    import pyarrow as pa

    contract = contract_named(table) if isinstance(table, str) else table
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DataContractError(f"{name}: not a complete gzip file ({exc}).") from None
    rows, arrivals = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise DataContractError(f"{name} line {number}: not JSON ({exc}).") from None
        arrival = event.pop(ARRIVAL_COLUMN, None) if isinstance(event, dict) else None
        if isinstance(arrival, bool) or not isinstance(arrival, int):
            raise DataContractError(f"{name} line {number}: {ARRIVAL_COLUMN}: missing or not "
                                    f"an integer (epoch ms).")
        row, reason = check_event(contract, event)
        if reason:
            raise DataContractError(f"{name} line {number}: {reason}.")
        rows.append(row)
        arrivals.append(arrival)
    schema = pa.schema(list(contract.schema) + [pa.field(ARRIVAL_COLUMN, pa.int64())])
    columns = {c: [r[c] for r in rows] for c in contract.columns}
    columns[ARRIVAL_COLUMN] = arrivals
    return pa.table(columns, schema=schema)
