"""SkiffAlertNotifier's messages, and the log backend while no Slack connection exists."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from notifiers.skiff_alerts import (
    DAG_FAILURE_TEXT,
    RUN_DURATION_TEXT,
    TASK_FAILURE_TEXT,
    SkiffAlertNotifier,
    error_summary,
)

LOG_URL = "http://localhost:8080/dags/skiff_hourly/runs/r1/tasks/validate_sessions?try_number=3"


class _SerializedDag:  # what dag.test() hands DAG callbacks: no get_template_env
    dag_id = "skiff_hourly"
    render_template_as_native_obj = False


class _TI:
    task_id = "validate_sessions"
    try_number = 3
    log_url = LOG_URL


@pytest.fixture
def alerts(monkeypatch, caplog):
    """The alerts logged on ``skiff.alerts``, with no Slack connection defined."""
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_ALERTS", raising=False)
    caplog.set_level(logging.INFO)
    return lambda: [r.getMessage() for r in caplog.records if r.name == "skiff.alerts"]


def test_error_summary_keeps_the_first_lines_of_a_long_error() -> None:
    error = ValueError("Data validation failed: marts.fct_sessions\n" +
                       "\n".join(f"  - defect {i}" for i in range(20)))
    summary = error_summary(error, max_lines=3)
    assert summary.splitlines() == [
        "ValueError: Data validation failed: marts.fct_sessions",
        "  - defect 0",
        "  - defect 1",
        "… (cut; the whole error is in the task log)",
    ]
    assert error_summary("a" * 5000, max_chars=100) == \
        "a" * 100 + "\n… (cut; the whole error is in the task log)"


def test_error_summary_short_missing_and_slack_escaped() -> None:
    assert error_summary(KeyError("sku")) == "KeyError: 'sku'"
    assert error_summary(None) == ""
    # Slack reads <...> as links and mentions: the error's own brackets are escaped
    assert error_summary("expected <a & b>") == "expected &lt;a &amp; b&gt;"


def test_task_failure_alert_names_dag_task_run_try_error_and_log(alerts) -> None:
    from airflow.sdk import DAG

    notifier = SkiffAlertNotifier(text=TASK_FAILURE_TEXT)
    notifier({"dag": DAG("skiff_hourly", schedule=None), "ti": _TI(), "run_id": "manual__1",
              "data_interval_start": "2026-11-20 11:00", "data_interval_end": "2026-11-20 12:00",
              "exception": ValueError("Data validation failed: marts.fct_sessions\n  - [dup]")})
    (text,) = alerts()
    assert text.splitlines() == [
        "ALERT :red_circle: *Skiff: task validate_sessions of skiff_hourly failed*",
        "run manual__1, try 3, data interval 2026-11-20 11:00 .. 2026-11-20 12:00",
        "```ValueError: Data validation failed: marts.fct_sessions",
        "  - [dup]```",
        f"log: {LOG_URL}",
    ]


def test_dag_failure_alert_with_and_without_a_failed_task(alerts) -> None:
    notifier = SkiffAlertNotifier(text=DAG_FAILURE_TEXT)
    notifier({"dag": _SerializedDag(), "run_id": "r1", "reason": "task_failure", "ti": _TI()})
    notifier({"dag": _SerializedDag(), "run_id": "r2", "reason": "timed_out"})
    first, second = alerts()
    assert first.splitlines() == [
        "ALERT :red_circle: *Skiff: run r1 of skiff_hourly failed* (task_failure)",
        "last failed task validate_sessions, try 3",
        f"log: {LOG_URL}",
    ]
    assert second == "ALERT :red_circle: *Skiff: run r2 of skiff_hourly failed* (timed_out)"


def test_run_duration_alert_renders_the_deadline_context(alerts) -> None:
    """The context a missed deadline hands its callback (``Deadline.handle_miss``)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

    queued = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    dag_run = DAGRunResponse.model_validate({
        "run_id": "scheduled__2026-11-20T12:00:00+00:00", "dag_id": "skiff_hourly",
        "logical_date": queued, "queued_at": queued, "start_date": queued, "end_date": None,
        "duration": None, "data_interval_start": None, "data_interval_end": None,
        "run_after": queued, "last_scheduling_decision": None, "run_type": "scheduled",
        "state": "running", "triggered_by": None, "triggering_user_name": None, "conf": {},
        "note": None, "dag_versions": [], "bundle_version": None,
        "dag_model": {"dag_display_name": "skiff_hourly"}, "partition_key": None,
        "partition_date": None,
    }).model_dump(mode="json")
    deadline = {"id": "d1", "deadline_time": datetime(2026, 11, 20, 13, 0, tzinfo=UTC)}
    SkiffAlertNotifier(text=RUN_DURATION_TEXT)({"dag_run": dag_run, "deadline": deadline})
    (text,) = alerts()
    assert text.splitlines() == [
        ("ALERT :hourglass: *Skiff: run scheduled__2026-11-20T12:00:00+00:00 of skiff_hourly is "
         "still running* past its deadline 2026-11-20 13:00:00+00:00 (queued at "
         "2026-11-20T12:00:00Z)"),
        ("run: http://localhost:8080/dags/skiff_hourly/runs/"
         "scheduled__2026-11-20T12%3A00%3A00%2B00%3A00"),
    ]


def test_one_notifier_serves_many_callbacks(alerts) -> None:
    notifier = SkiffAlertNotifier(text="run {{ run_id }} failed ({{ reason }})")
    for run_id in ("a", "b"):
        notifier({"dag": _SerializedDag(), "run_id": run_id, "reason": "task_failure"})
    assert alerts() == ["ALERT run a failed (task_failure)", "ALERT run b failed (task_failure)"]
    assert notifier.text == "run {{ run_id }} failed ({{ reason }})"  # not rendered in place


def test_without_the_connection_the_alert_is_logged_at_error(alerts, caplog) -> None:
    notifier = SkiffAlertNotifier(text="hello", slack_conn_id="slack_alerts")
    assert notifier.slack_hook() is None
    notifier({"dag": _SerializedDag()})
    (record,) = [r for r in caplog.records if r.name == "skiff.alerts"]
    assert record.levelno == logging.ERROR and record.getMessage() == "ALERT hello"
    assert "Could not send" not in caplog.text
