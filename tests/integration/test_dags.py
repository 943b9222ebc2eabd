"""The DAG folder: imports cleanly and fast, and skiff_hourly renders every dbt model."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pendulum
import pytest

from skiff.config import DbtConfig

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(REPO / "dags"))
    bag.parse_seconds = time.perf_counter() - started
    return bag


def test_no_import_errors(dagbag) -> None:
    assert not dagbag.import_errors, dagbag.import_errors
    assert "skiff_hourly" in dagbag.dag_ids


def test_every_dag_is_documented_tagged_and_retried(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "skiff" in dag.tags, dag_id
        assert dag.doc_md, dag_id
        assert dag.default_args.get("retries", 0) >= 1, dag_id
        assert dag.catchup is False, dag_id


def test_schedule_and_run_limits(dagbag) -> None:
    dag = dagbag.dags["skiff_hourly"]
    assert dag.max_active_runs == 1
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"  # hour-long data intervals
    assert dag.timetable.expression == "0 * * * *"
    schema = dag.params.dump()
    assert schema["full_refresh"] is False and schema["full_retrain"] is False


def test_schedule_and_ingest_follow_the_configuration() -> None:
    """SKIFF_SCHEDULE sets the cron of the data intervals (every 5 minutes: 5-minute
    intervals); SKIFF_INGEST_SOURCE=landing makes ingest_events the deferrable landing ingest,
    upstream of the raw checks."""
    from airflow.dag_processing.dagbag import DagBag

    from environ import environ

    with environ(SKIFF_SCHEDULE="0 */2 * * *", SKIFF_INGEST_SOURCE="landing",
                 SKIFF_INGEST_GRACE_MINUTES="15"):
        bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["skiff_hourly"]
    assert dag.timetable.expression == "0 */2 * * *"
    ingest = dag.get_task("ingest_events")
    assert type(ingest).__name__ == "LandingIngestOperator"
    assert ingest.deferrable and ingest.grace_minutes == 15
    assert {"validate_raw_schema"} <= {t.task_id for t in ingest.downstream_list}
    with environ(SKIFF_SCHEDULE="*/5 * * * *", SKIFF_INGEST_SOURCE="landing"):
        fast = DagBag(dag_folder=str(REPO / "dags"))
    assert not fast.import_errors, fast.import_errors
    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(fast.dags["skiff_hourly"].timetable)  # the scheduler's
    interval = timetable.infer_manual_data_interval(
        run_after=pendulum.datetime(2026, 11, 25, 10, 7, 30, tz="UTC"))
    assert (interval.start, interval.end) == (pendulum.datetime(2026, 11, 25, 10, 0, tz="UTC"),
                                              pendulum.datetime(2026, 11, 25, 10, 5, tz="UTC"))
    with environ(SKIFF_SCHEDULE="*/7 * * * *"):
        bad = DagBag(dag_folder=str(REPO / "dags"))
    errors = "".join(bad.import_errors.values())
    assert "SKIFF_SCHEDULE='*/7 * * * *': the minute step /7 does not divide the hour" in errors


def test_one_cosmos_task_per_dbt_model(dagbag) -> None:
    manifest = json.loads(DbtConfig().manifest_path.read_text())
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    models = {n["name"] for n in nodes}
    assert {"stg_browsing_events", "fct_sessions", "fct_session_sequences", "dim_products",
            "stg_predictions", "mon_serving_hourly", "mon_quality_hourly",
            "mon_drift_hourly"} <= models  # the monitoring marts are built every hour too
    task_ids = set(dagbag.dags["skiff_hourly"].task_ids)
    for model in models:
        assert any(t.startswith(f"prepare.{model}") for t in task_ids), (model, sorted(task_ids))
    # each model's tests run right after it
    assert "prepare.fct_sessions.test" in task_ids


def test_ingest_runs_before_prepare(dagbag) -> None:
    dag = dagbag.dags["skiff_hourly"]
    ingest = dag.get_task("ingest_events")
    downstream = {t.task_id for t in ingest.get_flat_relatives(upstream=False)}
    assert "prepare.fct_sessions.run" in downstream


def test_parsing_is_fast_and_light(dagbag) -> None:
    """Parse-time budget: no dbt, SQL or heavy imports (the benchmark measures it precisely)."""
    import subprocess
    import sys

    code = (
        "import sys, time; t=time.perf_counter();"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"DagBag(dag_folder={str(REPO / 'dags')!r});"
        "heavy=[m for m in ('tensorflow','great_expectations','metaflow','duckdb','pandas','dbt.cli.main')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_training_on_batch_defers(dagbag) -> None:
    """On AWS Batch the train tasks defer (the run waits in the triggerer, no worker slot);
    locally they run in the worker and stream the flow's output."""
    from airflow.dag_processing.dagbag import DagBag

    from environ import environ

    local = dagbag.dags["skiff_hourly"]
    assert not any(local.get_task(t).deferrable for t in ("train_intent", "train_rec"))
    with environ(SKIFF_TRAIN_ON="batch", METAFLOW_DATASTORE_SYSROOT_S3="s3://bucket/mf",
                 SKIFF_BATCH_QUEUE="gpu", SKIFF_WAREHOUSE="snowflake",
                 SKIFF_BATCH_JOB_ROLE_ARN="arn:aws:iam::123456789012:role/skiff-batch"):
        bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert all(bag.dags["skiff_hourly"].get_task(t).deferrable for t in ("train_intent", "train_rec"))


def test_full_retrain_param_reaches_both_flows_as_a_boolean(dagbag) -> None:
    """skiff_hourly's full_retrain param renders into each train task's flow parameters and
    the launch reads it back as the boolean the flows' ``full_retrain`` Parameter takes."""
    import jinja2

    from skiff.config import TrainingConfig
    from skiff.train.launch import flow_launch

    dag = dagbag.dags["skiff_hourly"]
    for task_id in ("train_intent", "train_rec"):
        template = dag.get_task(task_id).flow_params["full_retrain"]
        for value in (True, False):
            rendered = jinja2.Template(template).render(params={"full_retrain": value})
            launch = flow_launch("flow.py", {"full_retrain": rendered}, TrainingConfig())
            assert launch.run_args["full_retrain"] is value, (task_id, rendered)
            assert launch.argv()[-2:] == ["--full_retrain", str(value)]


def test_prepare_runs_one_dbt_build_watched_by_the_model_tasks(dagbag) -> None:
    """Watcher mode (the default): one producer task runs `dbt build` with the run's
    full_refresh param and interval; each model's task and its tests' task report it.
    On DuckDB they reschedule while they wait (one task at a time; `dags test` runs tasks in
    one process), and the mart checks wait for the build's end, not only for the models."""
    from cosmos.constants import InvocationMode

    dag = dagbag.dags["skiff_hourly"]
    producer = dag.get_task("prepare.dbt_producer_watcher")
    assert type(producer).__name__ == "DbtProducerWatcherOperator"
    assert producer.base_cmd == ["build"]
    # dbt in a process of its own, the one beside this Python (its threads do not wait on the
    # XComs the producer pushes for its events); a model task's retry in-process
    assert producer.invocation_mode == InvocationMode.SUBPROCESS
    assert producer.dbt_executable_path == str(Path(sys.executable).with_name("dbt"))
    assert not producer.exclude  # every model, the monitoring marts' too
    assert producer.full_refresh == "{{ params.full_refresh }}"
    # the interval in the environment, not in --vars (new vars every hour: a full dbt parse)
    assert producer.env["SKIFF_DBT_INTERVAL_START"] == "{{ data_interval_start.isoformat() }}"
    assert producer.env["SKIFF_DBT_INTERVAL_END"] == "{{ data_interval_end.isoformat() }}"
    assert set(producer.env) == {"SKIFF_DUCKDB_PATH", "SKIFF_DBT_TARGET",
                                 "SKIFF_DBT_INTERVAL_START", "SKIFF_DBT_INTERVAL_END",
                                 "SKIFF_DUCKDB_MEMORY_LIMIT", "DBT_EXCLUDE_RESOURCE_TYPES"}
    # the dbt unit tests test SQL, in CI (test_dbt.py), not each hour's data
    assert producer.env["DBT_EXCLUDE_RESOURCE_TYPES"] == "unit_test"
    # its dbt process has the worker's environment too (skiff.env's quiet defaults)
    assert producer.append_env
    # the profile's duckdb target reads it (include/dbt/profiles.yml)
    assert producer.env["SKIFF_DUCKDB_MEMORY_LIMIT"] == DbtConfig.from_env().duckdb_memory_limit
    assert set(producer.vars) == {"session_lookback_hours", "raw_schema"}
    assert {t.task_id for t in producer.upstream_list} >= {"validate_raw_events", "validate_volume"}
    run, test = dag.get_task("prepare.fct_sessions.run"), dag.get_task("prepare.fct_sessions.test")
    assert (type(run).__name__, type(test).__name__) == ("DbtRunWatcherOperator",
                                                         "DbtTestWatcherOperator")
    assert test.upstream_task_ids == {run.task_id}  # a model's tests gate what reads it
    for sensor in (run, test):
        assert (sensor.deferrable, sensor.mode, sensor.poke_interval) == (False, "reschedule", 2)
        assert sensor.invocation_mode == InvocationMode.DBT_RUNNER
        assert sensor.producer_task_id == producer.task_id
    # a test of two models counts among the tests of each; no task of its own
    assert not [t for t in dag.task_ids if t.startswith("prepare.relationships_")]
    for check in ("validate_session_events", "validate_sessions", "validate_products"):
        assert "prepare.dbt_producer_watcher_done" in dag.get_task(check).upstream_task_ids


def test_prepare_mode_follows_the_configuration() -> None:
    """SKIFF_DBT_EXECUTION_MODE=local: one dbt invocation per task, no producer, a test of two
    models in its own task after both; on Snowflake the watcher's tasks defer instead."""
    from airflow.dag_processing.dagbag import DagBag
    from cosmos.constants import InvocationMode

    from environ import environ

    with environ(SKIFF_DBT_EXECUTION_MODE="local"):
        bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["skiff_hourly"]
    assert not [t for t in dag.task_ids if "producer" in t]
    run = dag.get_task("prepare.fct_sessions.run")
    assert type(run).__name__ == "DbtRunLocalOperator"
    assert run.invocation_mode == InvocationMode.DBT_RUNNER  # many short runs: in-process
    assert run.full_refresh == "{{ params.full_refresh }}"
    detached = [t for t in dag.task_ids if t.startswith("prepare.relationships_")]
    assert len(detached) == 2, detached
    with environ(SKIFF_WAREHOUSE="snowflake"):
        snowflake = DagBag(dag_folder=str(REPO / "dags"))
    assert not snowflake.import_errors, snowflake.import_errors
    sensor = snowflake.dags["skiff_hourly"].get_task("prepare.fct_sessions.run")
    assert sensor.deferrable and sensor.mode == "poke"
    with environ(SKIFF_DBT_EXECUTION_MODE="async"):
        bad = DagBag(dag_folder=str(REPO / "dags"))
    assert "SKIFF_DBT_EXECUTION_MODE" in "".join(bad.import_errors.values())


def test_a_stale_dbt_manifest_is_an_import_error_naming_the_fix(tmp_path) -> None:
    """A manifest older than the dbt project would render tasks for nodes dbt no longer
    builds, which wait until their sensor's timeout: the DAG does not load, and says why."""
    import os
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from environ import environ

    project = shutil.copytree(DbtConfig().project_dir, tmp_path / "dbt",
                              ignore=shutil.ignore_patterns("target", "logs"))
    manifest = project / "target" / "manifest.json"
    manifest.parent.mkdir()
    shutil.copy(DbtConfig().manifest_path, manifest)
    with environ(SKIFF_DBT_PROJECT_DIR=str(project)):
        assert not DagBag(dag_folder=str(REPO / "dags")).import_errors
        model = project / "models" / "marts" / "fct_sessions.sql"
        os.utime(model, (manifest.stat().st_atime + 5, manifest.stat().st_mtime + 5))
        errors = DagBag(dag_folder=str(REPO / "dags")).import_errors
    (error,) = [text for path, text in errors.items() if path.endswith("skiff_hourly.py")]
    assert "models/marts/fct_sessions.sql changed since" in error and "make install" in error


def test_skiff_hourly_updates_the_assets_skiff_monitor_is_scheduled_on(dagbag) -> None:
    """Airflow 3 assets, not Cosmos's URIs: ingest_events updates the raw tables (the prediction
    log among them), each mart's dbt task its mart; skiff_monitor runs once the prediction log
    and every monitoring mart were updated."""
    from assets.tables import MART_TABLES, MONITOR_MARTS, table_asset

    hourly, monitor = dagbag.dags["skiff_hourly"], dagbag.dags["skiff_monitor"]
    cosmos = [t for t in hourly.tasks if t.task_id.startswith("prepare.")]
    assert cosmos and not any(getattr(t, "emit_datasets", False) for t in cosmos)
    outlets = {t.task_id: [a.uri for a in t.outlets] for t in hourly.tasks if t.outlets}
    assert "x-skiff://warehouse/raw/predictions" in outlets.pop("ingest_events")
    manifest = json.loads(DbtConfig().manifest_path.read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert outlets == {f"prepare.{m}.run": [f"x-skiff://warehouse/marts/{m}"]
                       for m in (*MART_TABLES, *MONITOR_MARTS) if m in models}
    scheduled = {a.uri for a in monitor.timetable.asset_condition.objects}
    assert scheduled == {table_asset("raw", "predictions").uri,
                         *(table_asset("marts", m).uri for m in MONITOR_MARTS)}
    assert type(monitor.timetable.asset_condition).__name__ == "AssetAll"


def test_skiff_monitor_checks_then_asks_for_a_retrain(dagbag) -> None:
    """snapshot, then the three checks; a quality or drift breach (not a serving one)
    triggers skiff_hourly with every session trained on, at most once a day."""
    from airflow.dag_processing.dagbag import DagBag

    from environ import environ

    dag = dagbag.dags["skiff_monitor"]
    assert dag.get_task("snapshot").downstream_task_ids == {
        "check_serving", "check_quality", "check_drift"}
    assert dag.get_task("within_thresholds").upstream_task_ids == {
        "check_serving", "check_quality", "check_drift"}
    retrain = dag.get_task("request_retrain")
    assert retrain.upstream_task_ids == {"check_quality", "check_drift"}
    assert retrain.trigger_rule == "one_failed" and retrain.skip_when_already_exists
    assert (retrain.trigger_dag_id, retrain.conf) == (
        "skiff_hourly", {"train_sample_sessions": 0, "full_retrain": True})
    assert retrain.conf.keys() <= dagbag.dags["skiff_hourly"].params.keys()
    assert dag.get_task("check_drift").suite == "mon_drift"
    assert dag.max_active_tasks == 1 and dag.params["window_hours"] == 3
    with environ(SKIFF_MONITOR_RETRAIN="off", SKIFF_MONITOR_WINDOW_HOURS="6"):
        bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert "request_retrain" not in bag.dags["skiff_monitor"].task_ids
    assert bag.dags["skiff_monitor"].params["window_hours"] == 6
