"""The warehouse's questions and mart reads, the same on DuckDB and (fakesnow) Snowflake, and
the Snowflake connector arguments a process outside Airflow gets."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from skiff.config import WarehouseConfig
from skiff.data import (
    SNOWFLAKE_CONNECT_ENV,
    DuckDBWarehouse,
    SnowflakeWarehouse,
    snowflake_connect_env,
    snowflake_params_from_env,
    warehouse_from_config,
)
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
    monkeypatch.setenv(SNOWFLAKE_CONNECT_ENV, json.dumps(
        {"user": "skiff", "password": "pw", "account": "acme-test", "database": "SKIFF"}))
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


def test_records_of_a_small_query(warehouse) -> None:
    rows = warehouse.records("select count(*) as n, max(server_timestamp_epoch_ms) as last "
                             "from raw.browsing_train")
    assert rows == [(9, (H0 + 3) * HOUR + 3 * 60_000)]


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


# --------------------------------------------------------------------------- connecting


def test_connector_arguments_round_trip_through_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    env = snowflake_connect_env({"account": "acme", "user": "svc", "password": "",
                                 "role": None, "private_key": key,
                                 "session_parameters": {"QUERY_TAG": "skiff"}})
    assert list(env) == [SNOWFLAKE_CONNECT_ENV]
    monkeypatch.setenv(SNOWFLAKE_CONNECT_ENV, env[SNOWFLAKE_CONNECT_ENV])
    params = snowflake_params_from_env()
    assert set(params) == {"account", "user", "private_key", "session_parameters"}  # no empties
    loaded = load_der_private_key(base64.b64decode(params["private_key"]), password=None)
    assert loaded.private_numbers() == key.private_numbers()  # the connector accepts base64 DER
    with pytest.raises(SkiffConfigError, match="'timeout' \\(object\\) cannot be passed on"):
        snowflake_connect_env({"account": "acme", "timeout": object()})


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(None, "needs SKIFF_SNOWFLAKE_CONNECT", id="unset"),
        pytest.param('{"password": "s3cret"', "not valid JSON", id="not-json"),
        pytest.param('["s3cret"]', "must be a JSON object", id="not-an-object"),
    ],
)
def test_bad_connector_arguments_are_refused_without_showing_them(
        value: str | None, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv(SNOWFLAKE_CONNECT_ENV, raising=False)
    else:
        monkeypatch.setenv(SNOWFLAKE_CONNECT_ENV, value)
    with pytest.raises(SkiffConfigError, match=match) as error:
        warehouse_from_config(WarehouseConfig(backend="snowflake"))
    assert "s3cret" not in str(error.value)
