"""GXWarehouseHook on DuckDB: small queries, and the interval's rows as a DataFrame."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hooks.gx_warehouse import GXWarehouseHook

from skiff.config import WarehouseConfig


@pytest.fixture
def hook(tmp_path: Path) -> GXWarehouseHook:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create table raw.t (id varchar, ts bigint)")
    con.execute("insert into raw.t values ('a', 1), ('b', 2), ('c', null)")
    con.close()
    return GXWarehouseHook(WarehouseConfig(duckdb_path=path))


def test_records_and_dataframe(hook: GXWarehouseHook) -> None:
    assert hook.backend == "duckdb"
    assert hook.records("select count(*), max(ts) from raw.t") == [(3, 2)]
    frame = hook.dataframe("select * from raw.t where ts >= 2 or ts is null")
    assert list(frame["id"]) == ["b", "c"]


def test_batch_parameters_hold_the_frame_on_duckdb(hook: GXWarehouseHook) -> None:
    params = hook.batch_parameters("select * from raw.t")
    assert list(params) == ["dataframe"] and len(params["dataframe"]) == 3


def test_snowflake_is_chosen_by_configuration() -> None:
    hook = GXWarehouseHook(WarehouseConfig(backend="snowflake", snowflake_conn_id="sf_prod"))
    assert hook.backend == "snowflake"
    assert hook.DATASOURCE.format(backend=hook.backend) == "skiff_snowflake"
    assert hook.config.snowflake_conn_id == "sf_prod"


def test_validate_in_warehouse_keeps_the_report_under_the_runs_label(hook, tmp_path) -> None:
    from skiff.config import SkiffConfig, ValidationConfig
    from skiff.validate import SuiteSpec, ValidationWindow

    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "t.yml").write_text(
        "name: t\ntable: raw.t\nbatch: select * from raw.t where coalesce(ts, 0) < {end_ms}\n"
        "expectations:\n- type: expect_column_values_to_not_be_null\n  kwargs: {column: ts}\n"
        "  meta: {defect: null_ts, problem: rows without ts}\n")
    config = SkiffConfig(warehouse=hook.config,
                         validation=ValidationConfig(reports_dir=tmp_path / "gx",
                                                     suites_dir=tmp_path / "suites",
                                                     memory_limit="256MB"))
    window = ValidationWindow.of("2026-11-01T00:00Z", "2026-11-20T12:00Z")
    outcome = hook.validate_in_warehouse(SuiteSpec.load("t", tmp_path / "suites"), config,
                                         window, label="2026-11-20T1100Z", data_docs=False)
    assert outcome.suite.sql.endswith(f"< {window.end_ms}")  # rendered for the range
    (result,) = outcome.result.results
    assert not outcome.success and result.result["unexpected_count"] == 1
    assert outcome.report.result_json == tmp_path / "gx" / "results" / "2026-11-20T1100Z" / "t.json"


def test_validate_in_warehouse_is_duckdbs() -> None:
    hook = GXWarehouseHook(WarehouseConfig(backend="snowflake"))
    with pytest.raises(ValueError, match="runs on DuckDB"):
        hook.validate_in_warehouse(None, None, None, label="x")
