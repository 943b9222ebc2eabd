"""SkiffWarehouseHook: the warehouse from the configuration, and its Snowflake connection
resolved by the Airflow provider for processes outside Airflow."""

from __future__ import annotations

import json

import pytest
from hooks.warehouse import SkiffWarehouseHook

from skiff.config import WarehouseConfig
from skiff.data import (
    BROWSING,
    SNOWFLAKE_CONNECT_ENV,
    DuckDBWarehouse,
    SnowflakeWarehouse,
    warehouse_from_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:::fakesnow")

#: An Airflow connection as users write it: login and password, the rest in the extra.
CONNECTION = {
    "conn_type": "snowflake", "login": "skiff", "password": "not-a-secret", "schema": "RAW",
    "extra": {"account": "skiff-test", "database": "SKIFF", "warehouse": "WH", "role": "LOADER"},
}


def test_duckdb_needs_no_connection(tmp_path) -> None:
    hook = SkiffWarehouseHook(WarehouseConfig(duckdb_path=tmp_path / "w.duckdb"))
    assert isinstance(hook.warehouse, DuckDBWarehouse)
    assert hook.connect_env() == {}


def test_snowflake_connection_is_handed_over_as_plain_arguments(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fakesnow = pytest.importorskip("fakesnow")
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps(CONNECTION))
    monkeypatch.delenv(SNOWFLAKE_CONNECT_ENV, raising=False)
    config = WarehouseConfig(backend="snowflake")
    hook = SkiffWarehouseHook(config)
    env = hook.connect_env()
    params = json.loads(env[SNOWFLAKE_CONNECT_ENV])
    assert {k: params[k] for k in ("user", "password", "schema", "account", "database",
                                   "warehouse", "role")} == {
        "user": "skiff", "password": "not-a-secret", "schema": "RAW", "account": "skiff-test",
        "database": "SKIFF", "warehouse": "WH", "role": "LOADER"}

    # what a process outside Airflow does with it: the same account, no Airflow involved
    monkeypatch.setenv(SNOWFLAKE_CONNECT_ENV, env[SNOWFLAKE_CONNECT_ENV])
    with fakesnow.patch(create_database_on_connect=True):
        outside = warehouse_from_config(config)
        inside = hook.warehouse
        assert isinstance(outside, SnowflakeWarehouse) and isinstance(inside, SnowflakeWarehouse)
        outside.ensure_raw_tables()
        assert inside.row_counts("raw", [BROWSING.name]) == {BROWSING.name: 0}
        assert outside.count_events(0, 1) == 0
