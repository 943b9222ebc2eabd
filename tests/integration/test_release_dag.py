"""The release task group in real DAG runs (dag.test) against a live model server.

The DAG lives in ``tests/fixtures/dags`` (dag.test needs it in the configured DAGs folder, so
it runs in a subprocess pointed there); the model server (``skiff serve``'s stack: data plane,
control plane with its token) runs in this process on loopback ports. Four runs: a first
promote; a rejected challenger (green, nothing deployed); a deploy that fails (the model does
not load); a smoke test that fails (every smoke SKU unknown to the model). After each failure
``/predict`` still answers the champion's version, the rollback ran only then, and the run
failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from environ import environ
from serving_models import rec_bundle, retag

pytestmark = pytest.mark.integration

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


def _served_version(api: str, sku: str) -> str:
    """The version ``/predict`` answers with (through the Lambda handler's adapter)."""
    with urllib.request.urlopen(f"{api}/predict?session={sku}", timeout=30) as answer:
        return json.loads(answer.read())["model_version"]


def test_promote_reject_failed_deploy_failed_smoke(airflow_db: Path, tmp_path: Path) -> None:
    from skiff.config import ServingConfig
    from skiff.serve import EndpointStore, read_bundle_meta
    from skiff_api.local_stack import LocalStack

    good = rec_bundle(tmp_path / "rec1", "RecFlow/1")
    second = retag(good, tmp_path / "rec2", "RecFlow/2")
    broken = shutil.copytree(second, tmp_path / "broken")
    (broken / "1" / "saved_model.pb").write_bytes(b"garbage")
    fourth = retag(good, tmp_path / "rec4", "RecFlow/4")
    sku = read_bundle_meta(good)["vocabulary"][2]
    home = tmp_path / "home"
    token = "t" * 32
    serving = {"SKIFF_HOME": str(home), "SKIFF_SERVE_TOKEN": token}
    with environ(**serving):
        config = ServingConfig.from_env()
        stack = LocalStack.build(config, store=EndpointStore(home / "serving"), port=0,
                                 api_port=0, control_port=0).start()
    try:
        base = {"baselines": {"most_popular": {"mrr@20": 0.1}}}
        confs = [
            {"pathspec": "RecFlow/1", "metrics": {**base, "mrr@20": 0.2}, "model_dir": str(good)},
            {"pathspec": "RecFlow/2", "metrics": {**base, "mrr@20": 0.15},
             "model_dir": str(second)},
            {"pathspec": "RecFlow/3", "metrics": {**base, "mrr@20": 0.5}, "model_dir": str(broken)},
            {"pathspec": "RecFlow/4", "metrics": {**base, "mrr@20": 0.6}, "model_dir": str(fourth),
             "smoke_session": "unknown-sku-1,unknown-sku-2"},
        ]
        env = {**os.environ, **serving,
               "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "fixtures" / "dags"),
               "SKIFF_SERVE_PORT": str(stack.port("models")),
               "SKIFF_SERVE_CONTROL_PORT": str(stack.port("control"))}
        proc = subprocess.run([sys.executable, "-c", _RUN, env["AIRFLOW__CORE__DAGS_FOLDER"],
                               json.dumps(confs)], env=env, capture_output=True, text=True,
                              timeout=600)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
        first, rejected, failed_deploy, failed_smoke = json.loads(lines[-1][len("RESULT "):])
        api = stack.urls["api"]

        assert first["state"] == "success", first["tasks"]
        assert first["tasks"]["promote_rec"] == "success"
        assert first["tasks"]["rollback_rec"] == "skipped"  # nothing failed
        assert first["smoke"]["smoke"]["model_version"] == "RecFlow/1"  # a real prediction
        assert _served_version(api, sku) == "RecFlow/1"

        assert rejected["state"] == "success", rejected["tasks"]  # a lost comparison ends green
        assert rejected["gate"]["promote"] is False and "Keep champion" in rejected["gate"]["reason"]
        assert {rejected["tasks"][t] for t in ("deploy_rec", "smoke_test_rec", "promote_rec",
                                               "rollback_rec")} == {"skipped"}

        # the model does not load: the server refused it, the champion never stopped serving
        assert failed_deploy["state"] == "failed", failed_deploy["tasks"]
        assert failed_deploy["tasks"]["deploy_rec"] == "failed"
        assert failed_deploy["tasks"]["rollback_rec"] == "success"
        assert _served_version(api, sku) == "RecFlow/1"

        # deployed and serving RecFlow/4, then the smoke test fails: rolled back to RecFlow/1
        assert failed_smoke["state"] == "failed", failed_smoke["tasks"]
        assert failed_smoke["tasks"]["deploy_rec"] == "success"
        assert failed_smoke["tasks"]["smoke_test_rec"] == "failed"
        assert failed_smoke["tasks"]["rollback_rec"] == "success"
        assert _served_version(api, sku) == "RecFlow/1"
        with urllib.request.urlopen(f"{stack.urls['models']}/ping", timeout=10) as ping:
            assert ping.status == 200
    finally:
        stack.close()
    from skiff.serve import ModelRegistry, open_storage

    champion = ModelRegistry(open_storage(str(home / "registry"))).champion("rec")
    assert champion.pathspec == "RecFlow/1"
