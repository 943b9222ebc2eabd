"""
### skiff_hourly — the hourly Skiff pipeline

Every step of `SKIFF_SCHEDULE` (a cron, UTC; default every hour, `*/5 * * * *` for a quick
demo), for the data interval `[data_interval_start, data_interval_end)` between two steps:

1. **ingest_events**: with `SKIFF_INGEST_SOURCE=landing`, appends the landing files that
   arrived in the interval (the collector's, or Firehose's on S3), once each and all or
   nothing, after a deferred grace period for late files (`SKIFF_INGEST_GRACE_MINUTES`);
   with `replay` (default, while `SKIFF_REPLAY` is on), the interval's events of the
   generated replay source.
2. **validate_raw** (Great Expectations, before dbt reads the hour): `validate_raw_schema`
   (the raw tables' columns and types against the contract), then `validate_raw_events`,
   `validate_raw_searches` and `validate_raw_catalogue` (the rows that arrived in the
   interval, every field against `include/skiff/data/contract.toml`: presence by event
   type, formats, values, ranges, duplicates) and `validate_volume` (the interval's event
   count against the recent hours' median; an empty hour fails) and `validate_event_mix` (the
   shares of event types, actions, missing values, unknown SKUs and duplicates against the
   recent hours' medians).
3. **prepare**: the dbt project in `include/dbt`, rendered by Cosmos from its manifest: one task
   per model, each followed by its tests. Incremental models read only the new hour
   (plus a lookback for sessions that started earlier). With `SKIFF_DBT_EXECUTION_MODE=watcher`
   (default) `dbt_producer_watcher` runs one `dbt build` of the project and each model's task
   and its tests' task report what the build did (a failure there fails them; their retry
   runs dbt for that model alone); with `local` each task runs dbt itself.
4. **validate** (Great Expectations, on what dbt built): `validate_session_events`
   (sessionised events: order, gaps, SKUs known to the catalogue), `validate_sessions`
   (`fct_sessions`: keys, funnel order, intent label rate) and `validate_products`
   (`dim_products`: keys, price buckets). With `full_refresh`, over the whole log (the
   models were rebuilt from all of it), inside the warehouse.
5. **train**: `train_intent` and `train_rec` run the Metaflow flows of `include/flows`
   (locally, or on AWS Batch with a GPU when `SKIFF_TRAIN_ON=batch`); each scores its model
   against baselines on held-out sessions and pushes `{pathspec, metrics, bundle}` to XCom.

Each validate task runs one suite of `include/gx/suites` on the interval's slice of its table,
keeps the result under `$SKIFF_HOME/gx` (JSON and Data Docs) and fails, without retrying,
with a message naming the table, the defects and examples of bad rows. A failure stops
everything downstream and fires the failure alert (`on_failure_callback`: a Slack message
when the `slack_alerts` connection exists, a log line otherwise).

6. **release_intent / release_rec**: `gate_<m>` (beat the champion, or on the first run the
   baselines; a rejected challenger ends green with the reason) → deploy (local model server
   or SageMaker) → `smoke_test_<m>` through the `/predict` Lambda handler → `promote_<m>`;
   `rollback_<m>` restores the previous model when deploy or smoke test fails.

Its tasks update Airflow assets (`plugins/assets/tables.py`): `ingest_events` the raw tables
(the prediction log `raw.predictions` among them), each mart's dbt task its mart; skiff_monitor
runs once the prediction log and the monitoring marts were updated.

Trigger it from the UI with **Trigger DAG w/ config** to set the params below.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime, timedelta

from airflow.sdk import (
    DAG,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    SyncCallback,
    TaskGroup,
)
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.profiles import SnowflakeUserPasswordProfileMapping

from assets.tables import mart_assets, raw_assets
from notifiers.skiff_alerts import (
    DAG_FAILURE_TEXT,
    RUN_DURATION_TEXT,
    TASK_FAILURE_TEXT,
    SkiffAlertNotifier,
)
from operators.ingest import ReplayIngestOperator
from operators.ingest import LandingIngestOperator
from operators.metaflow_run import MetaflowRunOperator
from operators.validate import GXValidateIntervalOperator
from skiff.config import SkiffConfig
from taskgroups.release import release_tasks

CONFIG = SkiffConfig.from_env()
CONFIG.dbt.check_manifest()  # a clear import error, not tasks waiting for nodes dbt lacks
# the dbt installed beside this Python, else the one on PATH (the official image installs with
# pip --user): the watcher's producer starts it as a process
DBT_EXECUTABLE = (shutil.which("dbt", path=os.path.dirname(sys.executable))
                  or shutil.which("dbt") or "dbt")
DUCKDB = CONFIG.warehouse.backend == "duckdb"
WATCHER = CONFIG.dbt.execution_mode == "watcher"

if not WATCHER:
    PREPARE_ARGS: dict = {}
elif DUCKDB:
    # One task at a time on DuckDB, and the producer (priority 20) goes first: a model's task
    # normally finds its result on its first look. One that looks before the build has
    # started gives its slot back and looks again 2 s later (reschedule), rather than
    # deferring: `airflow dags test` (make run, the tests, the benchmarks) runs the tasks one
    # after another in one process, where a deferred task's trigger would wait for a producer
    # that cannot start until it returns.
    PREPARE_ARGS = {"deferrable": False, "mode": "reschedule", "poke_interval": 2}
else:
    PREPARE_ARGS = {"deferrable": True}  # the tasks wait in the triggerer during the build

if DUCKDB:
    PROFILE_CONFIG = ProfileConfig(
        profile_name="skiff",
        target_name="duckdb",
        profiles_yml_filepath=CONFIG.dbt.project_dir / "profiles.yml",
    )
else:
    PROFILE_CONFIG = ProfileConfig(
        profile_name="skiff",
        target_name="snowflake",
        profile_mapping=SnowflakeUserPasswordProfileMapping(
            conn_id=CONFIG.warehouse.snowflake_conn_id, profile_args={"schema": "analytics"}
        ),
    )

with DAG(
    dag_id="skiff_hourly",
    description="Events -> dbt -> validate -> train -> gate -> deploy, each SKIFF_SCHEDULE step.",
    # SKIFF_SCHEDULE (default hourly, UTC): a data interval is one step of the cron, of any
    # length (a landing file belongs to the interval of its first arrival; the batch ids, the
    # replay slice, the dbt window and the volume reference follow the interval). The grace
    # wait, the run duration alert and dagrun_timeout are durations of the work, not of the
    # interval: they stay as set.
    schedule=CronDataIntervalTimetable(CONFIG.ingest.schedule, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # DuckDB is a single-writer file: run one task at a time on it. Snowflake runs in parallel.
    max_active_tasks=1 if DUCKDB else 8,
    dagrun_timeout=timedelta(hours=2),
    default_args={
        "owner": "skiff",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "on_failure_callback": SkiffAlertNotifier(
            text=TASK_FAILURE_TEXT, slack_conn_id=CONFIG.alerts.slack_conn_id
        ),
    },
    on_failure_callback=SkiffAlertNotifier(
        text=DAG_FAILURE_TEXT, slack_conn_id=CONFIG.alerts.slack_conn_id
    ),
    # A run still going SKIFF_RUN_DURATION_ALERT_MINUTES after it was queued: the executor
    # runs the same notifier with the deadline's context (Airflow 3 has no SLAs). 0: off.
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=CONFIG.alerts.run_duration_alert,
        callback=SyncCallback(
            SkiffAlertNotifier,
            kwargs={"text": RUN_DURATION_TEXT, "slack_conn_id": CONFIG.alerts.slack_conn_id},
        ),
    ) if CONFIG.alerts.run_duration_alert else None,
    params={
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Rebuild every incremental dbt model from the whole raw log; the "
                        "model checks then cover the whole log.",
        ),
        "session_lookback_hours": Param(
            CONFIG.dbt.session_lookback_hours,
            type="integer",
            minimum=1,
            maximum=168,
            title="Session lookback (hours)",
            description="How far back an hourly run reads the earlier events of the sessions it updates.",
        ),
        "train_sample_sessions": Param(
            CONFIG.training.max_sessions,
            type="integer",
            minimum=0,
            title="Training sample (sessions)",
            description="Train and evaluate on the latest this many sessions (0 = all).",
        ),
        "full_retrain": Param(
            False,
            type="boolean",
            title="Full retrain",
            description="Train from scratch, not warm-started from the champion (when "
                        "SKIFF_TRAIN_WARM_START=on); the flows' full_retrain parameter.",
        ),
    },
    render_template_as_native_obj=False,
    tags=["skiff", "ml", "dbt"],
    doc_md=__doc__,
) as dag:
    prepare = DbtTaskGroup(
        group_id="prepare",
        # dbt parameters
        project_config=ProjectConfig(
            dbt_project_path=CONFIG.dbt.project_dir,
            manifest_path=CONFIG.dbt.manifest_path,
            install_dbt_deps=False,  # the project has no packages
            # The data interval goes in the environment, not in --vars: dbt keys its partial
            # parse (kept between runs by Cosmos) on the vars, so new vars every hour meant
            # parsing the whole project every hour (include/dbt/macros/skiff_window.sql).
            env_vars={
                "SKIFF_DUCKDB_PATH": str(CONFIG.warehouse.duckdb_path),
                "SKIFF_DBT_TARGET": CONFIG.dbt.target,
                "SKIFF_DUCKDB_MEMORY_LIMIT": CONFIG.dbt.duckdb_memory_limit,
                "SKIFF_DBT_INTERVAL_START": "{{ data_interval_start.isoformat() }}",
                "SKIFF_DBT_INTERVAL_END": "{{ data_interval_end.isoformat() }}",
                # dbt's unit tests check the models' SQL on fixed rows, not the data: they
                # run in CI (tests/integration/test_dbt.py), not every hour; the data tests do
                "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
            },
            dbt_vars={
                "session_lookback_hours": "{{ params.session_lookback_hours }}",
                "raw_schema": CONFIG.warehouse.raw_schema,
            },
        ),
        profile_config=PROFILE_CONFIG,
        # SKIFF_DBT_EXECUTION_MODE: watcher (one `dbt build` in dbt_producer_watcher, whose
        # progress each model's task and its tests' task report) or local (dbt per task)
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER if WATCHER else ExecutionMode.LOCAL,
            # in-process; the watcher's producer runs dbt as a process (below)
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=DBT_EXECUTABLE,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            # local: a test reading two models (int_session_events' relationships to
            # dim_products) runs after both, as its own task, not after the first of them.
            # watcher: `dbt build` runs it after both already, and it counts among the tests
            # of each of its models (a task of its own would find no result of its own).
            should_detach_multiple_parents_tests=not WATCHER,
            # Skiff's tasks declare proper Airflow 3 assets (below), not Cosmos's OpenLineage
            # URIs (rewritten for Airflow 3, with a warning in every dbt task's log)
            emit_datasets=False,
        ),
        # task parameters (the producer's: full_refresh, as the local tasks'; dbt_vars and
        # env_vars above, templated, reach every dbt invocation, the build's and a retry's)
        operator_args={"full_refresh": "{{ params.full_refresh }}", **PREPARE_ARGS},
    )

    if WATCHER:
        # The producer's `dbt build` runs as a process of its own, Cosmos relaying its JSON
        # log. In-process, dbt's threads pushed the XComs its events become, each a round trip
        # through Airflow's API slowed by dbt's busy threads, and waited on them: the build
        # took twice as long as dbt alone (docs/dbt.md).
        # A model task's retry (its model alone) stays in-process, where a failure's message,
        # and so its alert, names dbt's failing node.
        dag.task_dict["prepare.dbt_producer_watcher"].invocation_mode = InvocationMode.SUBPROCESS

    # each mart's task updates its asset (the monitoring marts: skiff_monitor's schedule)
    for model, asset in mart_assets(CONFIG.warehouse.marts_schema).items():
        if (task := dag.task_dict.get(f"prepare.{model}.run")) is not None:
            task.outlets = [asset]

    # Great Expectations suites of include/gx/suites, one task each. The raw checks run
    # before dbt, so a bad hour never reaches the marts; the mart checks after it.
    with TaskGroup("validate_raw", prefix_group_id=False,
                   tooltip="Great Expectations on the interval's raw events") as validate_raw:
        validate_raw_schema = GXValidateIntervalOperator(
            task_id="validate_raw_schema",
            suite="raw_schema",
            doc_md="The raw log's tables have the contract's columns and types.",
        )
        validate_raw_schema >> [
            GXValidateIntervalOperator(
                task_id="validate_raw_events",
                suite="browsing_train",
                doc_md="The interval's raw browsing events, every field against the contract "
                       "(include/skiff/data/contract.toml), and duplicates.",
            ),
            GXValidateIntervalOperator(
                task_id="validate_raw_searches",
                suite="search_train",
                doc_md="The interval's raw searches, every field against the contract.",
            ),
            GXValidateIntervalOperator(
                task_id="validate_raw_catalogue",
                suite="sku_to_content",
                doc_md="Catalogue rows delivered in the interval, every field against the "
                       "contract.",
            ),
            GXValidateIntervalOperator(
                task_id="validate_volume",
                suite="volume",
                doc_md="The interval's event count against the recent hours' median.",
            ),
            GXValidateIntervalOperator(
                task_id="validate_event_mix",
                suite="event_mix",
                doc_md="The interval's shares of event types, actions, missing values, "
                       "unknown SKUs and duplicates against the recent hours' medians.",
            ),
        ]

    # A full refresh rebuilt the models from the whole raw log: their checks then cover the
    # whole log (inside DuckDB, in bounded memory), not only the interval.
    with TaskGroup("validate", prefix_group_id=False,
                   tooltip="Great Expectations on the marts dbt built") as validate:
        GXValidateIntervalOperator(
            task_id="validate_session_events",
            suite="int_session_events",
            whole_log="{{ params.full_refresh }}",
            doc_md="Sessionised events of the interval's sessions: order, gaps, known SKUs "
                   "(with full_refresh: of every session of the log).",
        )
        GXValidateIntervalOperator(
            task_id="validate_sessions",
            suite="fct_sessions",
            whole_log="{{ params.full_refresh }}",
            doc_md="fct_sessions of the interval: keys, funnel order, intent label rate "
                   "(with full_refresh: of the whole log).",
        )
        GXValidateIntervalOperator(
            task_id="validate_products",
            suite="dim_products",
            whole_log="{{ params.full_refresh }}",
            doc_md="dim_products: keys and price buckets.",
        )

    # Metaflow flows of include/flows, locally or on AWS Batch (SKIFF_TRAIN_ON). Each returns
    # {"pathspec", "metrics", "bundle"} to XCom for the gate.
    flow_params = {
        "interval_start": "{{ data_interval_start.isoformat() }}",
        "interval_end": "{{ data_interval_end.isoformat() }}",
        "max_sessions": "{{ params.train_sample_sessions }}",
        # "true"/"false": the launch reads it back as a boolean (JSON), the flows' bool Parameter
        "full_retrain": "{{ params.full_retrain | lower }}",
    }
    run_tags = ["skiff_hourly", "interval:{{ data_interval_start.isoformat() }}", "run:{{ run_id }}"]
    # on AWS Batch a run takes GPU-hours: it waits in the triggerer, not in a worker slot
    batch = CONFIG.training.train_on == "batch"
    with TaskGroup("train", prefix_group_id=False, tooltip="Metaflow training flows") as train:
        train_intent = MetaflowRunOperator(
            task_id="train_intent",
            flow_file=str(CONFIG.training.flows_dir / "train_intent.py"),
            flow_params=flow_params,
            run_tags=run_tags,
            deferrable=batch,
            retries=0,  # a failed flow is reported with its error; Metaflow retries its own I/O steps
            doc_md="IntentFlow: will a session with an add-to-cart end in a purchase?",
        )
        train_rec = MetaflowRunOperator(
            task_id="train_rec",
            flow_file=str(CONFIG.training.flows_dir / "train_rec.py"),
            flow_params=flow_params,
            run_tags=run_tags,
            deferrable=batch,
            retries=0,
            doc_md="RecFlow: the next SKU of a session, against popularity and co-occurrence.",
        )

    # in watcher mode dbt_producer_watcher_done is one of prepare's leaves: the mart checks
    # read DuckDB after the build has ended, not while it writes
    validate_raw >> prepare >> validate >> train

    # gate -> deploy (local model server, or SageMaker with SKIFF_SERVING=sagemaker) -> smoke
    # test through the /predict handler -> promote; rollback to the champion on failure.
    # A rejected challenger ends the run green. The XComArg makes train_x >> gate_x.
    aws = CONFIG.serving.backend == "sagemaker"
    release_tasks("intent", train_intent.output, deferrable=aws)
    release_tasks("rec", train_rec.output, deferrable=aws)

    if CONFIG.ingest.source == "landing":
        LandingIngestOperator(
            task_id="ingest_events",
            landing_uri=CONFIG.collect.landing_uri,
            grace_minutes=CONFIG.ingest.grace_minutes,
            poll_interval=CONFIG.ingest.poll_seconds,
            deferrable=True,  # the grace period waits in the triggerer, not in a worker slot
            outlets=raw_assets(CONFIG.warehouse.raw_schema),
            doc_md="Append the landing files that arrived in the interval (ledger: once each).",
        ) >> validate_raw
    elif CONFIG.replay.enabled:
        ingest = ReplayIngestOperator(
            task_id="ingest_events",
            source_dir=str(CONFIG.replay.source_dir),
            since="{{ data_interval_start.isoformat() }}",
            until="{{ data_interval_end.isoformat() }}",
            outlets=raw_assets(CONFIG.warehouse.raw_schema),
            doc_md="Append the interval's events of the replay source to the raw log.",
        )
        ingest >> validate_raw
