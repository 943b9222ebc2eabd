"""The log notifier: shaped like SlackWebhookNotifier, renders its text, logs one alert."""

from __future__ import annotations

import logging

import pytest
from notifiers.log_webhook import (
    DAG_FAILURE_TEXT,
    TASK_FAILURE_TEXT,
    LogWebhookNotifier,
    send_log_webhook_notification,
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def alerts():
    handler = _Records()
    logger = logging.getLogger("skiff.alerts")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


class _Dag:
    dag_id = "skiff_hourly"


class _SerializedDag:  # what dag.test() hands DAG callbacks: no get_template_env
    dag_id = "skiff_hourly"
    render_template_as_native_obj = False


class _TI:
    task_id = "validate_sessions"
    try_number = 1


def test_shape_of_the_slack_notifier() -> None:
    notifier = LogWebhookNotifier(text="hello")
    assert tuple(notifier.template_fields) == ("text",)
    assert send_log_webhook_notification is LogWebhookNotifier
    assert "hook" not in notifier.__dict__  # built on first use
    assert notifier.hook is notifier.hook


def test_task_failure_alert_renders_the_context(alerts) -> None:
    from airflow.sdk import DAG

    notifier = LogWebhookNotifier(text=TASK_FAILURE_TEXT)
    context = {"dag": DAG("skiff_hourly", schedule=None), "ti": _TI(), "run_id": "manual__1",
               "data_interval_start": "2026-11-20 11:00", "data_interval_end": "2026-11-20 12:00",
               "exception": ValueError("Data validation failed: marts.fct_sessions ...")}
    notifier(context)
    (record,) = alerts
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert "task validate_sessions of skiff_hourly failed for the data interval " \
           "2026-11-20 11:00 .. 2026-11-20 12:00 (run manual__1, try 1)" in text
    assert "Data validation failed: marts.fct_sessions" in text


def test_one_notifier_serves_many_callbacks(alerts) -> None:
    notifier = LogWebhookNotifier(text="run {{ run_id }} failed ({{ reason }})")
    for run_id in ("a", "b"):
        notifier({"dag": _SerializedDag(), "run_id": run_id, "reason": "task_failure"})
    assert [r.getMessage() for r in alerts] == ["ALERT run a failed (task_failure)",
                                                "ALERT run b failed (task_failure)"]
    assert notifier.text == "run {{ run_id }} failed ({{ reason }})"  # not rendered in place


def test_dag_failure_alert_with_and_without_a_task(alerts) -> None:
    notifier = LogWebhookNotifier(text=DAG_FAILURE_TEXT)
    notifier({"dag": _SerializedDag(), "run_id": "r1", "reason": "task_failure", "ti": _TI()})
    notifier({"dag": _SerializedDag(), "run_id": "r2", "reason": "timed_out"})
    first, second = (r.getMessage() for r in alerts)
    assert first.endswith("run r1 of skiff_hourly failed (task_failure); first failed task "
                          "validate_sessions.")
    assert second.endswith("run r2 of skiff_hourly failed (timed_out).")
