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
