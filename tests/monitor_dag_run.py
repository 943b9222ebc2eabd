"""skiff_monitor run by ``dag.test()`` in a subprocess on the repository's DAGs, its Slack posts
caught by a local webhook receiver.

The subprocess prints the run's state, its task states and the skiff_hourly runs it asked for
(``dag.test`` syncs the folder's DAGs, so the trigger's target exists).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from webhook_receiver import WebhookReceiver

__all__ = ["run_skiff_monitor"]

REPO = Path(__file__).resolve().parents[1]

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


def run_skiff_monitor(env: dict[str, str]) -> tuple[dict[str, Any], list[str], str]:
    """Run skiff_monitor once; ``({"state", "tasks", "hourly"}, Slack texts posted, output)``.

    :param env: added to this process's environment (``SKIFF_HOME`` at least); the Slack
        connection points at the receiver.
    """
    with WebhookReceiver() as receiver:
        env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
               "PYTHONUNBUFFERED": "1",
               "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook",
                                                        "password": receiver.url()}), **env}
        proc = subprocess.run([sys.executable, "-c", _RUN, str(REPO / "dags")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600, check=False)
        posts = [post.body["text"] for post in receiver.posts]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-5000:]
    return json.loads(lines[-1][len("RESULT "):]), posts, proc.stdout
