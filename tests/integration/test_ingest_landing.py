"""The landing ingest for real: one DuckDB transaction per interval, and ingest -> validate_raw
in ``dag.test()`` of skiff_hourly with ``SKIFF_INGEST_SOURCE=landing``.

The landing files are the generator's events (``skiff generate``) as the collector would
have written them, by arrival time, a share of them late (``tests/landing_files.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from environ import environ
from landing_files import browsing, catalogue, land_events, search, with_arrivals, write_file
from skiff.data import DuckDBWarehouse
from skiff.data.ingest import ingest_arrivals
from skiff.data.landing import LandingZone

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
END = datetime(2026, 11, 20, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
RAW = ("sku_to_content", "browsing_train", "search_train", "ingest_ledger")


def test_a_failure_on_the_second_table_appends_nothing(tmp_path: Path) -> None:
    """Catalogue first, then browsing: the browsing insert fails inside the transaction, and
    the catalogue rows already inserted go with it; so does the ledger."""
    start_ms = int((END - HOUR).timestamp() * 1000)
    root = tmp_path / "landing"
    write_file(root, "sku_to_content", catalogue(start_ms + 1000), "a" * 16)
    rows = browsing(4, start_ms + 2000)
    rows[2]["hashed_url"] = None  # allowed by the contract, refused by the table below
    write_file(root, "browsing_train", rows, "b" * 16)
    write_file(root, "search_train", search(2, start_ms + 3000), "c" * 16)
    duck = DuckDBWarehouse(tmp_path / "w.duckdb")
    duck.ensure_raw_tables()
    with duck.connect() as con:  # the injected failure: a constraint the second table breaks
        con.execute("alter table raw.browsing_train alter column hashed_url set not null")
    zone = LandingZone.from_uri(root)
    with pytest.raises(Exception, match="NOT NULL constraint failed"):
        ingest_arrivals(duck, zone, END - HOUR, END)
    assert duck.row_counts("raw", RAW) == {t: 0 for t in RAW}
    with duck.connect() as con:
        con.execute("alter table raw.browsing_train alter column hashed_url drop not null")
    summary = ingest_arrivals(duck, zone, END - HOUR, END)  # the re-run appends it all
    assert summary.rows == {"sku_to_content": 3, "browsing_train": 4, "search_train": 2}


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> Path:
    """SKIFF_HOME with landing files of six hours ending at END; the raw log holds what
    arrived before the last hour (the history), the DAG's ingest task is left the last."""
    from skiff.data import generate

    home = tmp_path_factory.mktemp("landing-dag")
    generate(home / "source", sessions=800, seed=4, end=END, span_hours=6, fmt="parquet")
    rng = np.random.default_rng(4)
    for table in ("browsing_train", "search_train"):
        events = with_arrivals(pq.read_table(home / "source" / f"{table}.parquet"),
                               "server_timestamp_epoch_ms", rng, late_share=0.03,
                               repeat_share=0.004)
        land_events(home / "landing", table, events, files_per_hour=2)
    warehouse = DuckDBWarehouse(home / "warehouse.duckdb")
    from skiff.data import load_dir

    load_dir(home / "source", warehouse, batch_id="catalogue", tables=["sku_to_content"])
    ingest_arrivals(warehouse, LandingZone.from_uri(home / "landing"), END - 7 * HOUR,
                    END - HOUR)
    return home


def _ingest_and_validate(home: Path, logical_date: datetime) -> tuple[object, dict]:
    """dag.test() of ingest_events -> validate_raw for the interval ending at logical_date."""
    from airflow.dag_processing.dagbag import DagBag

    with environ(SKIFF_INGEST_SOURCE="landing", SKIFF_LANDING_URI=str(home / "landing"),
                 SKIFF_DUCKDB_PATH=str(home / "warehouse.duckdb"), SKIFF_GX_DIR=str(home / "gx"),
                 SKIFF_INGEST_GRACE_MINUTES="0"):
        dag = DagBag(dag_folder=str(REPO / "dags")).dags["skiff_hourly"]  # parsed with this env
        subset = dag.partial_subset(
            ["validate_raw_schema", "validate_raw_events", "validate_volume"],
            include_upstream=True)
        run = subset.test(logical_date=logical_date)
    return run, {ti.task_id: ti for ti in run.get_task_instances()}


def test_dag_ingests_the_hours_landing_files_then_validates_them(landed, airflow_db) -> None:
    from airflow.utils.state import DagRunState

    warehouse = DuckDBWarehouse(landed / "warehouse.duckdb")
    before = warehouse.row_counts("raw", ["browsing_train"])["browsing_train"]
    run, tasks = _ingest_and_validate(landed, END)
    states = {t: ti.state for t, ti in tasks.items()}
    assert run.state == DagRunState.SUCCESS, states
    assert set(states) == {"ingest_events", "validate_raw_schema", "validate_raw_events",
                           "validate_volume"}
    result = tasks["ingest_events"].xcom_pull(task_ids="ingest_events")
    assert result["batch_id"] == f"landing:{(END - HOUR).isoformat()}/{END.isoformat()}"
    assert result["files"] == 4 and result["rows"]["browsing_train"] > 100
    after = warehouse.row_counts("raw", ["browsing_train"])["browsing_train"]
    assert after == before + result["rows"]["browsing_train"]
    with warehouse.connect() as con:
        (late,) = con.execute(
            "select count(*) from raw.browsing_train where batch_id = ? "
            "and server_timestamp_epoch_ms < ?",
            [result["batch_id"], int((END - HOUR).timestamp() * 1000)]).fetchone()
    assert late > 0  # events of earlier hours that arrived in this one are in its batch


def test_an_hour_without_files_is_declared_empty_by_validate_volume(landed, airflow_db) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    run, tasks = _ingest_and_validate(landed, END + 6 * HOUR)  # after the latest arrival
    assert run.state == DagRunState.FAILED
    assert tasks["ingest_events"].state == TaskInstanceState.SUCCESS
    assert tasks["ingest_events"].xcom_pull(task_ids="ingest_events")["files"] == 0
    assert tasks["validate_volume"].state == TaskInstanceState.FAILED
