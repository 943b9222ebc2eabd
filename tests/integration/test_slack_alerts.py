"""Alerts through the Slack provider's webhook hook to a real HTTP receiver on 127.0.0.1.

The receiver (``tests/webhook_receiver.py``) stands in for ``hooks.slack.com``: it records each
JSON body and answers 200, or 500 on ``FAILING_PATH``. The ``slackwebhook`` connection comes
from ``AIRFLOW_CONN_SLACK_ALERTS``.
The DAG runs (``dag.test()`` on ``tests/fixtures/dags/skiff_alerts_test.py``) happen in a
subprocess pointed at the fixtures folder, as ``dag.test`` needs the DAG in the DAGs folder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_PATH = "/services/T000/B000/XXXX"  # the receiver's default
FAILING_PATH = "/services/T500/B500/XXXX"  # the receiver answers 500 here
LOG_URL = "http://localhost:8080/dags/skiff_alerts_test/runs/manual__1/tasks/fail?try_number=1"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(failing={FAILING_PATH: 500}) as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A webhook URL on 127.0.0.1 where nothing listens (Slack down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


def _connection(url: str) -> str:
    return json.dumps({"conn_type": "slackwebhook", "password": url})


def _task_failure_context() -> dict:
    from airflow.sdk import DAG

    class TI:
        task_id = "fail"
        try_number = 1
        log_url = LOG_URL

    return {"dag": DAG("skiff_alerts_test", schedule=None), "ti": TI(), "run_id": "manual__1",
            "exception": ValueError("Data validation failed: marts.fct_sessions\n  - [dup] 3 rows")}


@pytest.mark.parametrize("as_host", [False, True], ids=["url-in-password", "host-and-token"])
def test_alert_posts_the_message_to_the_webhook(receiver, monkeypatch, as_host) -> None:
    from notifiers.skiff_alerts import TASK_FAILURE_TEXT, SkiffAlertNotifier

    base, token = receiver.url().split("/services/")
    conn = ({"conn_type": "slackwebhook", "host": base, "password": f"services/{token}"}
            if as_host else {"conn_type": "slackwebhook", "password": receiver.url()})
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps(conn))

    SkiffAlertNotifier(text=TASK_FAILURE_TEXT)(_task_failure_context())

    ((path, body),) = [(post.path, post.body) for post in receiver.posts]
    assert path == WEBHOOK_PATH
    assert set(body) == {"text"}
    for part in ("skiff_alerts_test", "task fail", "run manual__1", "try 1",
                 "ValueError: Data validation failed: marts.fct_sessions", LOG_URL):
        assert part in body["text"], (part, body["text"])


@pytest.mark.parametrize("outage", ["500", "down"])
def test_slack_outage_is_logged_with_the_alert_never_raised(
    receiver, closed_port_url, monkeypatch, caplog, outage
) -> None:
    from notifiers.skiff_alerts import TASK_FAILURE_TEXT, SkiffAlertNotifier

    url = receiver.url(FAILING_PATH) if outage == "500" else closed_port_url
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", _connection(url))
    caplog.set_level(logging.INFO)

    SkiffAlertNotifier(text=TASK_FAILURE_TEXT)(_task_failure_context())  # does not raise

    assert len(receiver.posts) == (1 if outage == "500" else 0)
    (failure,) = [r for r in caplog.records if "Could not send the alert" in r.getMessage()]
    assert failure.name == "skiff.alerts" and failure.levelno == logging.ERROR
    assert ("Status Code: 500" if outage == "500" else "Connection refused") in failure.getMessage()
    (alert,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT ")]
    assert "task fail of skiff_alerts_test failed" in alert and LOG_URL in alert


def test_skiff_hourly_wires_the_alerts_from_config(monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DeadlineReference
    from notifiers.skiff_alerts import (
        DAG_FAILURE_TEXT,
        RUN_DURATION_TEXT,
        TASK_FAILURE_TEXT,
        SkiffAlertNotifier,
    )

    monkeypatch.setenv("SKIFF_SLACK_CONN_ID", "slack_ops")
    monkeypatch.setenv("SKIFF_RUN_DURATION_ALERT_MINUTES", "45")
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["skiff_hourly"]

    for notifier, text in ((dag.get_task("validate_sessions").on_failure_callback[0],
                            TASK_FAILURE_TEXT), (dag.on_failure_callback, DAG_FAILURE_TEXT)):
        assert isinstance(notifier, SkiffAlertNotifier)
        assert (notifier.text, notifier.slack_conn_id) == (text, "slack_ops")
    (deadline,) = dag.deadline
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert deadline.interval == timedelta(minutes=45)
    assert deadline.callback.serialize() == {
        "path": "notifiers.skiff_alerts.SkiffAlertNotifier",
        "kwargs": {"text": RUN_DURATION_TEXT, "slack_conn_id": "slack_ops"},
        "executor": None,
    }


_RUN = """
import json, os, sys
import structlog
from sqlalchemy import select
from airflow.dag_processing.dagbag import DagBag
from airflow.models.deadline import Deadline
from airflow.models.serialized_dag import SerializedDagModel
from airflow.sdk import timezone
from airflow.sdk.execution_time.callback_supervisor import execute_callback
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType, DagRunType

dags_folder, urls = sys.argv[1], json.loads(sys.argv[2])


def use_webhook(url):
    os.environ["AIRFLOW_CONN_SLACK_ALERTS"] = json.dumps({"conn_type": "slackwebhook",
                                                          "password": url})

dag = DagBag(dag_folder=dags_folder).dags["skiff_alerts_test"]
out = {}
for name, url in urls.items():
    use_webhook(url)
    print(f"=== {name}", flush=True)
    run = dag.test()
    out[name] = {"run": run.state,
                 "tasks": {ti.task_id: ti.state for ti in run.get_task_instances()}}

# The duration alert: a queued run gets its Deadline, which is then missed; its callback runs
# as the executor's callback process runs it (execute_callback), with the deadline's context.
print("=== deadline", flush=True)
with create_session() as session:
    now = timezone.utcnow()
    run = SerializedDagModel.get_dag("skiff_alerts_test", session=session).create_dagrun(
        run_id="queued__1", run_type=DagRunType.MANUAL, state=DagRunState.QUEUED,
        logical_date=None, data_interval=None, run_after=now,
        triggered_by=DagRunTriggeredByType.TEST, session=session)
    session.flush()
    deadline = session.scalar(select(Deadline).where(Deadline.dagrun_id == run.id))
    interval = (deadline.deadline_time - run.queued_at).total_seconds()
    deadline.handle_miss(session)
    callback = dict(deadline.callback.data)
use_webhook(urls["ok"])
ok, error = execute_callback(callback["path"], callback["kwargs"], "skiff_alerts_test.py",
                             dags_folder, structlog.get_logger())
out["deadline"] = {"interval_s": interval, "ok": ok, "error": error}
print("RESULT " + json.dumps(out), flush=True)
"""


def test_dag_run_alerts_and_keeps_its_own_failure(
    airflow_db: Path, receiver, closed_port_url, tmp_path: Path
) -> None:
    """Task and run failure alerts reach Slack; with Slack answering 500 or down, the run
    still fails with the task's own error and the alerts land in the log. A missed deadline's
    callback (``SKIFF_RUN_DURATION_ALERT_MINUTES`` after the run was queued) sends the
    duration alert."""
    dags = REPO / "tests" / "fixtures" / "dags"
    urls = {"ok": receiver.url(), "slack_500": receiver.url(FAILING_PATH),
            "slack_down": closed_port_url}
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "PYTHONUNBUFFERED": "1",
           "SKIFF_HOME": str(tmp_path), "SKIFF_RUN_DURATION_ALERT_MINUTES": "45"}
    proc = subprocess.run([sys.executable, "-c", _RUN, str(dags), json.dumps(urls)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-5000:]
    result = json.loads(lines[-1][len("RESULT "):])
    logs = dict(part.split("\n", 1) for part in proc.stdout.split("=== ")[1:])

    for name in ("ok", "slack_500", "slack_down"):
        assert result[name] == {"run": "failed", "tasks": {"fail": "failed"}}, (name, result)
        # the task's own error is the failure, whatever Slack did
        assert "ValueError: Data validation failed: marts.fct_sessions" in logs[name], name

    posts = [(post.path, post.body["text"]) for post in receiver.posts]
    ok_posts = [text for path, text in posts if path == WEBHOOK_PATH]
    task_alert, run_alert, duration_alert = ok_posts
    assert "task fail of skiff_alerts_test failed" in task_alert
    assert "```ValueError: Data validation failed: marts.fct_sessions" in task_alert
    assert "defect 6" in task_alert and "defect 7" not in task_alert  # the first 8 lines
    assert "run manual__" in task_alert and "try 1" in task_alert
    assert "/dags/skiff_alerts_test/runs/manual__" in task_alert and "/tasks/fail" in task_alert
    assert "of skiff_alerts_test failed* (task_failure)" in run_alert
    assert "last failed task fail, try 1" in run_alert
    assert "Could not send" not in logs["ok"]

    assert len([path for path, _ in posts if path == FAILING_PATH]) == 2  # task and run alerts
    for name in ("slack_500", "slack_down"):
        assert logs[name].count("Could not send the alert to Slack") == 2, name
        assert "ALERT :red_circle: *Skiff: task fail of skiff_alerts_test failed*" in logs[name]
        assert "ALERT :red_circle: *Skiff: run manual__" in logs[name]

    assert result["deadline"] == {"interval_s": 45 * 60.0, "ok": True, "error": None}
    assert "*Skiff: run queued__1 of skiff_alerts_test is still queued* past its deadline" in \
        duration_alert
    assert "/dags/skiff_alerts_test/runs/queued__1" in duration_alert
