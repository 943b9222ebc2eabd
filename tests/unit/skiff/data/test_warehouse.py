"""The warehouse's questions and mart reads, the same on DuckDB and (fakesnow) Snowflake."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from skiff.data import DuckDBWarehouse, SnowflakeWarehouse, warehouse_from_config
from skiff.config import WarehouseConfig
from skiff.exceptions import DataContractError, MissingInputError, SkiffConfigError

pytestmark = pytest.mark.filterwarnings("ignore:::fakesnow")

HOUR = 3_600_000
H0 = 490_000  # an epoch hour (2025-11-24 16:00 UTC)
#: Raw events by epoch hour: the warehouses below hold exactly these.
EVENTS = {H0: 3, H0 + 1: 2, H0 + 3: 4}
SESSIONS = [("s3", "2024-05-01 12:00:00"), ("s1", "2024-05-01 10:00:00"),
            ("s2", "2024-05-01 11:00:00"), ("s4", "2024-05-01 13:00:00")]
COLUMNS = {"fct_sessions": ("session_id", "session_start_at"), "dim_products": ("sku",)}


def _fill(execute) -> None:
    """The same rows on either backend, through its own ``execute``."""
    execute("create schema if not exists raw")
    execute("create table if not exists raw.browsing_train (server_timestamp_epoch_ms bigint)")
    for hour, n in EVENTS.items():
        for i in range(n):
            execute(f"insert into raw.browsing_train values ({hour * HOUR + i * 60_000})")
    execute("create schema if not exists marts")
    execute("create table marts.fct_sessions (session_id varchar, session_start_at timestamp)")
    for session, start in SESSIONS:
        execute(f"insert into marts.fct_sessions values ('{session}', '{start}')")
    execute("create table marts.dim_products (sku varchar)")
    execute("insert into marts.dim_products values ('p1'), ('p2')")


@pytest.fixture
def duck(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as con:
        _fill(con.execute)
    return warehouse


@pytest.fixture
def snow(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnowflakeWarehouse]:
    fakesnow = pytest.importorskip("fakesnow")
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(
        {"conn_type": "snowflake", "login": "skiff", "password": "pw",
         "extra": {"account": "acme-test", "database": "SKIFF"}}))
    with fakesnow.patch(create_database_on_connect=True):
        warehouse = warehouse_from_config(WarehouseConfig(backend="snowflake"))
        with warehouse._cursor() as (_, cur):
            _fill(cur.execute)
        yield warehouse


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(request: pytest.FixtureRequest):
    return request.getfixturevalue({"duckdb": "duck", "snowflake": "snow"}[request.param])


def test_events_of_a_time_range_and_per_hour(warehouse) -> None:
    assert warehouse.count_events(H0 * HOUR, (H0 + 4) * HOUR) == 9
    assert warehouse.count_events(H0 * HOUR + 120_000, (H0 + 3) * HOUR) == 3  # [start, end)
    assert warehouse.events_per_hour((H0 - 24) * HOUR, (H0 + 3) * HOUR) == {H0: 3, H0 + 1: 2}
    assert warehouse.events_per_hour((H0 + 1) * HOUR, (H0 + 9) * HOUR) == {H0 + 1: 2, H0 + 3: 4}


def test_marts_are_read_ordered_and_limited_to_their_sessions(warehouse) -> None:
    tables = warehouse.read_marts("marts", COLUMNS)
    assert tables["fct_sessions"].column_names == ["session_id", "session_start_at"]
    assert tables["fct_sessions"]["session_id"].to_pylist() == ["s1", "s2", "s3", "s4"]
    assert tables["dim_products"].num_rows == 2
    window = warehouse.read_marts("marts", COLUMNS, since=datetime(2024, 5, 1, 11),
                                  until=datetime(2024, 5, 1, 13))
    assert window["fct_sessions"]["session_id"].to_pylist() == ["s2", "s3"]
    assert window["dim_products"].num_rows == 2  # no sessions in it: read whole


def test_latest_sessions_start(warehouse) -> None:
    assert warehouse.latest_sessions_start("marts", 1) == datetime(2024, 5, 1, 13)
    assert warehouse.latest_sessions_start("marts", 2, until=datetime(2024, 5, 1, 13)) == \
        datetime(2024, 5, 1, 11)
    assert warehouse.latest_sessions_start("marts", 5) is None  # fewer sessions than that
    with pytest.raises(SkiffConfigError, match="at least 1"):
        warehouse.latest_sessions_start("marts", 0)


def test_missing_marts_and_columns_are_named(warehouse) -> None:
    with pytest.raises(MissingInputError, match=r"Mart raw\.fct_sessions does not exist"):
        warehouse.read_marts("raw", COLUMNS)
    with pytest.raises(DataContractError, match=r"marts\.dim_products lacks column\(s\) \['price'\]"):
        warehouse.read_marts("marts", {"dim_products": ("sku", "price")})
    with pytest.raises(SkiffConfigError, match="SKIFF_MARTS_SCHEMA"):
        warehouse.read_marts("marts; drop table x", COLUMNS)


def test_no_raw_log_has_no_events(tmp_path: Path) -> None:
    absent = DuckDBWarehouse(tmp_path / "absent.duckdb")
    assert absent.count_events(0, H0 * HOUR) == 0
    assert not absent.path.exists()  # asking does not create the warehouse
    with absent.connect() as con:
        con.execute("create schema raw")
    assert absent.count_events(0, H0 * HOUR) == 0


def test_marts_through_a_plain_dbapi_connection(tmp_path: Path) -> None:
    """Any DB-API connection works: no ``fetch_arrow_all``, upper-case names, no rows."""
    marts = tmp_path / "marts.sqlite"
    with sqlite3.connect(marts) as lite:
        lite.execute("create table dim_products (SKU text, Price integer)")
        lite.executemany("insert into dim_products values (?, ?)", [("p1", 3), ("p2", 7)])
        lite.execute("create table empty (sku text)")

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(":memory:")
        con.execute("attach database ? as marts", [str(marts)])
        return con

    tables = SnowflakeWarehouse(connect).read_marts(
        "marts", {"dim_products": ("SKU", "Price"), "empty": ("sku",)})
    assert tables["dim_products"].column_names == ["sku", "price"]
    assert tables["dim_products"]["price"].to_pylist() == [3, 7]
    assert tables["empty"].num_rows == 0 and tables["empty"].column_names == ["sku"]
