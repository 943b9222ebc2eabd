"""skiff_monitor run by ``dag.test()`` on monitoring marts with a planted drift.

The marts (``tests/monitor_marts.py``) hold a calm day of both models, then, in the last hour,
a shift of the served sessions' lengths (PSI 0.6 against training, threshold 0.2). The run
writes the page's snapshot with the breach, ``check_drift`` fails with a message naming the
mart, the hour and the feature, its failure alert reaches the Slack webhook (a local receiver,
``tests/webhook_receiver.py``), and ``request_retrain`` creates a skiff_hourly run that trains
on every session. The serving and quality checks pass. The run happens in a subprocess on the
repository's DAGs folder (``dag.test`` syncs the folder's DAGs, skiff_hourly, the trigger's
target, among them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from webhook_receiver import WebhookReceiver

from monitor_marts import MonitorMarts, registry_with_history
from skiff.monitor import read_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session

dag = DagBag(dag_folder=sys.argv[1]).dags["skiff_monitor"]
run = dag.test()
with create_session() as session:
    hourly = [(r.run_id, r.conf, r.run_type) for r in
              session.query(DagRun).filter(DagRun.dag_id == "skiff_hourly")]
print("RESULT " + json.dumps({
    "state": run.state, "tasks": {ti.task_id: ti.state for ti in run.get_task_instances()},
    "hourly": hourly}, default=str), flush=True)
"""


def test_planted_drift_fails_the_check_alerts_and_asks_for_a_retrain(
    airflow_db: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    marts = MonitorMarts(tmp_path / "warehouse.duckdb")
    marts.calm(now.replace(minute=0) - timedelta(hours=1), hours=24)
    marts.hour(now - timedelta(hours=1), psi=0.6, drift_feature="session_length")
    registry_with_history(tmp_path / "registry")

    with WebhookReceiver() as receiver:
        env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
               "SKIFF_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
               "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook",
                                                        "password": receiver.url()})}
        proc = subprocess.run([sys.executable, "-c", _RUN, str(REPO / "dags")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600, check=False)
        posts = [post.body["text"] for post in receiver.posts]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-5000:]
    result = json.loads(lines[-1][len("RESULT "):])

    assert result["tasks"] == {"snapshot": "success", "check_serving": "success",
                               "check_quality": "success", "check_drift": "failed",
                               "request_retrain": "success",
                               "within_thresholds": "upstream_failed"}, result
    assert result["state"] == "failed"
    # the failure says which mart, hour and feature drifted
    assert "mon_drift_hourly" in proc.stdout and "session_length" in proc.stdout
    (alert,) = posts
    assert "task check_drift of skiff_monitor failed" in alert, alert
    assert "mon_drift_hourly" in alert and "session_length" in alert, alert
    # a full retrain was asked of skiff_hourly, once for the day
    (retrain,) = result["hourly"]
    assert retrain[0] == f"monitor_retrain__{now:%Y-%m-%d}"
    assert retrain[1] == {"train_sample_sessions": 0, "full_retrain": True} and retrain[2] == "operator_triggered"
    # the page's snapshot shows the breach
    snapshot = read_snapshot(tmp_path / "monitor")
    (breach,) = snapshot["models"]["rec"]["breaches"]
    assert "drift: PSI of session_length 0.60 > 0.2" in breach
    assert snapshot["models"]["rec"]["champion"]["pathspec"] == "RecFlow/2"
