"""The warehouse the raw log and the marts live in: DuckDB (embedded default) or Snowflake.

Both speak the same small interface, :class:`Warehouse`: create the raw-log tables,
append an Arrow stream to one of them in a single transaction, answer a few questions
(row counts, whether a batch is already loaded, events of a time range or per hour), and
read the marts a training run needs. Only this module knows each backend's SQL dialect and
client; the queries the two backends share are written once, as the ``_*_sql`` functions.

Snowflake is reached with plain ``snowflake.connector.connect`` arguments. Airflow tasks
build the warehouse from the Airflow connection (``plugins/hooks/warehouse.py``); a process
outside Airflow (the CLI, a training flow) reads the arguments as JSON from
``SKIFF_SNOWFLAKE_CONNECT`` (:func:`snowflake_params_from_env`), which the task launching a
flow sets (:func:`snowflake_connect_env`). Its value is a secret: nothing here logs it.
"""

# Longer than ~400 lines on purpose: this is the one module that writes warehouse SQL, so
# both backends, their shared queries and how to connect to them stay side by side.

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from skiff.config import WarehouseConfig
from skiff.exceptions import DataContractError, MissingInputError, SkiffConfigError
from skiff.data.contract import BROWSING, LANDING_TABLES, TableContract

__all__ = [
    "SNOWFLAKE_CONNECT_ENV",
    "Warehouse",
    "DuckDBWarehouse",
    "SnowflakeWarehouse",
    "snowflake_connect_env",
    "snowflake_connector",
    "snowflake_params_from_env",
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
    """What Skiff needs from a warehouse: the raw log it appends to, the marts it reads."""

    raw_schema: str

    def ensure_raw_tables(self) -> None:
        """Create the raw schema and its contract tables if they are missing."""

    def append(self, batches: Iterable[tuple[TableContract, pa.RecordBatchReader]]) -> dict[str, int]:
        """Append each stream to its raw table, all-or-nothing; return rows appended per table."""

    def batch_loaded(self, contract: TableContract, batch_id: str) -> bool:
        """Whether rows of ``batch_id`` are already in the raw table of ``contract``."""

    def row_counts(self, schema: str, tables: Iterable[str]) -> dict[str, int | None]:
        """Row count of each table (``None`` when it does not exist)."""

    def count_events(self, start_ms: int, end_ms: int) -> int:
        """Raw browsing events whose event time is in ``[start_ms, end_ms)`` (epoch ms);
        0 when the raw log does not exist yet."""

    def events_per_hour(self, since_ms: int, until_ms: int) -> dict[int, int]:
        """Raw browsing events of each hour in ``[since_ms, until_ms)``, by epoch hour
        (``ms // 3_600_000``); hours without events are absent."""

    def records(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a small query (aggregates a suite's parameters need), as tuples."""

    def read_marts(self, schema: str, columns: Mapping[str, Sequence[str]], *,
                   since: datetime | None = None,
                   until: datetime | None = None) -> dict[str, pa.Table]:
        """The ``columns`` of each mart as Arrow (lower-case names); marts with sessions
        only those started in ``[since, until)``, ordered by ``session_start_at, session_id``."""

    def latest_sessions_start(self, schema: str, sessions: int, *,
                              until: datetime | None = None) -> datetime | None:
        """Start of the ``sessions``-th latest session started before ``until`` (``None`` with
        fewer), so the latest ``sessions`` sessions are those starting at or after it."""

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
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        """A connection to the file; ``read_only`` lets other processes read it at once
        (the two training flows), and needs the file to exist."""
        import duckdb

        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def ensure_raw_tables(self) -> None:
        with self.connect() as con:
            con.execute(f"create schema if not exists {self.raw_schema}")
            for contract in LANDING_TABLES:
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

    def count_events(self, start_ms: int, end_ms: int) -> int:
        if not self.path.exists():
            return 0
        with self.connect() as con:
            try:
                return con.execute(_events_sql(self.raw_schema, start_ms, end_ms)).fetchall()[0][0]
            except Exception as exc:  # duckdb.CatalogException: no raw table yet
                if not _is_missing(exc, BROWSING.name):
                    raise
                return 0

    def events_per_hour(self, since_ms: int, until_ms: int) -> dict[int, int]:
        with self.connect() as con:
            rows = con.execute(_events_sql(self.raw_schema, since_ms, until_ms, per_hour=True))
            return {int(hour): int(events) for hour, events in rows.fetchall()}

    def records(self, sql: str) -> list[tuple[Any, ...]]:
        with self.connect() as con:
            return con.execute(sql).fetchall()

    def read_marts(self, schema: str, columns: Mapping[str, Sequence[str]], *,
                   since: datetime | None = None,
                   until: datetime | None = None) -> dict[str, pa.Table]:
        with self.connect(read_only=True) as con:
            return _read_marts(lambda sql: _duckdb_arrow(con, sql), schema, columns, since, until)

    def latest_sessions_start(self, schema: str, sessions: int, *,
                              until: datetime | None = None) -> datetime | None:
        with self.connect(read_only=True) as con:
            rows = con.execute(_latest_sessions_sql(schema, sessions, until)).fetchall()
        return rows[0][0] if rows else None

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
        ``SnowflakeHook(conn_id).get_conn``; elsewhere :func:`snowflake_connector` of the
        connector's arguments).
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
            for contract in LANDING_TABLES:
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

    def count_events(self, start_ms: int, end_ms: int) -> int:
        with self._cursor() as (_, cur):
            try:
                cur.execute(_events_sql(self.raw_schema, start_ms, end_ms))
            except Exception as exc:  # ProgrammingError: no raw table yet
                if not _is_missing(exc, BROWSING.name):
                    raise
                return 0
            return cur.fetchone()[0]

    def events_per_hour(self, since_ms: int, until_ms: int) -> dict[int, int]:
        with self._cursor() as (_, cur):
            cur.execute(_events_sql(self.raw_schema, since_ms, until_ms, per_hour=True))
            return {int(hour): int(events) for hour, events in cur.fetchall()}

    def records(self, sql: str) -> list[tuple[Any, ...]]:
        with self._cursor() as (_, cur):
            cur.execute(sql)
            return [tuple(row) for row in cur.fetchall()]

    def read_marts(self, schema: str, columns: Mapping[str, Sequence[str]], *,
                   since: datetime | None = None,
                   until: datetime | None = None) -> dict[str, pa.Table]:
        with self._cursor() as (_, cur):
            return _read_marts(lambda sql: _dbapi_arrow(cur, sql), schema, columns, since, until)

    def latest_sessions_start(self, schema: str, sessions: int, *,
                              until: datetime | None = None) -> datetime | None:
        with self._cursor() as (_, cur):
            cur.execute(_latest_sessions_sql(schema, sessions, until))
            row = cur.fetchone()
        return row[0] if row else None

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


# --------------------------------------------------------------------------- shared queries

_HOUR_MS = 3_600_000
_SESSION_START = "session_start_at"


def _events_sql(schema: str, start_ms: int, end_ms: int, *, per_hour: bool = False) -> str:
    """Raw browsing events in ``[start_ms, end_ms)``: their count, or ``(hour, events)`` rows.

    Cheap on both backends: one column over a bounded time range of a log clustered on it.
    """
    ts = BROWSING.time_column
    where = f"where {ts} >= {int(start_ms)} and {ts} < {int(end_ms)}"
    if per_hour:
        return (f"select cast(floor({ts} / {_HOUR_MS}) as bigint) as hour, count(*) as events "
                f"from {schema}.{BROWSING.name} {where} group by 1")
    return f"select count(*) from {schema}.{BROWSING.name} {where}"


def _mart_sql(schema: str, table: str, columns: Sequence[str],
              since: datetime | None, until: datetime | None) -> str:
    sql = f"select {', '.join(columns)} from {_identifier(schema)}.{table}"
    if _SESSION_START in columns:
        sql += _session_filter(since, until) + f" order by {_SESSION_START}, session_id"
    return sql


def _latest_sessions_sql(schema: str, sessions: int, until: datetime | None) -> str:
    if int(sessions) < 1:
        raise SkiffConfigError(f"sessions={sessions} must be at least 1.")
    return (f"select {_SESSION_START} from {_identifier(schema)}.fct_sessions"
            f"{_session_filter(None, until)} order by {_SESSION_START} desc "
            f"limit 1 offset {int(sessions) - 1}")


def _session_filter(since: datetime | None, until: datetime | None) -> str:
    clauses = []
    if since is not None:
        clauses.append(f"{_SESSION_START} >= cast('{_sql_ts(since)}' as timestamp)")
    if until is not None:
        clauses.append(f"{_SESSION_START} < cast('{_sql_ts(until)}' as timestamp)")
    return (" where " + " and ".join(clauses)) if clauses else ""


def _sql_ts(value: datetime) -> str:
    if not isinstance(value, datetime):
        raise SkiffConfigError(f"Expected a datetime, got {value!r}.")
    return value.replace(tzinfo=None).isoformat(sep=" ")


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _identifier(schema: str) -> str:
    if not _IDENTIFIER.match(schema):
        raise SkiffConfigError(f"Marts schema {schema!r} is not a valid identifier "
                               "(letters, digits, _); check SKIFF_MARTS_SCHEMA.")
    return schema


def _read_marts(arrow: Callable[[str], pa.Table], schema: str,
                columns: Mapping[str, Sequence[str]], since: datetime | None,
                until: datetime | None) -> dict[str, pa.Table]:
    """Each mart through ``arrow`` (a backend's query-to-Arrow), its errors made Skiff's."""
    tables = {}
    for name, cols in columns.items():
        sql = _mart_sql(schema, name, cols, since, until)
        try:
            tables[name] = arrow(sql)
        except Exception as exc:  # the drivers raise their own types; only "missing" is ours
            missing = _missing_columns(exc, cols)
            if missing:
                raise DataContractError(
                    f"Mart {schema}.{name} lacks column(s) {missing}: {exc}") from exc
            if _is_missing(exc, name):
                raise MissingInputError(
                    f"Mart {schema}.{name} does not exist; run `dbt build` first.") from exc
            raise
    return tables


def _is_missing(exc: Exception, table: str) -> bool:
    text = str(exc).lower()
    return table in text and any(s in text for s in (
        "does not exist", "not found", "no such table", "catalog error"))


#: How DuckDB (and fakesnow) and Snowflake name a column a query asks for and a table lacks.
_UNKNOWN_COLUMN = re.compile(
    r"""referenced column "([^"]+)" not found|invalid identifier '([^']+)'""")


def _missing_columns(exc: Exception, columns: Sequence[str]) -> list[str]:
    named = {a or b for a, b in _UNKNOWN_COLUMN.findall(str(exc).lower())}
    return [c for c in columns if c.lower() in named]


def _duckdb_arrow(con: Any, sql: str) -> pa.Table:
    """A DuckDB query straight to Arrow, lower-case column names."""
    relation = con.sql(sql)
    for method in ("to_arrow_table", "fetch_arrow_table", "arrow"):  # newest API first
        if hasattr(relation, method):
            table = getattr(relation, method)()
            break
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    return table.rename_columns([name.lower() for name in table.column_names])


def _dbapi_arrow(cursor: Any, sql: str) -> pa.Table:
    """A DB-API query as Arrow, lower-case column names (Snowflake's are upper-case):
    ``fetch_arrow_all()`` when the cursor has it (Snowflake), else ``fetchall()``."""
    cursor.execute(sql)
    table = cursor.fetch_arrow_all() if hasattr(cursor, "fetch_arrow_all") else None
    names = [d[0] for d in cursor.description]
    if table is None:  # Snowflake: no rows; generic DB-API: no Arrow at all
        rows = cursor.fetchall()
        table = pa.Table.from_pylist([dict(zip(names, r)) for r in rows]) if rows \
            else pa.table({n: pa.array([], pa.null()) for n in names})
    return table.rename_columns([name.lower() for name in table.column_names])


# --------------------------------------------------------------------------- connecting

#: Environment variable with ``snowflake.connector.connect`` arguments as a JSON object, for
#: processes outside Airflow. A secret (it holds the password or key): never log it.
SNOWFLAKE_CONNECT_ENV = "SKIFF_SNOWFLAKE_CONNECT"


def snowflake_params_from_env() -> dict[str, Any]:
    """Snowflake connector arguments from ``SKIFF_SNOWFLAKE_CONNECT`` (a JSON object).

    :return: keyword arguments for ``snowflake.connector.connect``.
    :raises SkiffConfigError: the variable is unset, not JSON, or not an object (the message
        never quotes the value).
    """
    raw = os.environ.get(SNOWFLAKE_CONNECT_ENV)
    if not raw:
        raise SkiffConfigError(
            f"SKIFF_WAREHOUSE=snowflake outside Airflow needs {SNOWFLAKE_CONNECT_ENV}: the "
            'snowflake.connector.connect arguments as JSON, e.g. {"account": ..., "user": ..., '
            '"password": ..., "database": ..., "warehouse": ...}. A training flow launched by '
            "Airflow gets it from the task, resolved from the connection SKIFF_SNOWFLAKE_CONN_ID."
        )
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SkiffConfigError(f"{SNOWFLAKE_CONNECT_ENV} is not valid JSON "
                               f"({exc.msg} at position {exc.pos}).") from None
    if not isinstance(params, dict) or not params:
        raise SkiffConfigError(f"{SNOWFLAKE_CONNECT_ENV} must be a JSON object of "
                               "snowflake.connector.connect arguments.")
    return params


def snowflake_connect_env(params: Mapping[str, Any]) -> dict[str, str]:
    """``{SKIFF_SNOWFLAKE_CONNECT: <JSON>}`` of connector arguments, the inverse of
    :func:`snowflake_params_from_env`.

    Empty values are left out; a ``private_key`` object (as the Airflow provider resolves
    it) becomes base64 DER, which the connector accepts as well.

    :param params: ``snowflake.connector.connect`` arguments.
    :raises SkiffConfigError: a value JSON cannot hold (the message names the argument).
    """
    out = {k: v for k, v in params.items() if v not in (None, "")}
    key = out.get("private_key")
    if key is not None and not isinstance(key, (str, bytes)):
        from cryptography.hazmat.primitives import serialization

        key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    if isinstance(key, bytes):
        out["private_key"] = base64.b64encode(key).decode()
    for name, value in out.items():
        try:
            json.dumps(value)
        except TypeError:
            raise SkiffConfigError(
                f"Snowflake connection argument {name!r} ({type(value).__name__}) cannot be "
                "passed on as JSON.") from None
    return {SNOWFLAKE_CONNECT_ENV: json.dumps(out)}


def snowflake_connector(params: Mapping[str, Any]) -> Callable[[], Any]:
    """A connection factory for :class:`SnowflakeWarehouse`.

    :param params: ``snowflake.connector.connect`` arguments.
    """
    params = dict(params)

    def connect() -> Any:
        import snowflake.connector

        return snowflake.connector.connect(**params)

    return connect


def warehouse_from_config(config: WarehouseConfig,
                          snowflake_params: Mapping[str, Any] | None = None) -> Warehouse:
    """The warehouse the configuration names (the CLI, the flows; Airflow builds it from a hook).

    :param config: the warehouse settings.
    :param snowflake_params: connector arguments on Snowflake; default
        :func:`snowflake_params_from_env`.
    """
    if config.backend == "duckdb":
        return DuckDBWarehouse(config.duckdb_path, config.raw_schema)
    params = snowflake_params_from_env() if snowflake_params is None else snowflake_params
    return SnowflakeWarehouse(snowflake_connector(params), config.raw_schema)


# ------------------------------------------------------------------ landing ingest helpers
# The landing ingest (skiff.data.ingest) appends an interval's landing files all or nothing:
# DuckDB in one transaction; Snowflake by a PUT to a named stage, then COPY INTO each table
# and the ledger rows in one transaction. Its SQL lives here with the rest of each backend's.

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
    return [(c, [f for f in files if f.contract.name == c.name]) for c in LANDING_TABLES
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
