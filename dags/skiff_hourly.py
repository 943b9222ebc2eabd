"""
### skiff_hourly — the hourly Skiff pipeline

Every hour, for the data interval `[data_interval_start, data_interval_end)`:

1. **ingest_events** (only when the embedded replay source is on, `SKIFF_REPLAY`): appends
   the interval's events of the generated source to the raw log, as an event collector would.
2. **prepare**: the dbt project in `include/dbt`, rendered by Cosmos from its manifest: one task
   per model, each followed by its tests. Incremental models read only the new hour
   (plus a lookback for sessions that started earlier).

Validation, training, gating and deployment follow `prepare` (see the README's roadmap).

Trigger it from the UI with **Trigger DAG w/ config** to set the params below.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.profiles import SnowflakeUserPasswordProfileMapping

from operators.ingest import ReplayIngestOperator
from skiff.config import SkiffConfig

CONFIG = SkiffConfig.from_env()
DUCKDB = CONFIG.warehouse.backend == "duckdb"

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
    description="Raw events -> dbt -> validate -> train -> gate -> deploy, every hour.",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
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
    },
    params={
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Rebuild every incremental dbt model from the whole raw log.",
        ),
        "session_lookback_hours": Param(
            CONFIG.dbt.session_lookback_hours,
            type="integer",
            minimum=1,
            maximum=168,
            title="Session lookback (hours)",
            description="How far back an hourly run reads the earlier events of the sessions it updates.",
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
            env_vars={
                "SKIFF_DUCKDB_PATH": str(CONFIG.warehouse.duckdb_path),
                "SKIFF_DBT_TARGET": CONFIG.dbt.target,
            },
            dbt_vars={
                "interval_start": "{{ data_interval_start.isoformat() }}",
                "interval_end": "{{ data_interval_end.isoformat() }}",
                "session_lookback_hours": "{{ params.session_lookback_hours }}",
                "raw_schema": CONFIG.warehouse.raw_schema,
            },
        ),
        profile_config=PROFILE_CONFIG,
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH
        ),
        # task parameters
        operator_args={"full_refresh": "{{ params.full_refresh }}", "install_deps": False},
    )

    if CONFIG.replay.enabled:
        ingest = ReplayIngestOperator(
            task_id="ingest_events",
            source_dir=str(CONFIG.replay.source_dir),
            since="{{ data_interval_start.isoformat() }}",
            until="{{ data_interval_end.isoformat() }}",
            doc_md="Append the interval's events of the replay source to the raw log.",
        )
        ingest >> prepare
