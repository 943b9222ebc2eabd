"""The release task group in a real DAG run (dag.test): promote, reject green, roll back.

The DAG lives in ``tests/fixtures/dags`` (dag.test needs it in the configured DAGs folder, so
it runs in a subprocess pointed there); the backend is the local one, without a running
server: the deploy checks the model in the task and the smoke test predicts in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving_models import rec_bundle, retag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
_RUN = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["skiff_release_test"]
out = []
for conf in json.loads(sys.argv[2]):
    run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    gate = [ti for ti in run.get_task_instances() if ti.task_id == "gate_rec"][0]
    smoke = [ti for ti in run.get_task_instances() if ti.task_id == "smoke_test_rec"][0]
    out.append({"state": run.state, "tasks": states, "gate": gate.xcom_pull(task_ids="gate_rec"),
                "smoke": smoke.xcom_pull(task_ids="smoke_test_rec")})
print("RESULT " + json.dumps(out, default=str))
"""


def test_promote_then_reject_then_roll_back(airflow_db: Path, tmp_path: Path) -> None:
    good = rec_bundle(tmp_path / "rec1", "RecFlow/1")
    second = retag(good, tmp_path / "rec2", "RecFlow/2")
    broken = shutil.copytree(second, tmp_path / "broken")
    (broken / "1" / "saved_model.pb").write_bytes(b"garbage")
    base = {"baselines": {"most_popular": {"mrr@20": 0.1}}}
    confs = [
        {"pathspec": "RecFlow/1", "metrics": {**base, "mrr@20": 0.2}, "model_dir": str(good)},
        {"pathspec": "RecFlow/2", "metrics": {**base, "mrr@20": 0.15}, "model_dir": str(second)},
        {"pathspec": "RecFlow/3", "metrics": {**base, "mrr@20": 0.5}, "model_dir": str(broken)},
    ]
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "fixtures" / "dags"),
           "SKIFF_HOME": str(tmp_path / "home"), "SKIFF_SERVE_PORT": "9"}
    proc = subprocess.run([sys.executable, "-c", _RUN, env["AIRFLOW__CORE__DAGS_FOLDER"],
                           json.dumps(confs)], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    first, rejected, failed = json.loads(lines[-1][len("RESULT "):])

    assert first["state"] == "success", first["tasks"]
    assert first["tasks"]["promote_rec"] == "success" and first["tasks"]["rollback_rec"] == "skipped"
    assert first["smoke"]["smoke"]["model_version"] == "RecFlow/1"  # a real prediction

    assert rejected["state"] == "success", rejected["tasks"]  # a lost comparison ends green
    assert rejected["gate"]["promote"] is False and "Keep champion" in rejected["gate"]["reason"]
    assert {rejected["tasks"][t] for t in ("deploy_rec", "smoke_test_rec", "promote_rec",
                                           "rollback_rec")} == {"skipped"}

    assert failed["state"] == "failed", failed["tasks"]
    assert failed["tasks"]["deploy_rec"] == "failed" and failed["tasks"]["rollback_rec"] == "success"
    from skiff.serve import ModelRegistry, open_storage

    champion = ModelRegistry(open_storage(str(tmp_path / "home" / "registry"))).champion("rec")
    assert champion.pathspec == "RecFlow/1"
