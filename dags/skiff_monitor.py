"""
### skiff_monitor — how the served models are doing, after each hour skiff_hourly builds

Scheduled on Airflow assets, not on a clock: it runs once skiff_hourly has updated the
prediction log (`raw.predictions`, by `ingest_events`) and the three monitoring marts
(`mon_serving_hourly`, `mon_quality_hourly`, `mon_drift_hourly`, by their dbt models'
tasks), i.e. after each hourly run that built them (`plugins/assets/tables.py`).

1. **snapshot**: the marts' last `SKIFF_MONITOR_HISTORY_DAYS` by hour and the champion
   registry (champions, promotions, gate decisions with their reasons) into
   `$SKIFF_MONITOR_DIR/snapshot.json`: what the **Skiff** page of this UI shows. The page
   reads only that file, so it never takes or waits for DuckDB's one-writer lock.
2. **check_serving / check_quality / check_drift** (Great Expectations suites
   `include/gx/suites/mon_*.yml`, over the `SKIFF_MONITOR_WINDOW_HOURS` before the run):
   error rate and p99 latency; online hit rate@20 against the champion's offline one and the
   intent model's calibration; PSI of each feature against training. Thresholds come from
   `SKIFF_MONITOR_*`. A breach fails its task at once and its failure alert (Slack, or the log)
   names the hours, models and features.
3. **request_retrain** (when `SKIFF_MONITOR_RETRAIN` is on): on a quality or drift breach,
   triggers skiff_hourly with a full retrain (`train_sample_sessions=0`: every session), at
   most once a day (run id `monitor_retrain__<date>`). A serving breach only alerts: a new
   model would not fix errors or latency.
4. **within_thresholds**: runs when every check passed; on a breach it is `upstream_failed`
   and the run fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, TriggerRule

from assets.tables import monitor_schedule
from notifiers.skiff_alerts import TASK_FAILURE_TEXT, SkiffAlertNotifier
from operators.monitor import MonitorSnapshotOperator
from operators.validate import MonitorValidateOperator
from skiff.config import SkiffConfig

CONFIG = SkiffConfig.from_env()
DUCKDB = CONFIG.warehouse.backend == "duckdb"
#: skiff_hourly's conf for a full retrain: train and evaluate on every session, from scratch
#: (not warm-started from the champion the breach is about).
RETRAIN_CONF = {"train_sample_sessions": 0, "full_retrain": True}

with DAG(
    dag_id="skiff_monitor",
    description="Serving, online quality and drift of the served models; the Skiff page's data.",
    schedule=monitor_schedule(CONFIG.warehouse.raw_schema, CONFIG.warehouse.marts_schema),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # DuckDB has one writer: the checks read it one at a time (and wait for skiff_hourly)
    max_active_tasks=1 if DUCKDB else 4,
    dagrun_timeout=timedelta(minutes=30),
    default_args={
        "owner": "skiff",
        # a locked warehouse (skiff_hourly writing) is retried; a breach fails at once
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": SkiffAlertNotifier(
            text=TASK_FAILURE_TEXT, slack_conn_id=CONFIG.alerts.slack_conn_id
        ),
    },
    params={
        "window_hours": Param(
            CONFIG.monitor.window_hours,
            type="integer",
            minimum=1,
            maximum=168,
            title="Window (hours)",
            description="The checks cover this many hours before the run.",
        ),
    },
    tags=["skiff", "ml", "monitoring"],
    doc_md=__doc__,
) as dag:
    snapshot = MonitorSnapshotOperator(
        task_id="snapshot",
        doc_md="The marts' recent hours and the registry into the Skiff page's snapshot.",
    )
    checks = {
        name: MonitorValidateOperator(task_id=f"check_{name}", suite=f"mon_{name}", doc_md=doc)
        for name, doc in (
            ("serving", "Error rate and p99 latency of /predict, by hour and model."),
            ("quality", "Online hit rate@20 against the champion's offline one; intent "
                        "calibration error."),
            ("drift", "PSI of session length, event-type mix and SKU popularity against "
                      "training."),
        )
    }
    # a leaf after the checks: the run fails on a breach even when the retrain request (the
    # checks' other downstream task) succeeds
    snapshot >> list(checks.values()) >> EmptyOperator(
        task_id="within_thresholds",
        doc_md="Every check passed (upstream_failed, and the run failed, on a breach).",
    )

    if CONFIG.monitor.retrain:
        # TriggerDagRunOperator, not an asset: a run asked for by an asset event gets no conf,
        # and skiff_hourly keeps its clock (a retrain is one more run with its own conf)
        [checks["quality"], checks["drift"]] >> TriggerDagRunOperator(
            task_id="request_retrain",
            trigger_dag_id="skiff_hourly",
            conf=RETRAIN_CONF,
            trigger_run_id="monitor_retrain__{{ dag_run.run_after.strftime('%Y-%m-%d') }}",
            skip_when_already_exists=True,  # at most one retrain a day
            note="Asked for by skiff_monitor: online quality or drift over its threshold.",
            trigger_rule=TriggerRule.ONE_FAILED,
            retries=0,
            doc_md="On a quality or drift breach: skiff_hourly with every session trained on, "
                   "from scratch (full_retrain).",
        )
