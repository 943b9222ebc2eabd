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
from skiff.data.ingest import ingest_arrivals, interval_batch_id
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


def _land(home: Path, files_per_hour: int) -> Path:
    """SKIFF_HOME with landing files of six hours ending at END; the raw log holds what
    arrived before the last hour (the history), the DAG's ingest task is left the last."""
    from skiff.data import generate, load_dir

    generate(home / "source", sessions=800, seed=4, end=END, span_hours=6, fmt="parquet")
    rng = np.random.default_rng(4)
    for table in ("browsing_train", "search_train"):
        events = with_arrivals(pq.read_table(home / "source" / f"{table}.parquet"),
                               "server_timestamp_epoch_ms", rng, late_share=0.03,
                               repeat_share=0.004)
        land_events(home / "landing", table, events, files_per_hour=files_per_hour)
    warehouse = DuckDBWarehouse(home / "warehouse.duckdb")
    load_dir(home / "source", warehouse, batch_id="catalogue", tables=["sku_to_content"])
    ingest_arrivals(warehouse, LandingZone.from_uri(home / "landing"), END - 7 * HOUR,
                    END - HOUR)
    return home


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> Path:
    """Two landing files per table and hour (see :func:`_land`)."""
    return _land(tmp_path_factory.mktemp("landing-dag"), files_per_hour=2)


@pytest.fixture(scope="module")
def landed_often(tmp_path_factory) -> Path:
    """Seven files per table and hour, about 8.5 minutes each: many of them start in one
    5-minute interval and hold events that arrived in the next."""
    return _land(tmp_path_factory.mktemp("landing-5min"), files_per_hour=7)


def _ingest_and_validate(home: Path, logical_date: datetime,
                         schedule: str = "0 * * * *") -> tuple[object, dict]:
    """dag.test() of ingest_events -> validate_raw for the interval ending at logical_date."""
    from airflow.dag_processing.dagbag import DagBag

    with environ(SKIFF_INGEST_SOURCE="landing", SKIFF_LANDING_URI=str(home / "landing"),
                 SKIFF_DUCKDB_PATH=str(home / "warehouse.duckdb"), SKIFF_GX_DIR=str(home / "gx"),
                 SKIFF_INGEST_GRACE_MINUTES="0", SKIFF_SCHEDULE=schedule):
        dag = DagBag(dag_folder=str(REPO / "dags")).dags["skiff_hourly"]  # parsed with this env
        subset = dag.partial_subset(
            ["validate_raw_schema", "validate_raw_events", "validate_raw_searches",
             "validate_raw_catalogue", "validate_volume", "validate_event_mix"],
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
                           "validate_raw_searches", "validate_raw_catalogue", "validate_volume",
                           "validate_event_mix"}
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


FIVE = timedelta(minutes=5)
_ROW = ("session_id_hash, event_type, product_action, product_sku_hash, "
        "server_timestamp_epoch_ms, hashed_url, arrival_ts_ms")


def _rows_of_the_last_hour(warehouse: DuckDBWarehouse) -> list[tuple]:
    """The browsing rows appended after the history (see :func:`_land`)."""
    with warehouse.connect() as con:
        return con.execute(f"select {_ROW} from raw.browsing_train where batch_id <> ? "
                           "order by all", [interval_batch_id(END - 7 * HOUR, END - HOUR)]
                           ).fetchall()


def test_five_minute_intervals_split_the_hour_into_disjoint_files(landed_often,
                                                                  tmp_path) -> None:
    """The last hour ingested as twelve 5-minute intervals (SKIFF_SCHEDULE='*/5 * * * *'):
    consecutive intervals take disjoint files, and together the hour's files and rows, the
    same rows (EXCEPT both ways) one hourly interval appends."""
    import shutil

    zone = LandingZone.from_uri(landed_often / "landing")
    hourly, by_five = (DuckDBWarehouse(tmp_path / f"{n}.duckdb") for n in ("hour", "five"))
    for copy in (hourly, by_five):
        shutil.copy(landed_often / "warehouse.duckdb", copy.path)
    hour = ingest_arrivals(hourly, zone, END - HOUR, END)
    files: list[set[str]] = []
    ends_after = 0  # rows that arrived after their interval's end: their file started in it
    for k in range(12):
        start = END - HOUR + k * FIVE
        summary = ingest_arrivals(by_five, zone, start, start + FIVE)
        files.append({f["file"] for f in summary.files})
        with by_five.connect() as con:
            (n,) = con.execute("select count(*) from raw.browsing_train where batch_id = ? "
                               "and arrival_ts_ms >= ?", [summary.batch_id, int(
                                   (start + FIVE).timestamp() * 1000)]).fetchone()
        ends_after += n
    assert all(not (a & b) for a, b in zip(files, files[1:]))  # consecutive: disjoint
    assert sum(map(len, files)) == len(set().union(*files)) == len(hour.files) == 14
    assert set().union(*files) == {f["file"] for f in hour.files}
    assert sum(1 for f in files if f) >= 7 and ends_after > 0
    five_rows, hour_rows = _rows_of_the_last_hour(by_five), _rows_of_the_last_hour(hourly)
    assert len(five_rows) == hour.rows["browsing_train"] > 100
    with by_five.connect() as con:
        con.execute(f"attach '{hourly.path}' as hourly (read_only)")
        for a, b in (("raw", "hourly.raw"), ("hourly.raw", "raw")):
            (diff,) = con.execute(
                f"select count(*) from (select {_ROW} from {a}.browsing_train except all "
                f"select {_ROW} from {b}.browsing_train)").fetchone()
            assert diff == 0, (a, b)
    assert five_rows == hour_rows


def test_dag_on_a_five_minute_schedule_ingests_and_validates_its_interval(
        landed_often, airflow_db) -> None:
    """SKIFF_SCHEDULE='*/5 * * * *': the run's data interval is 5 minutes; its ingest takes
    the files whose first event arrived in it, and validate_raw (the volume reference scaled
    to 5 minutes) passes."""
    from airflow.utils.state import DagRunState

    start, end = END - HOUR, END - HOUR + FIVE
    expected = {f.name for t in ("browsing_train", "search_train")
                for f in LandingZone.from_uri(landed_often / "landing").list(t, start, end)}
    run, tasks = _ingest_and_validate(landed_often, end + timedelta(seconds=30),
                                      schedule="*/5 * * * *")
    states = {t: ti.state for t, ti in tasks.items()}
    assert run.state == DagRunState.SUCCESS, states
    assert (run.data_interval_start, run.data_interval_end) == (start, end)
    result = tasks["ingest_events"].xcom_pull(task_ids="ingest_events")
    assert result["batch_id"] == f"landing:{start.isoformat()}/{end.isoformat()}"
    assert result["files"] == len(expected) > 0
