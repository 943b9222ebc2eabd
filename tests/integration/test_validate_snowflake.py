"""The same suites on Snowflake: GX's own Snowflake datasource (a query asset per suite, built
from the Airflow connection ``snowflake_default``) runs the suites' SQL and gives the DuckDB
path's verdicts, defect for defect.

There is no Snowflake account here: ``fakesnow`` stands in for the connector (it runs
Snowflake SQL on DuckDB), under GX's SQLAlchemy Snowflake dialect. The tables are copies of
the DuckDB logs of ``tests/bad_batches.py``.
"""

from __future__ import annotations

import json

import pytest
from bad_batches import (
    MART_TASKS,
    SEED,
    START,
    TASK_SUITES,
    interval_data,
    make_log,
    make_source,
    run_suite,
)
from environ import environ

from skiff.data import DEFECTS, build_bad_batch

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:::fakesnow")]

TABLES = [
    ("raw", "browsing_train"), ("raw", "search_train"), ("raw", "sku_to_content"),
    ("intermediate", "int_session_events"), ("marts", "fct_sessions"), ("marts", "dim_products"),
]
CONNECTION = {
    "conn_type": "snowflake",
    "login": "skiff",
    "password": "not-a-secret",
    "schema": "ANALYTICS",
    "extra": {"account": "skiff-test", "database": "SKIFF", "warehouse": "WH", "role": "SKIFF"},
}
#: Defects compared on both backends: raw values, duplicates, schema, a mart; more when slow.
DEFECTS_COMPARED = [
    *(pytest.param(d, id=d) for d in ("bad_event_types", "duplicate_events", "retyped_column",
                                      "unknown_skus")),
    *(pytest.param(d, id=d, marks=pytest.mark.slow) for d in (
        "future_timestamps", "volume_spike", "label_rate", "out_of_order_events", "bad_prices")),
]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def fake_snowflake():
    """fakesnow patched in, and the Airflow connection ``snowflake_default`` in the env."""
    fakesnow = pytest.importorskip("fakesnow")
    with fakesnow.patch(), environ(AIRFLOW_CONN_SNOWFLAKE_DEFAULT=json.dumps(CONNECTION)):
        yield


def _copy_to_snowflake(log) -> None:
    """The DuckDB log's tables, written to (fake) Snowflake with the connector."""
    import snowflake.connector
    from snowflake.connector.pandas_tools import write_pandas

    con = snowflake.connector.connect(database="SKIFF", schema="ANALYTICS")
    cur = con.cursor()
    cur.execute("create database if not exists SKIFF")
    with log.warehouse.connect() as duck:
        for schema, table in TABLES:
            cur.execute(f"create schema if not exists SKIFF.{schema.upper()}")
            cur.execute(f"drop table if exists SKIFF.{schema.upper()}.{table.upper()}")
            exists = duck.execute(
                "select count(*) from information_schema.tables where table_schema = ? "
                "and table_name = ?", [schema, table]).fetchall()[0][0]
            if not exists:
                continue
            frame = duck.execute(f"select * from {schema}.{table}").df()
            frame.columns = [c.upper() for c in frame.columns]
            write_pandas(con, frame, table.upper(), schema=schema.upper(), database="SKIFF",
                         auto_create_table=True, quote_identifiers=False, use_logical_type=True)
    con.close()


def _unexpected(result: dict) -> int | None:
    """Bad rows counted; on an empty batch (the catalogue suite, most hours) GX's pandas
    engine says 0 where its SQL engine says None: both mean none."""
    if result.get("element_count") == 0:
        return result.get("unexpected_count") or 0
    return result.get("unexpected_count")


def _verdicts(log, tasks, reports, **env):
    out = {}
    with environ(**env):
        for task_id in tasks:
            error, ti = run_suite(task_id, log, reports / task_id)
            result = ti.xcom["return_value"]
            counts = sorted((e["expectation_type"], e["result"].get("element_count"),
                             _unexpected(e["result"])) for e in result["expectations"])
            out[task_id] = (error is None, tuple(error.defects) if error else (), counts)
    return out


def _same_verdicts(log, tasks, tmp_path) -> None:
    duckdb = _verdicts(log, tasks, tmp_path / "duckdb")
    _copy_to_snowflake(log)
    snowflake = _verdicts(log, tasks, tmp_path / "snowflake", SKIFF_WAREHOUSE="snowflake")
    for task_id in tasks:
        assert snowflake[task_id][:2] == duckdb[task_id][:2], task_id
        # the same rows were checked, with the same number of bad ones
        assert _numbers(snowflake[task_id][2]) == _numbers(duckdb[task_id][2]), task_id


def _numbers(counts):
    return [(kind, None if n is None else int(n), None if bad is None else int(bad))
            for kind, n, bad in counts]


def test_good_batch_passes_on_snowflake(source, fake_snowflake, tmp_path) -> None:
    log = make_log(tmp_path / "log", source)
    log.build_marts(tmp_path / "dbt")
    _same_verdicts(log, list(TASK_SUITES), tmp_path)


@pytest.mark.parametrize("defect", DEFECTS_COMPARED)
def test_bad_batch_fails_alike_on_snowflake(defect, source, fake_snowflake, tmp_path) -> None:
    spec = DEFECTS[defect]
    log = make_log(tmp_path / "log", source,
                   build_bad_batch(defect, interval_data(source), seed=SEED))
    if spec.task_id in MART_TASKS:
        log.build_marts(tmp_path / "dbt")
    _same_verdicts(log, [spec.task_id], tmp_path)
    error, _ = run_suite(spec.task_id, log, tmp_path / "again")
    assert error is not None and spec.expect in error.defects


def test_snowflake_datasource_is_built_from_the_airflow_connection(fake_snowflake) -> None:
    """GX's Snowflake datasource, query asset and batch definition, from the connection."""
    import great_expectations as gx
    from hooks.gx_warehouse import GXWarehouseHook

    from skiff.config import WarehouseConfig

    hook = GXWarehouseHook(WarehouseConfig(backend="snowflake"))
    url = hook.snowflake_connection_string()
    assert url.startswith("snowflake://skiff:not-a-secret@skiff-test/SKIFF/ANALYTICS")
    assert "warehouse=WH" in url and "role=SKIFF" in url
    context = gx.get_context(mode="ephemeral")
    since = int(START.timestamp() * 1000)
    sql = f"select * from raw.browsing_train where server_timestamp_epoch_ms >= {since}"
    batch = hook.batch_definition(context, "browsing_train", sql)
    datasource = context.data_sources.get("skiff_snowflake")
    assert type(datasource).__name__ == "SnowflakeDatasource"
    asset = datasource.get_asset("browsing_train")
    assert type(asset).__name__ == "QueryAsset" and asset.query == sql
    assert batch.name == "browsing_train"
    assert hook.batch_parameters(sql) == {}  # the query asset holds the rows, not a frame


def test_a_full_refresh_checks_the_whole_log_on_snowflake_too(source, fake_snowflake,
                                                              tmp_path) -> None:
    """``whole_log`` on Snowflake: GX's query asset over the log's whole range; the same
    verdict and counts as the DuckDB run, which validates inside the warehouse."""
    from bad_batches import END, FakeTI
    from operators.validate import GXValidateIntervalOperator

    log = make_log(tmp_path / "log", source)
    log.build_marts(tmp_path / "dbt")
    results = {}
    for backend in ("duckdb", "snowflake"):
        if backend == "snowflake":
            _copy_to_snowflake(log)
        operator = GXValidateIntervalOperator(
            task_id="validate_sessions", suite="fct_sessions", interval_start=START.isoformat(),
            interval_end=END.isoformat(), whole_log="true", data_docs=False)
        ti = FakeTI()
        with environ(SKIFF_WAREHOUSE=backend, SKIFF_DUCKDB_PATH=str(log.path),
                     SKIFF_GX_DIR=str(tmp_path / backend)):
            operator.execute({"ti": ti, "params": {}})
        result = ti.xcom["return_value"]
        results[backend] = sorted((e["expectation_type"], int(e["result"].get("element_count")
                                                              or 0), _unexpected(e["result"]))
                                  for e in result["expectations"])
        assert result["success"] is True
    assert results["snowflake"] == results["duckdb"]
    rows = {n for _, n, _ in results["duckdb"]} - {0}
    with log.warehouse.connect() as con:  # every session of the log, not the last hour's
        assert rows == {con.execute("select count(*) from marts.fct_sessions").fetchall()[0][0]}
