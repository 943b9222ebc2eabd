"""The dbt project on DuckDB: it builds with its tests, its hourly incremental runs end
equal to a full refresh, late, out-of-order and repeated arrivals included, re-runs and
re-loaded batches change nothing, and it parses (and compiles) for Snowflake too.

The raw log is filled the way Skiff fills it: the events of contract files
(:func:`skiff.data.generator.generate`, roughened like the real files by :func:`make_source`)
land as the collector's landing files by arrival time (:func:`land_source`: a share of them
hours late, slightly out of order, some sent twice), and
:func:`skiff.data.ingest.ingest_arrivals` appends them: the history first, then the files that
arrived in each hour, as the DAG's ingest task does, each followed by the dbt run the DAG
makes for it. The catalogue is loaded as a user would (``load_dir``).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dbt_models import (MODELS, SNOWFLAKE_ENV, Dbt, assert_same, connect, query, statuses,
                        table)
from landing_files import HOUR_MS, land_events, with_arrivals
from skiff.data import DuckDBWarehouse
from skiff.data.contract import BROWSING, SEARCH
from skiff.data.ingest import ingest_arrivals
from skiff.data.landing import LandingZone
from skiff.data.loader import EVENT_TABLES, load_dir

pytestmark = pytest.mark.integration

#: The data: ``SPAN_HOURS`` hours of sessions ending at ``END``.
END = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
SPAN_HOURS = 6
SESSIONS = 3000
#: Hours the DAG runs incrementally, the first one on an empty warehouse (the
#: history before it is already in the raw log, as after ``skiff replay-init``).
HOURLY_RUNS = 4
#: Short on purpose, so that the lookback bound really prunes; sessions still fit in it.
LOOKBACK_HOURS = 2
#: Arrivals: this share of events arrives LATE_HOURS late (longer than the lookback), this
#: share is sent again by a retrying client; the rest arrives within 30 s, out of order.
LATE_SHARE, LATE_HOURS, REPEAT_SHARE = 0.05, (1.0, 4.0), 0.01


# --------------------------------------------------------------------------- data


def make_source(out_dir: Path, *, sessions: int, seed: int) -> Path:
    """The contract files: :func:`skiff.data.generator.generate`'s data, made as rough as the
    real files are: some events logged twice, rows out of time order, and SKUs of the
    events missing from the catalogue (as in the Coveo data)."""
    from skiff.data import generate

    generate(out_dir, sessions=sessions, seed=seed, end=END, span_hours=SPAN_HOURS,
             fmt="parquet")
    rng = np.random.default_rng(seed)
    browsing = pq.read_table(out_dir / "browsing_train.parquet")
    n = browsing.num_rows
    twice = rng.choice(n, size=max(1, n // 200), replace=False)
    order = rng.permutation(np.concatenate([np.arange(n), twice]))
    pq.write_table(browsing.take(pa.array(order)), out_dir / "browsing_train.parquet")

    search = pq.read_table(out_dir / "search_train.parquet")
    order = rng.permutation(search.num_rows)
    pq.write_table(search.take(pa.array(order)), out_dir / "search_train.parquet")

    skus = pc.unique(browsing.column("product_sku_hash").drop_null())
    missing = skus.take(pa.array(rng.choice(len(skus), size=max(1, len(skus) // 20),
                                            replace=False)))
    catalogue = pq.read_table(out_dir / "sku_to_content.parquet")
    keep = pc.invert(pc.is_in(catalogue.column("product_sku_hash"), value_set=missing))
    pq.write_table(catalogue.filter(keep), out_dir / "sku_to_content.parquet")
    return out_dir


def land_source(src_dir: Path, landing: Path, *, seed: int) -> Path:
    """The source's events as the collector's landing files, by arrival time."""
    rng = np.random.default_rng(seed)
    for name in EVENT_TABLES:
        events = with_arrivals(pq.read_table(src_dir / f"{name}.parquet"),
                               "server_timestamp_epoch_ms", rng, late_share=LATE_SHARE,
                               late_hours=LATE_HOURS, repeat_share=REPEAT_SHARE)
        land_events(landing, name, events, files_per_hour=3)
    return landing


def redeliver(file) -> Path:
    """A landing file delivered again under another name, compressed anew (other bytes)."""
    path = Path(file.uri)
    stem = path.name.removesuffix(".ndjson.gz")  # ...-<16 hex token>
    again = path.with_name(f"{stem[:-16]}ffff{stem[-12:]}.ndjson.gz")
    again.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1))
    return again


def raw_log_as_files(db_path: Path, src_dir: Path, out_dir: Path) -> Path:
    """The event rows of a warehouse's raw log as contract files (copies kept), with the
    source's catalogue: what another warehouse loads to hold the same raw log."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for contract in (BROWSING, SEARCH):
        columns = ", ".join(contract.columns)
        pq.write_table(table(db_path, f"(select {columns} from raw.{contract.name})"),
                       out_dir / f"{contract.name}.parquet")
    shutil.copy(src_dir / "sku_to_content.parquet", out_dir)
    return out_dir


def resend_catalogue(src_dir: Path, out_dir: Path) -> None:
    """A later catalogue load re-sending some SKUs with a new price (the latest wins)."""
    table = pq.read_table(src_dir / "sku_to_content.parquet").slice(0, 40)
    prices = pa.array([float(1 + (i * 3) % 10) for i in range(table.num_rows)], pa.float64())
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.set_column(4, "price_bucket", prices), out_dir / "sku_to_content.parquet")


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _hour(k: int) -> tuple[datetime, datetime]:
    """The k-th hourly interval before ``END`` (k = 1 is the last one)."""
    return END - timedelta(hours=k), END - timedelta(hours=k - 1)


# --------------------------------------------------------------------------- dbt


@dataclass
class HourlyDbt(Dbt):
    """:class:`Dbt` that also runs one data interval as the DAG's prepare task group does."""

    #: a copy taken before the last hour was ingested (set by the ``hourly`` fixture)
    before_last: Dbt | None = None

    def hourly(self, interval: tuple[datetime, datetime], command: str = "build"):
        """What the DAG's prepare task group does for one data interval: the interval in
        the environment, the lookback a var."""
        start, end = interval
        return self(command, vars={
            # Airflow renders it from a Param into text
            "session_lookback_hours": str(LOOKBACK_HOURS),
        }, env={"SKIFF_DBT_INTERVAL_START": start.isoformat(),
                "SKIFF_DBT_INTERVAL_END": end.isoformat()})


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The contract files the raw log is loaded from."""
    return make_source(tmp_path_factory.mktemp("source"), sessions=SESSIONS, seed=7)


@pytest.fixture(scope="module")
def landing(source, tmp_path_factory) -> LandingZone:
    """The landing zone the source's events arrived in."""
    return LandingZone.from_uri(land_source(source, tmp_path_factory.mktemp("landing"), seed=11))


@pytest.fixture(scope="module")
def hourly(source, landing, tmp_path_factory) -> HourlyDbt:
    """A warehouse run as the DAG runs it: what arrived before the first hour ingested,
    then hour after hour (ingest the files that arrived in it, dbt build with its vars),
    the first on an empty warehouse."""
    work = tmp_path_factory.mktemp("hourly")
    dbt = HourlyDbt(work / "warehouse.duckdb", work)
    warehouse = DuckDBWarehouse(dbt.db_path)
    first_start, _ = _hour(HOURLY_RUNS)
    load_dir(source, warehouse, batch_id="catalogue", tables=["sku_to_content"])
    ingest_arrivals(warehouse, landing, END - timedelta(hours=SPAN_HOURS + 1), first_start)
    resend_catalogue(source, work / "catalogue-v2")
    load_dir(work / "catalogue-v2", warehouse, batch_id="catalogue-v2")
    for k in range(HOURLY_RUNS, 0, -1):
        start, end = _hour(k)
        if k == 1:
            dbt.before_last = dbt.copy("before-last")
        assert ingest_arrivals(warehouse, landing, start, end).files
        dbt.hourly((start, end))
    return dbt


@pytest.fixture(scope="module")
def full_refresh(hourly) -> tuple[Dbt, object]:
    """The same raw log, every model rebuilt from all of it."""
    dbt = hourly.copy("full")
    return dbt, dbt("build", "--full-refresh")


# --------------------------------------------------------------------------- tests


def test_full_refresh_builds_with_every_test(full_refresh) -> None:
    """dbt build --full-refresh: every model, data test and unit test passes."""
    dbt, result = full_refresh
    status = statuses(result)
    assert not [n for n, s in status.items() if s not in ("success", "pass", "warn")], status
    # only the catalogue relationship may warn: the data has SKUs missing from the catalogue
    warned = [n for n, s in status.items() if s == "warn"]
    assert warned and all("relationships_stg_browsing_events_product_sku_hash" in n for n in warned)
    assert sum(n.startswith("unit_test.") for n in status) == 7
    assert sum(n.startswith("model.") for n in status) == 8 + 4  # + the monitoring models
    (sessions, abandoned, sequences), = query(dbt.db_path, """
        select count(*), count_if(is_cart_abandoned),
               (select count(*) from marts.fct_session_sequences)
        from marts.fct_sessions""")
    assert sessions > SESSIONS * 0.9 and 0 < abandoned < sessions and 0 < sequences <= sessions


def test_not_null_columns_names_each_column_with_nulls(full_refresh) -> None:
    """One test for a model's required columns fails on nulls in any of them, and its
    failures are the null cells, named by column."""
    dbt = full_refresh[0].copy("nulls")
    with connect(dbt.db_path) as con:
        con.execute("""
            update intermediate.int_sessions set count_searches = null
            where session_id in (select session_id from intermediate.int_sessions limit 3);
            update intermediate.int_sessions set session_end_at = null
            where session_id in (select session_id from intermediate.int_sessions limit 1)""")
    result = dbt("test", "--select", "fct_sessions,test_name:not_null_columns",
                 "--store-failures", check=False)
    (test,) = result.result.results
    assert (str(test.status), test.failures) == ("fail", 4), test.message
    failed = query(dbt.db_path, f"select null_column, null_rows from {test.node.relation_name}"
                                " order by 1")
    assert failed == [("count_searches", 3), ("session_end_at", 1)]


def test_incremental_hours_equal_full_refresh(hourly, full_refresh) -> None:
    """Hour by hour (first run on an empty warehouse) ends where a full refresh does, with
    events that arrived hours late into sessions built in an earlier hour, out of order,
    and twice: every model has the same rows, EXCEPT ALL both ways."""
    first_start = _ms(_hour(HOURLY_RUNS)[0])
    (late, rebuilt, repeated, out_of_order), = query(hourly.db_path, f"""
        with late as (
            select * from raw.browsing_train
            where arrival_ts_ms >= {first_start}
                and arrival_ts_ms - server_timestamp_epoch_ms > {HOUR_MS}
        )
        select
            (select count(*) from late),
            -- sessions a late event reached after an earlier run had built them
            (select count(distinct late.session_id_hash) from late
             join raw.browsing_train as earlier using (session_id_hash)
             where earlier.arrival_ts_ms < {first_start}
                 and floor(late.arrival_ts_ms / {HOUR_MS})
                     > floor(earlier.arrival_ts_ms / {HOUR_MS})),
            (select count(*) - count(distinct (session_id_hash, server_timestamp_epoch_ms,
                                               event_type, product_action, product_sku_hash))
             from raw.browsing_train where batch_id like 'landing:%'),
            -- consecutive appended rows whose event times go backwards
            (select count(*) from (
                select server_timestamp_epoch_ms < lag(server_timestamp_epoch_ms) over (
                    partition by batch_id order by arrival_ts_ms) as backwards
                from raw.browsing_train where batch_id like 'landing:%') where backwards)""")
    assert late > 50 and rebuilt > 10 and repeated > 10 and out_of_order > 100, (
        late, rebuilt, repeated, out_of_order)
    assert_same(hourly.db_path, full_refresh[0].db_path)


def test_hourly_run_reads_only_its_interval(hourly) -> None:
    """The last run read the events of the sessions whose events arrived in its hour, since
    the earliest of those events minus the lookback, and bounded its deletes the same way;
    its data tests read the same sessions; int_session_events holds every distinct raw
    event once."""
    start, end = (_ms(t) for t in _hour(1))
    bounds = f"arrival_ts_ms >= {start} and arrival_ts_ms < {end}"
    target = hourly.work_dir / "target"
    compiled = target / "compiled" / "skiff" / "models"
    for view in ("stg_browsing_events", "stg_search_events"):
        # views: the reading models filter them
        assert "where" not in (compiled / "staging" / f"{view}.sql").read_text().lower()
    for model in ("intermediate/int_session_events", "intermediate/int_sessions"):
        sql = (compiled / f"{model}.sql").read_text()
        assert bounds in sql, model
        # the event-time bound, a literal queried when the model runs (DuckDB prunes on it)
        assert re.search(r"event_ms >= \d{13}\s+and session_key in", sql), model
    # int_sessions rebuilds the sessions a search arrived in too (fct_sessions counts them)
    assert "stg_search_events" in sql.split("search_counts as")[0]
    for view in ("fct_sessions", "fct_session_sequences"):
        # views over int_sessions: their readers' filters reach its scan
        assert "arrival_ts_ms" not in (compiled / "marts" / f"{view}.sql").read_text(), view
    # each session model's delete is bounded by its session time (macros/session_rebuild.sql)
    for model, time in (("intermediate/int_session_events", "event_ms"),
                        ("intermediate/int_sessions", "first_event_ms")):
        run = (target / "run" / "skiff" / "models" / f"{model}.sql").read_text()
        assert re.search(rf"and {time} >= \(select min\({time}\) from \S+__dbt_tmp", run), model
    # the data tests, compiled under <folder>/_models.yml/ (as the unit tests, named as
    # their model)
    models = {f"{name}.sql" for names in MODELS.values() for name in names}
    tests = {path.name: path.read_text() for path in compiled.rglob("*.sql")
             if path.parent.name == "_models.yml" and path.name not in models}
    # the tests of the models whose meta names their session time (macros/test_window.sql)
    nodes = json.loads((target / "manifest.json").read_text())["nodes"]
    session_tests = [Path(node["path"]).name for node in nodes.values()
                     if node["resource_type"] == "test" and node.get("attached_node")
                     and set(nodes[node["attached_node"]]["config"]["meta"])
                     & {"session_time_ms", "session_time_at"}]
    assert len(session_tests) > 20 and set(session_tests) <= set(tests), sorted(tests)
    unfiltered = [name for name in session_tests if bounds not in tests[name]]
    assert not unfiltered, unfiltered
    # their event-time bound is a literal, queried when the test runs (DuckDB prunes on it)
    unbounded = [name for name in session_tests if not re.search(
        r"_(ms|at) >= (\d{13}|epoch_ms\(\d{13}\)) and session_(id|key) in", tests[name])]
    assert not unbounded, unbounded
    products = [name for name in tests if "stg_products" in name or name.startswith(
        ("unique_dim_products", "not_null_dim_products"))]
    assert products and not [name for name in products if bounds in tests[name]]
    rows = query(hourly.db_path, """
        select
            (select count(*) from intermediate.int_session_events),
            (select count(*) from (select distinct * exclude (batch_id, ingested_at, arrival_ts_ms)
                                   from raw.browsing_train))""")
    events, distinct_raw = rows[0]
    assert events == distinct_raw


def test_rerun_and_reloaded_batch_change_nothing(hourly, landing, full_refresh) -> None:
    """Re-running an interval is idempotent; rows appended twice are counted once."""
    dbt = hourly.copy("rerun")
    last = _hour(1)
    # the same interval again, written as UTC 'Z' and as naive UTC (both mean UTC)
    dbt("run", vars={"interval_start": last[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "interval_end": last[1].replace(tzinfo=None).isoformat(),
                     "session_lookback_hours": LOOKBACK_HOURS})
    compiled = dbt.work_dir / "target" / "compiled" / "skiff" / "models" / "intermediate"
    bounds = f"arrival_ts_ms >= {_ms(last[0])} and arrival_ts_ms < {_ms(last[1])}"
    assert bounds in (compiled / "int_session_events.sql").read_text()
    assert_same(dbt.db_path, hourly.db_path)
    # the ingest again: the ledger skips every file
    warehouse = DuckDBWarehouse(dbt.db_path)
    again = ingest_arrivals(warehouse, landing, *last)
    assert not again.files and again.skipped and not any(again.rows.values())
    # files of the last hour and of the history delivered again, re-compressed (bytes the
    # ledger does not know) under new names: their rows are copies, kept once
    zone = LandingZone.from_uri(shutil.copytree(landing.uri, dbt.work_dir / "landing"))
    history = _hour(HOURLY_RUNS + 1)
    for interval in (last, history):
        for events in EVENT_TABLES:
            redeliver(zone.list(events, *interval)[0])
        assert len(ingest_arrivals(warehouse, zone, *interval).files) == len(EVENT_TABLES)
    dbt.hourly(last, command="run")
    # staging is a view of the raw log, copies included; from intermediate on, they are gone
    built = ("intermediate", "marts")
    assert_same(dbt.db_path, hourly.db_path, layers=built)
    dbt("run", "--full-refresh")
    assert_same(dbt.db_path, full_refresh[0].db_path, layers=built)


def test_run_without_vars_catches_up(hourly, landing) -> None:
    """dbt run by hand (no interval vars): each model takes what arrived since its newest
    event, late arrivals included."""
    dbt = hourly.before_last
    ingest_arrivals(DuckDBWarehouse(dbt.db_path), landing, *_hour(1))
    dbt("build", vars={"session_lookback_hours": LOOKBACK_HOURS})
    # staging (views of raw) differs in ingested_at (loaded at another time); the rest is equal
    assert_same(dbt.db_path, hourly.db_path, layers=("intermediate", "marts"))


# --------------------------------------------------------------------------- snowflake


def test_snowflake_target_parses_offline(tmp_path) -> None:
    """dbt parse needs no connection: the project is valid for the snowflake target."""
    dbt = Dbt(tmp_path / "unused.duckdb", tmp_path)
    dbt("parse", target="snowflake", env=SNOWFLAKE_ENV)
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "snowflake"
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    monitoring = {"stg_predictions", "mon_serving_hourly", "mon_quality_hourly",
                  "mon_drift_hourly"}  # tests/integration/test_dbt_monitoring.py
    assert set(models) == ({m for layer in MODELS.values() for m in layer} | {"stg_products"}
                           | monitoring)
    assert {m["schema"] for m in models.values()} == {"staging", "intermediate", "marts"}
    assert all("monitoring" in models[m]["tags"] for m in monitoring)
    assert models["stg_browsing_events"]["config"]["materialized"] == "view"
    assert models["int_session_events"]["config"]["incremental_strategy"] == "session_rebuild"


@pytest.mark.filterwarnings("ignore:::fakesnow")
def test_snowflake_sql_runs_on_fakesnow(source, full_refresh, tmp_path) -> None:
    """The snowflake__ macro variants compile, and their SQL gives the DuckDB results.

    There is no Snowflake account here: fakesnow stands in for the connector (it runs
    Snowflake SQL on DuckDB), so dbt can introspect, compile the incremental branch
    and build every model with the Snowflake dialect.
    """
    fakesnow = pytest.importorskip("fakesnow")
    import snowflake.connector

    from skiff.data import SnowflakeWarehouse

    dbt = Dbt(tmp_path / "unused.duckdb", tmp_path)
    start, end = _hour(1)

    def connect():
        return snowflake.connector.connect(database="SKIFF", schema="ANALYTICS")

    def fetch(name: str):
        cur = connect().cursor()
        cur.execute(f"select * from {name}")
        frame = cur.fetch_pandas_all()
        frame.columns = [c.lower() for c in frame.columns]
        return frame

    raw_log = raw_log_as_files(full_refresh[0].db_path, source, tmp_path / "raw-log")
    with fakesnow.patch():
        load_dir(raw_log, SnowflakeWarehouse(connect), batch_id="history")
        # fakesnow's in-memory database does not take concurrent DDL: one thread
        dbt("run", "--threads", "1", target="snowflake", env=SNOWFLAKE_ENV)
        dbt("compile", "--threads", "1", "--select", "stg_browsing_events int_sessions",
            target="snowflake", env=SNOWFLAKE_ENV, vars={
                "interval_start": start.isoformat(), "interval_end": end.isoformat()})
        sessions = fetch("marts.fct_sessions")
        sequences = fetch("marts.fct_session_sequences")

    compiled = tmp_path / "target" / "compiled" / "skiff" / "models"
    sql = (compiled / "intermediate" / "int_sessions.sql").read_text()
    assert "array_agg(event_token) within group (order by event_index)" in sql
    assert ("array_agg(sku_names.product_sku_hash) within group "
            "(order by item_events.event_index)") in sql
    assert "array_construct()" in sql and "list(" not in sql
    assert f"arrival_ts_ms >= {_ms(start)} and arrival_ts_ms < {_ms(end)}" in sql  # incremental
    # the event-time bound queried on the Snowflake connection when the model compiled
    assert re.search(r"event_ms >= \d{13}\s+and session_key in", sql), sql
    sql = (compiled / "staging" / "stg_browsing_events.sql").read_text()
    assert "to_timestamp_ntz(server_timestamp_epoch_ms, 3)" in sql
    assert "cast(bitshiftright(hash(session_id_hash, " in sql

    con = duckdb.connect()
    try:
        con.register("snowflake_sessions", sessions)
        con.register("duckdb_sessions", table(full_refresh[0].db_path, "marts.fct_sessions"))
        counts = con.execute("""
            select
                (select count(*) from snowflake_sessions),
                (select count(*) from duckdb_sessions),
                (select count(*) from (from snowflake_sessions except all from duckdb_sessions))
        """).fetchall()[0]
    finally:
        con.close()
    assert counts[0] == counts[1] and counts[2] == 0, counts

    expected = {
        row["session_id"]: (row["sku_sequence"], row["event_tokens"], row["count_items"])
        for row in table(full_refresh[0].db_path, "marts.fct_session_sequences").to_pylist()
    }
    got = {  # Snowflake ARRAYs come back as JSON text
        row.session_id: (json.loads(row.sku_sequence), json.loads(row.event_tokens),
                         row.count_items)
        for row in sequences.itertuples()
    }
    assert got == expected
