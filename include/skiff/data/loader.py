"""Append contract files to the warehouse's raw, append-only log.

``load_dir`` accepts what ``skiff generate`` writes (parquet or CSV) and the official
Coveo CSVs as they are (``browsing_train.csv``, ``browsing_train_sample.csv`` …). Every
file's columns are checked against the contract *before anything is written*; a file
that does not match is refused with an error naming the file and the columns, and no
file of the load is appended. Each row gets ``batch_id``, ``ingested_at`` (UTC) and
``arrival_ts_ms``: the load time for files a user brings, or the event time when the load
replays a source as if a collector had received each event as it happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from skiff.exceptions import DataContractError, MissingInputError
from skiff.data.contract import TableContract, contract_for_file
from skiff.data.warehouse import Warehouse

__all__ = ["ARRIVALS", "EVENT_TABLES", "LoadSummary", "SourceFile", "discover", "load_dir",
           "read_batches"]

log = logging.getLogger(__name__)

#: The contract tables that carry an event time (what an hourly replay appends).
EVENT_TABLES = ("browsing_train", "search_train")

_SUFFIXES = {".parquet": "parquet", ".csv": "csv"}

#: What ``load_dir`` stamps as ``arrival_ts_ms``: the load time, or each event's own time.
ARRIVALS = ("load", "event")


@dataclass(frozen=True)
class SourceFile:
    """A file of the source folder and the contract table it belongs to."""

    path: Path
    contract: TableContract
    fmt: str


@dataclass
class LoadSummary:
    """What a load appended.

    :param batch_id: the ``batch_id`` stamped on every appended row.
    :param rows: rows appended per raw table.
    :param skipped: tables skipped because ``batch_id`` was already loaded (idempotent replays).
    """

    batch_id: str
    rows: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def discover(src_dir: Path) -> list[SourceFile]:
    """The contract files in ``src_dir``, checked against the contract.

    :raises MissingInputError: the folder is missing or holds no contract file.
    :raises DataContractError: a file's columns differ from its contract's.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise MissingInputError(f"Source folder {src_dir} does not exist.")
    found: list[SourceFile] = []
    for path in sorted(src_dir.iterdir()):
        fmt = _SUFFIXES.get(path.suffix.lower())
        contract = contract_for_file(path.name[: -len(path.suffix)]) if fmt else None
        if contract is None:
            if path.is_file() and not path.name.startswith("."):
                log.info("Ignoring %s: not a contract file (browsing_train, search_train, sku_to_content).", path.name)
            continue
        _check_columns(path, contract, _file_columns(path, fmt))
        found.append(SourceFile(path, contract, fmt))
    if not found:
        raise MissingInputError(
            f"No contract file in {src_dir}: expected browsing_train, search_train or "
            "sku_to_content as .parquet or .csv."
        )
    return found


def _file_columns(path: Path, fmt: str) -> list[str]:
    if fmt == "parquet":
        return pq.read_schema(path).names
    with path.open("r", encoding="utf-8", newline="") as fh:
        header = fh.readline().strip("\r\n\ufeff")
    return [c.strip().strip('"') for c in header.split(",")] if header else []


def _check_columns(path: Path, contract: TableContract, columns: list[str]) -> None:
    expected = list(contract.columns)
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing or extra:
        raise DataContractError(
            f"{path.name} does not match the {contract.name} contract: "
            f"missing columns {missing}, unexpected columns {extra}; "
            f"expected exactly {expected}. Nothing was loaded."
        )


def _coerce(batch: pa.RecordBatch | pa.Table, source: SourceFile) -> pa.Table:
    """Cast a batch to the contract's types; empty CSV strings become nulls."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    arrays = []
    for f in source.contract.schema:
        col = table.column(f.name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
        try:
            arrays.append(col.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataContractError(
                f"{source.path.name}: column {f.name} cannot be read as {f.type} ({exc}). "
                "Nothing was loaded."
            ) from None
    return pa.Table.from_arrays(arrays, schema=source.contract.schema)


def read_batches(
    source: SourceFile,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    batch_size: int = 1_000_000,
) -> Iterator[pa.Table]:
    """Stream a contract file as typed Arrow tables, optionally sliced by event time.

    :param since_ms: keep events at or after this epoch-ms (timed tables only).
    :param until_ms: keep events before this epoch-ms (timed tables only).
    :param batch_size: rows per yielded table.
    """
    contract = source.contract
    if source.fmt == "parquet":
        dataset = ds.dataset(source.path, format="parquet")
        expr = None
        if contract.time_column and (since_ms is not None or until_ms is not None):
            col = ds.field(contract.time_column)
            if since_ms is not None:
                expr = col >= since_ms
            if until_ms is not None:
                expr = (col < until_ms) if expr is None else expr & (col < until_ms)
        scanner = dataset.scanner(columns=list(contract.columns), filter=expr, batch_size=batch_size)
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield _coerce(batch, source)
        return
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in contract.columns},
        strings_can_be_null=False,
        include_columns=list(contract.columns),
    )
    reader = pacsv.open_csv(
        source.path,
        read_options=pacsv.ReadOptions(block_size=64 << 20),
        convert_options=convert,
    )
    for batch in reader:
        table = _coerce(batch, source)
        if contract.time_column and (since_ms is not None or until_ms is not None):
            ts = table.column(contract.time_column)
            mask = pa.array([True] * table.num_rows)
            if since_ms is not None:
                mask = pc.and_(mask, pc.greater_equal(ts, since_ms))
            if until_ms is not None:
                mask = pc.and_(mask, pc.less(ts, until_ms))
            table = table.filter(mask)
        if table.num_rows:
            yield table


def _stamp(table: pa.Table, batch_id: str, ingested_at: datetime,
           arrival: pa.Array | None = None) -> pa.Table:
    """Add the raw log's columns; ``arrival`` (epoch ms per row) defaults to ``ingested_at``."""
    n = table.num_rows
    table = table.append_column("batch_id", pa.array([batch_id] * n, pa.string()))
    stamp = pa.scalar(ingested_at.replace(tzinfo=None), pa.timestamp("us"))
    table = table.append_column("ingested_at", pa.repeat(stamp, n))
    if arrival is None:
        arrival = pa.repeat(pa.scalar(int(ingested_at.timestamp() * 1000), pa.int64()), n)
    return table.append_column("arrival_ts_ms", arrival)


class _Streams:
    """Arrow streams of the files to load; remembers a contract error raised mid-stream.

    A warehouse client reading the stream wraps exceptions in its own type; the
    original :class:`DataContractError` is what the user must see.
    """

    def __init__(self, sources: list[SourceFile], batch_id: str, ingested_at: datetime,
                 arrival: str = "load", **slice_: int | None) -> None:
        self.sources, self.batch_id, self.ingested_at, self.slice = sources, batch_id, ingested_at, slice_
        self.arrival = arrival
        self.error: DataContractError | None = None

    def _batches(self, source: SourceFile) -> Iterator[pa.RecordBatch]:
        time_column = source.contract.time_column
        try:
            for table in read_batches(source, **self.slice):
                arrival = (table.column(time_column).combine_chunks()
                           if self.arrival == "event" and time_column else None)
                yield from _stamp(table, self.batch_id, self.ingested_at, arrival).to_batches()
        except DataContractError as exc:
            self.error = exc
            raise

    def __iter__(self) -> Iterator[tuple[TableContract, pa.RecordBatchReader]]:
        for source in self.sources:
            schema = source.contract.log_schema
            yield source.contract, pa.RecordBatchReader.from_batches(schema, self._batches(source))


def load_dir(
    src_dir: Path,
    warehouse: Warehouse,
    *,
    batch_id: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    tables: Iterable[str] | None = None,
    skip_loaded: bool = False,
    arrival: str = "load",
) -> LoadSummary:
    """Append the contract files of ``src_dir`` to the raw log, all-or-nothing.

    A time slice (``since_ms``/``until_ms``) filters the event tables (browsing, search);
    the catalogue has no event time and is loaded whole unless ``tables`` leaves it out.
    The hourly replay ingests one interval with ``tables=EVENT_TABLES``.

    :param src_dir: folder with the contract files.
    :param warehouse: where the raw log lives.
    :param batch_id: stamped on every row; default ``load:<folder>:<UTC time>``.
    :param since_ms: first event time included (epoch ms).
    :param until_ms: first event time excluded (epoch ms).
    :param tables: load only these contract tables (default: every file found).
    :param skip_loaded: skip tables that already hold ``batch_id`` (idempotent re-runs).
    :param arrival: ``arrival_ts_ms`` of the rows: ``load`` (the load time, for files a user
        brings) or ``event`` (each event's own time, for a replay source standing in for a
        collector; the catalogue, which has no event time, arrives at the load time).
    :raises DataContractError: a file breaks the contract; nothing is appended.
    :raises ValueError: ``arrival`` is neither.
    """
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival={arrival!r}: use one of {ARRIVALS}.")
    started = time.perf_counter()
    now = datetime.now(UTC)
    batch_id = batch_id or f"load:{Path(src_dir).name}:{now.strftime('%Y%m%dT%H%M%SZ')}"
    sources = discover(src_dir)
    if tables is not None:
        wanted = set(tables)
        sources = [s for s in sources if s.contract.name in wanted]
    warehouse.ensure_raw_tables()
    summary = LoadSummary(batch_id)
    todo = []
    for source in sources:
        if skip_loaded and warehouse.batch_loaded(source.contract, batch_id):
            log.info("%s already holds batch %s: skipped.", source.contract.name, batch_id)
            summary.skipped.append(source.contract.name)
            continue
        todo.append(source)
    streams = _Streams(todo, batch_id, now, arrival, since_ms=since_ms, until_ms=until_ms)
    try:
        summary.rows = warehouse.append(streams)
    except Exception:
        if streams.error is not None:
            raise streams.error from None
        raise
    summary.seconds = time.perf_counter() - started
    for table, rows in summary.rows.items():
        log.info("Appended %d rows to %s.%s (batch %s).", rows, warehouse.raw_schema, table, batch_id)
    return summary
