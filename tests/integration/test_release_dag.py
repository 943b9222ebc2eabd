"""The release task group in real DAG runs (dag.test) against a live model server.

The DAG lives in ``tests/fixtures/dags`` and runs in a subprocess pointed there
(``tests/dag_runs.py``); the model server (``skiff serve``'s stack: data plane, control plane
with its token) runs in this process on loopback ports. Four runs: a first promote; a
rejected challenger (green, nothing deployed); a deploy that fails (the model does not
load); a smoke test that fails (every smoke SKU unknown to the model). After each run
``/predict`` answers the champion's version, the rollback ran only after a failure, and a
failure failed the run.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from dag_runs import DagRuns
from environ import environ
from serving_models import rec_bundle, retag

# the one real proof of the local release path: four dag.test() runs in ~40 s (the fixture
# DAG's smoke test retries after 1 s)
pytestmark = pytest.mark.integration


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
    base = {"baselines": {"most_popular": {"mrr@20": 0.1}}}
    env = {**serving, "SKIFF_SERVE_PORT": str(stack.port("models")),
           "SKIFF_SERVE_CONTROL_PORT": str(stack.port("control"))}
    api = stack.urls["api"]
    try:
        with DagRuns("skiff_release_test", env) as dag:
            first = dag.run({"pathspec": "RecFlow/1", "metrics": {**base, "mrr@20": 0.2},
                             "model_dir": str(good)})
            assert first["state"] == "success", (first["tasks"], dag.tail())
            assert first["tasks"]["promote_rec"] == "success"
            assert first["tasks"]["rollback_rec"] == "skipped"  # nothing failed
            assert first["xcom"]["smoke_test_rec"]["smoke"]["model_version"] == "RecFlow/1"
            assert _served_version(api, sku) == "RecFlow/1"

            rejected = dag.run({"pathspec": "RecFlow/2", "metrics": {**base, "mrr@20": 0.15},
                                "model_dir": str(second)})
            assert rejected["state"] == "success", rejected["tasks"]  # a lost comparison: green
            decision = rejected["xcom"]["gate_rec"]
            assert decision["promote"] is False and "Keep champion" in decision["reason"]
            assert {rejected["tasks"][t] for t in ("deploy_rec", "smoke_test_rec", "promote_rec",
                                                   "rollback_rec")} == {"skipped"}
            assert _served_version(api, sku) == "RecFlow/1"

            # the model does not load: the server refused it, the champion never stopped serving
            failed_deploy = dag.run({"pathspec": "RecFlow/3",
                                     "metrics": {**base, "mrr@20": 0.5}, "model_dir": str(broken)})
            assert failed_deploy["state"] == "failed", failed_deploy["tasks"]
            assert failed_deploy["tasks"]["deploy_rec"] == "failed"
            assert failed_deploy["tasks"]["rollback_rec"] == "success"
            assert failed_deploy["xcom"]["rollback_rec"]["changed"] is False
            assert _served_version(api, sku) == "RecFlow/1"

            # deployed and serving RecFlow/4, then the smoke test fails: rolled back to RecFlow/1
            failed_smoke = dag.run({"pathspec": "RecFlow/4", "metrics": {**base, "mrr@20": 0.6},
                                    "model_dir": str(fourth),
                                    "smoke_session": "unknown-sku-1,unknown-sku-2"})
            assert failed_smoke["state"] == "failed", failed_smoke["tasks"]
            assert failed_smoke["tasks"]["deploy_rec"] == "success"
            assert failed_smoke["tasks"]["smoke_test_rec"] == "failed"
            assert failed_smoke["tasks"]["rollback_rec"] == "success"
            assert failed_smoke["xcom"]["rollback_rec"]["changed"] is True
            assert _served_version(api, sku) == "RecFlow/1"
        with urllib.request.urlopen(f"{stack.urls['models']}/ping", timeout=10) as ping:
            assert ping.status == 200
    finally:
        stack.close()
    from skiff.serve import ModelRegistry, open_storage

    champion = ModelRegistry(open_storage(str(home / "registry"))).champion("rec")
    assert champion.pathspec == "RecFlow/1"
