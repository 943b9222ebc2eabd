"""The warehouse the raw log lives in: DuckDB (embedded default) or Snowflake.

Both speak the same small interface, :class:`Warehouse`: create the raw-log tables,
append an Arrow stream to one of them in a single transaction, and answer a few
questions (row counts, whether a batch is already loaded). Only this module knows
each backend's SQL dialect and client.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from skiff.config import WarehouseConfig
from skiff.exceptions import SkiffConfigError
from skiff.data.contract import TABLES, TableContract

__all__ = [
    "Warehouse",
    "DuckDBWarehouse",
    "SnowflakeWarehouse",
    "snowflake_params_from_airflow_env",
    "warehouse_from_config",
    "LEDGER_TABLE",
    "LEDGER_COLUMNS",
    "LANDING_STAGE",
    "LandedFile",
]

log = logging.getLogger(__name__)

_SQL_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.timestamp("us"): "TIMESTAMP",
}


def _create_table_sql(schema: str, contract: TableContract, types: dict[pa.DataType, str]) -> str:
    cols = ", ".join(f"{f.name} {types[f.type]}" for f in contract.log_schema)
    return f"create table if not exists {schema}.{contract.name} ({cols})"


def _add_log_columns_sql(schema: str, contract: TableContract,
                         types: dict[pa.DataType, str]) -> list[str]:
    """Add the raw log's own columns to a table made before one of them existed.

    ``arrival_ts_ms`` came after the first raw tables; rows appended before it keep null
    (the sessions they touched were built when they were appended).
    """
    return [f"alter table {schema}.{contract.name} add column if not exists {f.name} "
            f"{types[f.type]}" for f in contract.log_schema if f.name not in contract.columns]


class Warehouse(Protocol):
    """What Skiff needs from a warehouse for the raw log."""

    raw_schema: str

    def ensure_raw_tables(self) -> None:
        """Create the raw schema and its contract tables if they are missing."""

    def append(self, batches: Iterable[tuple[TableContract, pa.RecordBatchReader]]) -> dict[str, int]:
        """Append each stream to its raw table, all-or-nothing; return rows appended per table."""

    def batch_loaded(self, contract: TableContract, batch_id: str) -> bool:
        """Whether rows of ``batch_id`` are already in the raw table of ``contract``."""

    def row_counts(self, schema: str, tables: Iterable[str]) -> dict[str, int | None]:
        """Row count of each table (``None`` when it does not exist)."""

    def ensure_ingest_ledger(self) -> None:
        """Create the ingest ledger (and, on Snowflake, the landing stage) if missing."""

    def ledger_files(self, keys: Iterable[str]) -> dict[str, tuple[int, str]]:
        """The ledger's ``(size, checksum)`` of each of ``keys`` it holds, by key."""

    def ledger_checksums(self, checksums: Iterable[str]) -> dict[str, str]:
        """The ledger's file of each of ``checksums`` it holds, by checksum."""

    def ingest_landed(self, files: list[LandedFile], batch_id: str,
                      ingested_at: datetime) -> dict[str, int]:
        """Append landing files' events and their ledger rows in one transaction."""


class DuckDBWarehouse:
    """Raw log in a DuckDB file.

    :param path: the database file; its folder is created on first use.
    :param raw_schema: schema of the raw-log tables.
    """

    def __init__(self, path: Path, raw_schema: str = "raw") -> None:
        self.path = Path(path)
        self.raw_schema = raw_schema

    @contextmanager
    def connect(self) -> Iterator[Any]:
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path))
        try:
            yield con
        finally:
            con.close()

    def ensure_raw_tables(self) -> None:
        with self.connect() as con:
            con.execute(f"create schema if not exists {self.raw_schema}")
            for contract in TABLES:
                con.execute(_create_table_sql(self.raw_schema, contract, _SQL_TYPES))
                for sql in _add_log_columns_sql(self.raw_schema, contract, _SQL_TYPES):
                    con.execute(sql)

    def append(self, batches: Iterable[tuple[TableContract, pa.RecordBatchReader]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.connect() as con:
            con.execute("begin transaction")
            try:
                for contract, reader in batches:
                    con.register("_skiff_batch", reader)
                    cols = ", ".join(contract.log_schema.names)
                    # in event-time order: the log stays clustered on time whatever order a
                    # delivery comes in, so an hour's scan prunes the rest (zonemaps)
                    order = f" order by {contract.time_column}" if contract.time_column else ""
                    inserted = con.execute(
                        f"insert into {self.raw_schema}.{contract.name} ({cols}) "
                        f"select {cols} from _skiff_batch{order}"
                    ).fetchall()[0][0]
                    con.unregister("_skiff_batch")
                    counts[contract.name] = counts.get(contract.name, 0) + inserted
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return counts

    def batch_loaded(self, contract: TableContract, batch_id: str) -> bool:
        if not self.path.exists():
            return False
        with self.connect() as con:
            row = con.execute(
                f"select count(*) from {self.raw_schema}.{contract.name} where batch_id = ?",
                [batch_id],
            ).fetchall()
        return row[0][0] > 0

    def row_counts(self, schema: str, tables: Iterable[str]) -> dict[str, int | None]:
        counts: dict[str, int | None] = {}
        with self.connect() as con:
            existing = {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = ?",
                    [schema],
                ).fetchall()
            }
            for table in tables:
                counts[table] = (
                    con.execute(f"select count(*) from {schema}.{table}").fetchall()[0][0]
                    if table in existing
                    else None
                )
        return counts

    # ------------------------------------------------------------- landing ingest

    def ensure_ingest_ledger(self) -> None:
        with self.connect() as con:
            con.execute(f"create schema if not exists {self.raw_schema}")
            con.execute(_ledger_table_sql(self.raw_schema, _SQL_TYPES))

    def ledger_files(self, keys: Iterable[str]) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        with self.connect() as con:
            for chunk in _chunks(list(keys)):
                rows = con.execute(
                    f"select file, size, checksum from {self.raw_schema}.{LEDGER_TABLE} "
                    "where file in (select unnest(?::varchar[]))", [chunk]).fetchall()
                found.update({file: (size, checksum) for file, size, checksum in rows})
        return found

    def ledger_checksums(self, checksums: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.connect() as con:
            for chunk in _chunks(list(checksums)):
                rows = con.execute(
                    f"select checksum, min(file) from {self.raw_schema}.{LEDGER_TABLE} "
                    "where checksum in (select unnest(?::varchar[])) group by checksum",
                    [chunk]).fetchall()
                found.update(dict(rows))
        return found

    def ingest_landed(self, files: list[LandedFile], batch_id: str,
                      ingested_at: datetime) -> dict[str, int]:
        """One DuckDB transaction: each table's events (in event-time order), then the ledger."""
        counts: dict[str, int] = {}
        with self.connect() as con:
            con.execute("begin transaction")
            try:
                for contract, group in _by_table(files):
                    counts[contract.name] = self._append_landed(
                        con, contract, _landed_rows(contract, group, batch_id, ingested_at))
                con.executemany(
                    f"insert into {self.raw_schema}.{LEDGER_TABLE} ({', '.join(LEDGER_COLUMNS)}) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    _ledger_rows(files, batch_id, ingested_at))
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return counts

    def _append_landed(self, con: Any, contract: TableContract, rows: pa.Table) -> int:
        """Insert one table's stamped rows inside the caller's transaction; rows inserted."""
        con.register("_skiff_landed", rows)
        cols = ", ".join(contract.log_schema.names)
        # in event-time order, as the loader appends: late events sit together at the start
        # of the batch, and the log stays clustered on time for the hourly scans
        order = f" order by {contract.time_column}" if contract.time_column else ""
        inserted = con.execute(
            f"insert into {self.raw_schema}.{contract.name} ({cols}) "
            f"select {cols} from _skiff_landed{order}"
        ).fetchall()[0][0]
        con.unregister("_skiff_landed")  # not after a failure: the transaction refuses it
        return inserted


_SNOWFLAKE_TYPES = {**_SQL_TYPES, pa.timestamp("us"): "TIMESTAMP_NTZ"}


class SnowflakeWarehouse:
    """Raw log in Snowflake, through a DB-API connection from ``snowflake-connector-python``.

    :param connect: returns a new Snowflake connection (in Airflow:
        ``SnowflakeHook(conn_id).get_conn``; elsewhere :func:`snowflake_connector`).
    :param raw_schema: schema of the raw-log tables, in the connection's database.
    """

    def __init__(self, connect: Callable[[], Any], raw_schema: str = "raw") -> None:
        self._connect = connect
        self.raw_schema = raw_schema

    @contextmanager
    def _cursor(self) -> Iterator[tuple[Any, Any]]:
        con = self._connect()
        try:
            cur = con.cursor()
            try:
                yield con, cur
            finally:
                cur.close()
        finally:
            con.close()

    def ensure_raw_tables(self) -> None:
        with self._cursor() as (_, cur):
            cur.execute(f"create schema if not exists {self.raw_schema}")
            for contract in TABLES:
                cur.execute(_create_table_sql(self.raw_schema, contract, _SNOWFLAKE_TYPES))
                for sql in _add_log_columns_sql(self.raw_schema, contract, _SNOWFLAKE_TYPES):
                    cur.execute(sql)

    def append(self, batches: Iterable[tuple[TableContract, pa.RecordBatchReader]]) -> dict[str, int]:
        from snowflake.connector.pandas_tools import write_pandas

        counts: dict[str, int] = {}
        with self._cursor() as (con, cur):
            cur.execute("begin")
            try:
                for contract, reader in batches:
                    frame = reader.read_all().to_pandas()
                    if frame.empty:
                        counts.setdefault(contract.name, 0)
                        continue
                    frame.columns = [c.upper() for c in frame.columns]
                    ok, _, nrows, _ = write_pandas(
                        con,
                        frame,
                        table_name=contract.name.upper(),
                        schema=self.raw_schema.upper(),
                        quote_identifiers=False,
                    )
                    if not ok:
                        raise RuntimeError(f"Snowflake rejected the append to {contract.name}")
                    counts[contract.name] = counts.get(contract.name, 0) + nrows
                cur.execute("commit")
            except BaseException:
                cur.execute("rollback")
                raise
        return counts

    def batch_loaded(self, contract: TableContract, batch_id: str) -> bool:
        with self._cursor() as (_, cur):
            cur.execute(
                f"select count(*) from {self.raw_schema}.{contract.name} where batch_id = %s",
                (batch_id,),
            )
            return cur.fetchone()[0] > 0

    def row_counts(self, schema: str, tables: Iterable[str]) -> dict[str, int | None]:
        counts: dict[str, int | None] = {}
        with self._cursor() as (_, cur):
            for table in tables:
                try:
                    cur.execute(f"select count(*) from {schema}.{table}")
                    counts[table] = cur.fetchone()[0]
                except Exception as exc:  # the connector raises ProgrammingError for a missing table
                    if "does not exist" not in str(exc):
                        raise
                    counts[table] = None
        return counts

    # ------------------------------------------------------------- landing ingest

    def ensure_ingest_ledger(self) -> None:
        """The ledger and the named stage ``<raw>.skiff_landing`` (DDL: never inside a load)."""
        with self._cursor() as (_, cur):
            cur.execute(f"create schema if not exists {self.raw_schema}")
            cur.execute(_ledger_table_sql(self.raw_schema, _SNOWFLAKE_TYPES))
            cur.execute(f"create stage if not exists {self.raw_schema}.{LANDING_STAGE} "
                        "file_format = (type = json)")

    def ledger_files(self, keys: Iterable[str]) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        with self._cursor() as (_, cur):
            for chunk in _chunks(list(keys)):
                cur.execute(
                    f"select file, size, checksum from {self.raw_schema}.{LEDGER_TABLE} "
                    f"where file in ({', '.join(['%s'] * len(chunk))})", tuple(chunk))
                found.update({file: (size, checksum) for file, size, checksum in cur.fetchall()})
        return found

    def ledger_checksums(self, checksums: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._cursor() as (_, cur):
            for chunk in _chunks(list(checksums)):
                cur.execute(
                    f"select checksum, min(file) from {self.raw_schema}.{LEDGER_TABLE} "
                    f"where checksum in ({', '.join(['%s'] * len(chunk))}) group by checksum",
                    tuple(chunk))
                found.update(dict(cur.fetchall()))
        return found

    def ingest_landed(self, files: list[LandedFile], batch_id: str,
                      ingested_at: datetime) -> dict[str, int]:
        """PUT the files to the stage, then one transaction: a COPY per table, the ledger rows.

        ``write_pandas`` cannot do this: its ``CREATE TEMPORARY STAGE`` is DDL, and DDL
        commits the open transaction, so a failure after it would leave half an interval.
        Here every statement between ``BEGIN`` and ``COMMIT`` is DML (``COPY INTO``,
        ``INSERT``); the stage exists beforehand (:meth:`ensure_ingest_ledger`) and the
        files are uploaded before ``BEGIN`` under a path of their own, removed afterwards.
        """
        import tempfile
        import uuid

        counts: dict[str, int] = {}
        groups = _by_table(files)
        if not groups:
            return counts
        stage = f"{self.raw_schema}.{LANDING_STAGE}"
        path = f"{uuid.uuid4().hex}"  # one upload = one path: COPY never sees a file twice
        with tempfile.TemporaryDirectory(prefix="skiff-landed-") as tmp, \
                self._cursor() as (_, cur):
            try:
                for contract, group in groups:
                    folder = Path(tmp) / contract.name
                    folder.mkdir()
                    for file in group:
                        (folder / file.name).write_bytes(file.data)
                    self._put_files(cur, folder, f"@{stage}/{path}/{contract.name}/")
                cur.execute("begin")
                try:
                    for contract, group in groups:
                        stage_path = f"@{stage}/{path}/{contract.name}/"
                        cur.execute(_copy_landed_sql(self.raw_schema, contract, group, batch_id,
                                                     ingested_at, stage_path))
                        loaded = sum(int(row[3] or 0) for row in cur.fetchall())
                        expected = sum(f.rows for f in group)
                        if loaded != expected:
                            raise RuntimeError(
                                f"COPY INTO {self.raw_schema}.{contract.name} loaded {loaded} rows "
                                f"of {expected} from {[f.key for f in group]}; rolled back.")
                        counts[contract.name] = loaded
                    cur.executemany(
                        f"insert into {self.raw_schema}.{LEDGER_TABLE} "
                        f"({', '.join(LEDGER_COLUMNS)}) values ({', '.join(['%s'] * 7)})",
                        _ledger_rows(files, batch_id, ingested_at))
                    cur.execute("commit")
                except BaseException:
                    cur.execute("rollback")
                    raise
            finally:
                try:
                    cur.execute(f"remove @{stage}/{path}/")
                except Exception as exc:  # the load's outcome matters more than the clean-up
                    log.warning("Could not remove @%s/%s/ from the stage: %s", stage, path, exc)
        return counts

    def _put_files(self, cur: Any, folder: Path, stage_path: str) -> None:
        """Upload every file of ``folder`` to ``stage_path`` (one PUT, files as they are)."""
        cur.execute(f"put 'file://{folder.as_posix()}/*' {stage_path} "
                    "auto_compress = false overwrite = true parallel = 4")


def snowflake_params_from_airflow_env(conn_id: str) -> dict[str, Any]:
    """Snowflake connector arguments from an Airflow connection defined in the environment.

    Reads ``AIRFLOW_CONN_<CONN_ID>`` in either of Airflow's formats (JSON or URI), so the
    ``skiff`` CLI reaches the same account as the DAG without importing Airflow.

    :param conn_id: the Airflow connection id, e.g. ``snowflake_default``.
    :return: keyword arguments for ``snowflake.connector.connect``.
    """
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(var)
    if not raw:
        raise SkiffConfigError(
            f"SKIFF_WAREHOUSE=snowflake needs the Airflow connection {conn_id!r}: set {var} "
            "(JSON or URI) for the CLI, or define the connection in Airflow."
        )
    if raw.lstrip().startswith("{"):
        conn = json.loads(raw)
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        params = {"user": conn.get("login"), "password": conn.get("password"),
                  "schema": conn.get("schema"), **extra}
    else:
        url = urlsplit(raw)
        params = {"user": unquote(url.username or ""), "password": unquote(url.password or ""),
                  "schema": url.path.lstrip("/") or None, **dict(parse_qsl(url.query))}
        params.setdefault("account", url.hostname)
    return {k: v for k, v in params.items() if v not in (None, "")}


def snowflake_connector(conn_id: str) -> Callable[[], Any]:
    """A connection factory for :class:`SnowflakeWarehouse` from ``AIRFLOW_CONN_<CONN_ID>``."""
    params = snowflake_params_from_airflow_env(conn_id)

    def connect() -> Any:
        import snowflake.connector

        return snowflake.connector.connect(**params)

    return connect


def warehouse_from_config(config: WarehouseConfig) -> Warehouse:
    """The warehouse the configuration names (used by the CLI; Airflow builds it from a hook)."""
    if config.backend == "duckdb":
        return DuckDBWarehouse(config.duckdb_path, config.raw_schema)
    return SnowflakeWarehouse(snowflake_connector(config.snowflake_conn_id), config.raw_schema)


# ------------------------------------------------------------------ landing ingest helpers
# The landing ingest (skiff.data.ingest) appends an interval's landing files all or nothing:
# DuckDB in one transaction; Snowflake by a PUT to a named stage, then COPY INTO each table
# and the ledger rows in one transaction. Its SQL lives here with the rest of each backend's
# SQL, which is why this module runs past 400 lines.

#: The ingest ledger: one row per landing file appended to the raw log.
LEDGER_TABLE = "ingest_ledger"
#: Its columns: the file (``<table>/YYYY/MM/DD/HH/<name>`` under the landing zone's root),
#: its size in bytes, sha256 of its bytes, the raw table, rows appended, the batch, when.
#: (``row_count``, not ``rows``: ROWS is a reserved word in Snowflake.)
LEDGER_COLUMNS = ("file", "size", "checksum", "table_name", "row_count", "batch_id", "loaded_at")
#: Snowflake's named stage landing files are uploaded to before ``COPY INTO``.
LANDING_STAGE = "skiff_landing"
_LEDGER_TYPES = (pa.string(), pa.int64(), pa.string(), pa.string(), pa.int64(), pa.string(),
                 pa.timestamp("us"))


@dataclass(frozen=True)
class LandedFile:
    """A landing file read, checked against its contract, and ready to append.

    :param contract: the raw table its events go to.
    :param key: its place under the landing zone's root, ``<table>/YYYY/MM/DD/HH/<name>``
        (what the ledger remembers).
    :param data: its bytes as they landed (gzip NDJSON; Snowflake loads these).
    :param checksum: sha256 of ``data``, hex.
    :param events: its events: the contract's columns and ``arrival_ts_ms``.
    """

    contract: TableContract
    key: str
    data: bytes
    checksum: str
    events: pa.Table

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def rows(self) -> int:
        return self.events.num_rows


def _chunks(values: list[str], size: int = 1000) -> list[list[str]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _ledger_table_sql(schema: str, types: dict[pa.DataType, str]) -> str:
    cols = ", ".join(f"{c} {types[t]}" for c, t in zip(LEDGER_COLUMNS, _LEDGER_TYPES))
    return f"create table if not exists {schema}.{LEDGER_TABLE} ({cols})"


def _ledger_rows(files: list[LandedFile], batch_id: str, ingested_at: datetime) -> list[tuple]:
    loaded_at = ingested_at.astimezone(UTC).replace(tzinfo=None)
    return [(f.key, f.size, f.checksum, f.contract.name, f.rows, batch_id, loaded_at)
            for f in files]


def _by_table(files: list[LandedFile]) -> list[tuple[TableContract, list[LandedFile]]]:
    """Files grouped by raw table, in the contract's load order (catalogue first)."""
    return [(c, [f for f in files if f.contract.name == c.name]) for c in TABLES
            if any(f.contract.name == c.name for f in files)]


def _landed_rows(contract: TableContract, files: list[LandedFile], batch_id: str,
                 ingested_at: datetime) -> pa.Table:
    """The files' events as raw-log rows: contract columns, batch_id, ingested_at, arrival."""
    events = pa.concat_tables([f.events.select(list(contract.columns) + ["arrival_ts_ms"])
                               for f in files])
    n = events.num_rows
    stamp = pa.scalar(ingested_at.astimezone(UTC).replace(tzinfo=None), pa.timestamp("us"))
    columns = {name: events.column(name) for name in contract.columns}
    columns["batch_id"] = pa.array([batch_id] * n, pa.string())
    columns["ingested_at"] = pa.repeat(stamp, n)
    columns["arrival_ts_ms"] = events.column("arrival_ts_ms")
    return pa.table(columns, schema=contract.log_schema)


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _copy_landed_sql(schema: str, contract: TableContract, files: list[LandedFile],
                     batch_id: str, ingested_at: datetime, stage_path: str) -> str:
    """``COPY INTO`` one raw table from staged landing files, mapping JSON fields to columns.

    Each line is a JSON object (``$1``); an empty string counts as missing, as the contract
    reads it. ``batch_id`` and ``ingested_at`` are the batch's; ``arrival_ts_ms`` is the file's.
    """
    casts = {pa.string(): "varchar", pa.int64(): "bigint", pa.float64(): "double"}
    fields = []
    for f in contract.schema:
        value = f"$1:{f.name}::{casts[f.type]}"
        fields.append(f"nullif({value}, '')" if f.type == pa.string() else value)
    loaded_at = ingested_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    fields += [_sql_text(batch_id), f"{_sql_text(loaded_at)}::timestamp_ntz",
               "$1:arrival_ts_ms::bigint"]
    names = ", ".join(_sql_text(f.name) for f in files)
    select = ",\n        ".join(fields)
    return (
        f"copy into {schema}.{contract.name} ({', '.join(contract.log_schema.names)})\n"
        f"from (\n    select\n        {select}\n    from {stage_path}\n)\n"
        f"files = ({names})\n"
        "file_format = (type = json compression = gzip)\n"
        "on_error = abort_statement"
    )
