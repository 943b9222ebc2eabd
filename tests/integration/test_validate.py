"""The validate stage on real data: the good batch passes every suite, and each bad batch of
the corpus fails the suite meant to catch it, naming its defect, after every suite before it
passed (so that the DAG stops exactly there).

The suites run through the real operator (``GXValidateIntervalOperator``: hook, GX provider,
report), outside Airflow; ``tests/e2e/test_bad_batches.py`` runs them in ``dag.test()``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from bad_batches import (
    END,
    LABEL,
    MART_TASKS,
    Log,
    SEED,
    START,
    TASK_SUITES,
    interval_data,
    make_log,
    ms,
    make_source,
    run_suite,
    write_corpus,
)

from skiff.data import DEFECTS, IntervalData, build_bad_batch
from skiff.data.corrupt import BadBatch
from skiff.validate.baseline import METRICS
from skiff.data import load_dir
from skiff.data import DuckDBWarehouse

pytestmark = pytest.mark.integration

RAW_TASKS = ("validate_raw_schema", "validate_raw_events", "validate_raw_searches",
             "validate_raw_catalogue", "validate_volume", "validate_event_mix")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def data(source) -> IntervalData:
    return interval_data(source)


@pytest.fixture(scope="module")
def good_log(source, tmp_path_factory):
    work = tmp_path_factory.mktemp("good")
    log = make_log(work, source)
    log.build_marts(work)
    return log


def test_good_batch_passes_every_suite(good_log, tmp_path) -> None:
    for task_id, suite in TASK_SUITES.items():
        error, ti = run_suite(task_id, good_log, tmp_path)
        assert error is None, f"{task_id} failed on the good batch:\n{error}"
        assert ti.xcom["return_value"]["success"] is True
        document = json.loads((tmp_path / "results" / LABEL / f"{suite}.json").read_text())
        assert document["success"] and document["defects"] == []
        assert document["interval"]["start"] == START.isoformat()


def _upstream(task_id: str) -> tuple[str, ...]:
    """Validate tasks that must pass for the DAG to reach ``task_id``."""
    if task_id in MART_TASKS:
        return RAW_TASKS
    if task_id == "validate_raw_schema":
        return ()
    # raw events, volume and event mix run side by side after the schema: only it must pass
    return ("validate_raw_schema",)


@pytest.mark.parametrize("defect", [pytest.param(name, id=name) for name in DEFECTS])
def test_each_bad_batch_fails_its_suite(defect, source, data, tmp_path) -> None:
    spec = DEFECTS[defect]
    bad = build_bad_batch(defect, data, seed=SEED)
    log = make_log(tmp_path / "log", source, bad)
    reports = tmp_path / "gx"
    for task_id in _upstream(spec.task_id):
        error, _ = run_suite(task_id, log, reports)
        assert error is None, f"{task_id} must pass so that {spec.task_id} is reached:\n{error}"
    if spec.task_id in MART_TASKS or any(task in MART_TASKS for task, _ in spec.also):
        log.build_marts(tmp_path / "dbt")
    for task_id, named in spec.also:  # after dbt, these suites catch it too
        error, _ = run_suite(task_id, log, reports)
        assert error is not None and named in error.defects, f"{task_id} passed {defect}"

    error, ti = run_suite(spec.task_id, log, reports)

    assert error is not None, f"{spec.task_id} passed the {defect} batch"
    message = str(error)
    assert spec.expect in error.defects, message
    assert f"[{spec.expect}]" in message and "Data validation failed:" in message
    assert f"Report: {reports}" in message
    assert ti.xcom["return_value"]["success"] is False  # the provider's result, in XCom
    suite = TASK_SUITES[spec.task_id]
    document = json.loads((reports / "results" / LABEL / f"{suite}.json").read_text())
    assert spec.expect in document["defects"] and not document["success"]
    # the raw log keeps the bad batch as delivered
    if bad.tables:
        with log.warehouse.connect() as con:
            kept = con.execute("select count(*) from raw.browsing_train "
                               "where batch_id like 'corrupt:%'").fetchall()[0][0]
        assert kept == bad.tables["browsing_train"].num_rows


def test_messages_show_counts_and_examples(source, data, tmp_path) -> None:
    log = make_log(tmp_path / "log", source, build_bad_batch("bad_event_types", data, seed=SEED))
    error, _ = run_suite("validate_raw_events", log, tmp_path / "gx")
    lines = str(error).splitlines()
    assert lines[0].startswith("Data validation failed: raw.browsing_train, data interval "
                               "2026-11-18 11:00 UTC .. 2026-11-18 12:00 UTC (suite browsing_train")
    (failure,) = [line for line in lines if "[unknown_event_type]" in line]
    assert "event_type values outside the contract" in failure
    assert "rows (" in failure and "'click'" in failure  # counts and an example value


def test_corpus_has_one_loadable_folder_per_defect(data, tmp_path) -> None:
    folders = write_corpus(tmp_path / "corpus", data)
    assert set(folders) == set(DEFECTS)
    for name, folder in folders.items():
        files = sorted(p.name for p in folder.iterdir())
        if name == "empty_hour":
            assert files == []
            continue
        assert "browsing_train.parquet" in files, name
        summary = load_dir(folder, DuckDBWarehouse(tmp_path / f"{name}.duckdb"), batch_id=name)
        assert summary.rows["browsing_train"] > 0
    assert (folders["retyped_column"] / "drift.sql").read_text().startswith("alter table")


def test_dag_validates_raw_before_dbt_and_marts_after_it() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from notifiers.skiff_alerts import SkiffAlertNotifier
    from operators.validate import GXValidateIntervalOperator

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags["skiff_hourly"]
    for task_id, suite in TASK_SUITES.items():
        task = dag.get_task(task_id)
        assert isinstance(task, GXValidateIntervalOperator) and task.suite == suite
    prepare = [t for t in dag.task_ids if t.startswith("prepare.")]
    for task_id in RAW_TASKS:  # every dbt task waits for the raw checks
        downstream = {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=False)}
        assert set(prepare) <= downstream, task_id
    for task_id in MART_TASKS:  # the mart checks wait for every dbt task
        upstream = {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}
        assert set(prepare) <= upstream, task_id
        downstream = {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=False)}
        assert {t for t in dag.task_ids if t.startswith("train_")} <= downstream, task_id
    assert isinstance(dag.default_args["on_failure_callback"], SkiffAlertNotifier)
    assert isinstance(dag.on_failure_callback, SkiffAlertNotifier)


def test_mart_keys_the_dbt_models_guarantee_are_still_checked(good_log) -> None:
    """fct_sessions is unique by session_id and has no session without events by
    construction (dbt groups events by session), so no bad batch reaches these two
    expectations; they restate the mart's grain, and fail on a mart that breaks it."""
    import great_expectations as gx
    from hooks.gx_warehouse import GXWarehouseHook

    from skiff.config import SkiffConfig, WarehouseConfig
    from skiff.validate import SuiteSpec, ValidationWindow, failures
    from skiff.validate.parameters import suite_parameters

    config = SkiffConfig()
    window = ValidationWindow.of(START, END)
    suite = SuiteSpec.load("fct_sessions", config.validation.suites_dir).render(
        suite_parameters(config, window))
    frame = GXWarehouseHook(WarehouseConfig(duckdb_path=good_log.path)).dataframe(suite.sql)
    broken = frame.copy()
    broken.loc[len(broken)] = broken.iloc[0]  # one session twice
    broken.loc[1, "count_events"] = 0  # one session without events
    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("p").add_dataframe_asset("fct_sessions")
             .add_batch_definition_whole_dataframe("b"))
    result = gx.ValidationDefinition(
        name="v", data=batch, suite=context.suites.add(suite.to_gx())
    ).run(batch_parameters={"dataframe": broken}, result_format="SUMMARY")
    assert {f.defect for f in failures(result.to_json_dict())} == {
        "duplicate_session_ids", "empty_sessions"}


def _arrive_late(log, copies: int, events: int = 150) -> int:
    """Deliver again, arriving during the interval, ``events`` browsing events that happened
    two hours before it (``copies`` times each, as a client retrying would); returns the
    interval's own arrivals."""
    with log.warehouse.connect() as con:
        (own,) = con.execute("select count(*) from raw.browsing_train where arrival_ts_ms >= ? "
                             "and arrival_ts_ms < ?", [ms(START), ms(END)]).fetchone()
        for copy in range(copies):
            con.execute(
                "insert into raw.browsing_train select * replace ("
                "  ? + row_number() over (order by server_timestamp_epoch_ms) * 1000 "
                "  as arrival_ts_ms, ? as batch_id) "
                "from raw.browsing_train where server_timestamp_epoch_ms >= ? "
                "order by server_timestamp_epoch_ms limit ?",
                [ms(START), f"late:{copy}", ms(START) - 7_200_000, events])
    return own


def _rows_checked(reports: Path) -> int:
    document = json.loads((reports / "results" / LABEL / "browsing_train.json").read_text())
    return max(r["result"]["element_count"] for r in document["result"]["results"]
               if r["result"].get("element_count") is not None)


def test_late_events_are_validated_in_the_interval_they_arrived_in(source, tmp_path) -> None:
    """The raw checks take the rows that ARRIVED in the interval (what its dbt run rebuilds
    from), not those that happened in it: events of two hours before, arriving now, are
    checked now; delivered twice, they are the interval's duplicates."""
    once = make_log(tmp_path / "once", source)
    own = _arrive_late(once, copies=1)
    error, _ = run_suite("validate_raw_events", once, tmp_path / "gx-once")
    assert error is None, error
    assert _rows_checked(tmp_path / "gx-once") == own + 150

    twice = make_log(tmp_path / "twice", source)
    _arrive_late(twice, copies=2)
    error, _ = run_suite("validate_raw_events", twice, tmp_path / "gx-twice")
    assert error is not None and "duplicate_events" in error.defects, error


def _deliver_ahead(log, arrival_ms: int, batch_id: str) -> None:
    """A bad delivery: 100 events timestamped two days from now, arriving at ``arrival_ms``, in
    a load batch that also holds 20 good events arriving just after the interval's start, and
    ingested during the interval (as a live ingest of the previous interval is)."""
    with log.warehouse.connect() as con:
        ahead = int(time.time() * 1000) - ms(START) + 2 * 86_400_000
        for shift, arrival, rows in ((ahead, arrival_ms, 100), (0, ms(START) + 5_000, 20)):
            con.execute(
                "insert into raw.browsing_train select * replace ("
                "  server_timestamp_epoch_ms + ? as server_timestamp_epoch_ms, "
                "  ? as arrival_ts_ms, ? as batch_id, ? as ingested_at) "
                "from raw.browsing_train where server_timestamp_epoch_ms >= ? "
                "order by server_timestamp_epoch_ms limit ?",
                [shift, arrival, batch_id, START + (END - START) / 2, ms(START) - 3_600_000,
                 rows])


def test_a_bad_delivery_fails_the_interval_it_arrived_in_only(source, tmp_path) -> None:
    """Events timestamped ahead that arrived in the previous interval are that interval's
    defect: not this one's, though their batch holds rows arriving in this interval and was
    ingested during it (the soak found the next interval failing too)."""
    before = make_log(tmp_path / "before", source)
    _deliver_ahead(before, ms(START) - 60_000, "landing:previous")
    error, _ = run_suite("validate_raw_events", before, tmp_path / "gx-before")
    assert error is None, error

    within = make_log(tmp_path / "within", source)
    _deliver_ahead(within, ms(START) + 60_000, "landing:this")
    error, _ = run_suite("validate_raw_events", within, tmp_path / "gx-within")
    assert error is not None and "future_timestamps" in error.defects, error


# --------------------------------------------------------------------------- event mix


def _planted(data: IntervalData, defect: str, column: str, share: float, value) -> BadBatch:
    """The interval's good rows with ``column`` set to ``value`` (a callable: per row) on
    ``share`` of them (of the product events for a SKU)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = data.browsing
    rng = np.random.default_rng(SEED)
    candidates = np.arange(rows.num_rows)
    if column == "product_sku_hash":
        candidates = np.flatnonzero(
            pc.equal(rows.column("event_type"), "event_product").to_numpy(zero_copy_only=False))
    chosen = set(rng.choice(candidates, size=round(share * len(candidates)), replace=False))
    values = [(value(i) if callable(value) else value) if i in chosen else v
              for i, v in enumerate(rows.column(column).to_pylist())]
    table = rows.set_column(rows.schema.get_field_index(column), column,
                            pa.array(values, pa.string()))
    return BadBatch(defect, {"browsing_train": table})


@pytest.mark.parametrize(("column", "share", "value", "defect"), [
    pytest.param("hashed_url", 0.06, None, "missing_values", id="6pct-urls-null"),
    pytest.param("product_sku_hash", 0.08, lambda i: f"{i:064x}", "unknown_skus",
                 id="8pct-skus-unknown"),
])
def test_event_mix_fails_a_sudden_share_the_absolute_caps_allow(
        column, share, value, defect, source, data, tmp_path) -> None:
    """6 % of the events without a URL, or 8 % of the product events with SKUs the catalogue
    never held: under SKIFF_MAX_UNKNOWN_SKU_SHARE (10 %), nothing else alerts, but the hours
    before had none."""
    log = make_log(tmp_path / "log", source, _planted(data, defect, column, share, value))
    for task_id in ("validate_raw_events", "validate_volume"):
        error, _ = run_suite(task_id, log, tmp_path / "gx")
        assert error is None, f"{task_id} caught it already:\n{error}"
    error, _ = run_suite("validate_event_mix", log, tmp_path / "gx")
    assert error is not None and error.defects == (defect,), error
    (line,) = [line for line in str(error).splitlines() if f"[{defect}]" in line]
    assert "0.00%; at most" in line, line  # the baseline median and the bound, in words


def test_event_mix_skips_its_checks_without_history(source, tmp_path) -> None:
    """The log's first hours: nothing to compare with, every check skipped, the task green."""
    from skiff.data import load_dir

    log = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(log)
    load_dir(source, warehouse, batch_id="first", since_ms=ms(START), until_ms=ms(END),
             arrival="event")
    error, _ = run_suite("validate_event_mix", Log(log, None), tmp_path / "gx")
    assert error is None, error
    document = json.loads((tmp_path / "gx" / "results" / LABEL / "event_mix.json").read_text())
    assert document["success"] and len(document["skipped"]) == len(METRICS)
