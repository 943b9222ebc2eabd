"""Gate, local deploy, smoke test, promote and rollback operators, chained as a release runs them.

Local backend only (a model server on 127.0.0.1 when one is needed); the SageMaker path runs
against moto in ``tests/integration/test_sagemaker_moto.py``, the task group's wiring in
``tests/unit/plugins/taskgroups/test_release.py``.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import AirflowException
from airflow.sdk.exceptions import AirflowSkipException

from operators.deploy import LocalModelDeployOperator, resource_name
from operators.gate import ModelGateOperator
from operators.promote import ChampionPromoteOperator, EndpointRollbackOperator
from operators.smoke_test import PredictSmokeTestOperator
from serving_models import intent_bundle, rec_bundle, retag
from skiff.config import ServingConfig

METRICS = {"mrr@20": 0.3, "baselines": {"most_popular": {"mrr@20": 0.1}}}


class FakeTI:
    map_index = -1

    def __init__(self, failed: tuple[str, ...] = ()) -> None:
        self.xcom: dict[str, Any] = {}
        self.failed = failed  # task ids failed in the run (get_task_states answers them)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def get_task_states(self, dag_id: str | None, task_ids: list[str],
                        run_ids: list[str]) -> dict[str, dict[str, str]]:
        return {run_ids[0]: {t: "failed" if t in self.failed else "success" for t in task_ids}}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("op-bundles")
    rec = rec_bundle(root / "rec1", "RecFlow/1")
    return SimpleNamespace(rec1=rec, rec2=retag(rec, root / "rec2", "RecFlow/2"),
                           rec3=retag(rec, root / "rec3", "RecFlow/3"),
                           intent=intent_bundle(root / "intent", "IntentFlow/1"), root=root)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServingConfig:
    """A fresh SKIFF_HOME (registry and local control plane) and a port nobody listens on."""
    monkeypatch.setenv("SKIFF_HOME", str(tmp_path))
    return ServingConfig(port=9, registry_uri=str(tmp_path / "registry"))


def run(op: Any, ti: FakeTI | None = None) -> Any:
    return op.execute({"ti": ti or FakeTI(), "run_id": "manual__1"})


def release(cfg: ServingConfig, bundle: Path, version: int, mrr: float = 0.3) -> dict:
    gate = run(ModelGateOperator(task_id="gate", model="rec", config=cfg, candidate={
        "pathspec": f"RecFlow/{version}", "metrics": {**METRICS, "mrr@20": mrr}}))
    deployment = run(LocalModelDeployOperator(task_id="deploy", model="rec", candidate=gate,
                                              model_dir=str(bundle), config=cfg))
    smoke = run(PredictSmokeTestOperator(task_id="smoke", deployment=deployment, config=cfg))
    champion = run(ChampionPromoteOperator(task_id="promote", gate=gate, deployment=smoke,
                                           config=cfg))
    return {"gate": gate, "deployment": deployment, "smoke": smoke, "champion": champion}


def test_resource_names_are_valid_sagemaker_names() -> None:
    import re

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert resource_name("skiff-rec", "RecFlow/17", now) == "skiff-rec-recflow-17-20260102t030405"
    long = resource_name("a-very-long-endpoint-name-x", "SomeVeryLongFlowName/1795596158658723", now)
    assert len(long) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", long)
    assert long.endswith("1795596158658723-20260102t030405")


def test_local_release_without_a_running_server(cfg: ServingConfig, bundles: SimpleNamespace,
                                                tmp_path: Path) -> None:
    out = release(cfg, bundles.rec1, 1)
    d = out["deployment"]
    assert d["backend"] == "local" and d["operation"] == "create" and d["status"] == "InService"
    assert d["model_version"] == "RecFlow/1" and d["endpoint_name"] == "skiff-rec"
    assert Path(d["artifact_uri"]).is_relative_to(tmp_path / "serving")
    assert out["smoke"]["smoke"]["model_version"] == "RecFlow/1"  # through the handler, in-process
    assert out["champion"]["pathspec"] == "RecFlow/1" and out["champion"]["backend"] == "local"
    assert out["gate"]["against"] == "baselines"
    second = release(cfg, bundles.rec2, 2, mrr=0.4)
    assert second["deployment"]["previous_endpoint_config_name"] == d["endpoint_config_name"]
    assert second["champion"]["previous"] == "RecFlow/1"
    # a restarted server serves the last deploy
    from skiff.serve import EndpointStore, ModelServer

    server = ModelServer(max_batch=1)
    assert server.load_store(EndpointStore()) == ["skiff-rec"]
    assert server.endpoint("skiff-rec").model.version == "RecFlow/2"


def test_gate_rejects_green_and_skips_the_deploy(cfg: ServingConfig, bundles: SimpleNamespace) -> None:
    from airflow.providers.common.compat.sdk import DownstreamTasksSkipped
    from airflow.sdk import DAG

    release(cfg, bundles.rec1, 1)
    with DAG("gate_test", schedule=None):
        gate = ModelGateOperator(task_id="gate_rec", model="rec", config=cfg,
                                 candidate={"pathspec": "RecFlow/5", "metrics": METRICS})
        gate >> LocalModelDeployOperator(task_id="deploy_rec", model="rec", candidate=gate.output)
    ti = FakeTI()
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        run(gate, ti)
    assert list(skipped.value.tasks) == ["deploy_rec"]
    assert ti.xcom["return_value"]["promote"] is False
    assert "gain 0.0000 is not above margin" in ti.xcom["return_value"]["reason"]
    assert gate.retries == 0
    # both decisions are kept in the registry, newest first, with their reasons (the page's)
    from skiff.serve import ModelRegistry, open_storage

    decisions = ModelRegistry(open_storage(cfg.registry)).decisions("rec")
    assert [(d["pathspec"], d["promote"]) for d in decisions] == [("RecFlow/5", False),
                                                                  ("RecFlow/1", True)]
    assert decisions[0]["reason"] == ti.xcom["return_value"]["reason"]
    assert decisions[0]["run_id"] == "manual__1" and decisions[0]["against"] == "champion-recorded"


def test_gate_reads_metrics_from_metaflow_when_given_a_pathspec(cfg: ServingConfig) -> None:
    class FakeMetaflow:
        def metrics(self, pathspec: str) -> dict:
            assert pathspec == "RecFlow/8"
            return {"model": {"mrr@20": 0.2}, "baselines": {"pop": {"mrr@20": 0.1}}}

    op = ModelGateOperator(task_id="gate", model="rec", candidate="RecFlow/8", config=cfg)
    op.metaflow_hook = FakeMetaflow()
    assert run(op)["promote"] is True


@pytest.mark.parametrize(("candidate", "match"), [
    pytest.param({"pathspec": "RecFlow/1", "metrics": {"hit_rate@20": 0.2}}, "lack 'mrr@20'",
                 id="metric-missing"),
    pytest.param({"pathspec": "RecFlow/1", "metrics": {"mrr@20": float("nan")}}, "finite",
                 id="metric-nan"),
    pytest.param({"metrics": {"mrr@20": 0.2}}, "pathspec", id="no-pathspec"),
])
def test_gate_errors_fail_the_task(cfg: ServingConfig, candidate: dict, match: str) -> None:
    with pytest.raises(AirflowException, match=match):
        run(ModelGateOperator(task_id="gate", model="rec", candidate=candidate, config=cfg))


def test_deploy_swaps_the_running_server_and_refuses_a_broken_model(
        cfg: ServingConfig, bundles: SimpleNamespace, tmp_path: Path) -> None:
    from skiff_api.local_stack import LocalStack

    stack = LocalStack.build(cfg, port=0, api_port=0, control_port=0).start()
    try:
        live = ServingConfig(port=stack.port("models"), control_port=stack.port("control"),
                             registry_uri=cfg.registry_uri)
        first = release(live, bundles.rec1, 1)
        assert first["deployment"]["status"] == "InService"
        assert stack.models.endpoint("skiff-rec").model.version == "RecFlow/1"
        broken = shutil.copytree(bundles.rec2, tmp_path / "broken")
        (broken / "1" / "saved_model.pb").write_bytes(b"garbage")
        with pytest.raises(AirflowException, match="keeps serving its model"):
            run(LocalModelDeployOperator(task_id="deploy", model="rec", model_dir=str(broken),
                                         candidate={"pathspec": "RecFlow/2"}, config=live))
        assert stack.models.endpoint("skiff-rec").model.version == "RecFlow/1"
        from hooks.model_server import LocalModelServerHook

        record = LocalModelServerHook(live).endpoint("skiff-rec")
        assert record.endpoint_config_name == first["deployment"]["endpoint_config_name"]
        # /predict of the running stack answers from the deployed model
        import urllib.request

        with urllib.request.urlopen(f"{stack.urls['api']}/predict?session=sku01") as answer:
            assert json.loads(answer.read())["model_version"] == "RecFlow/1"
    finally:
        stack.close()


def test_rollback_returns_to_the_champion(cfg: ServingConfig, bundles: SimpleNamespace) -> None:
    from skiff_api.local_stack import LocalStack

    stack = LocalStack.build(cfg, port=0, api_port=0, control_port=0, with_api=False).start()
    try:
        live = ServingConfig(port=stack.port("models"), control_port=stack.port("control"),
                             registry_uri=cfg.registry_uri)
        rollback = EndpointRollbackOperator(task_id="rollback", model="rec", config=live,
                                            watch=("deploy", "smoke"))
        failed = FakeTI(failed=("smoke",))
        assert run(rollback, failed) == {"endpoint_name": "skiff-rec", "changed": False}  # none
        good = release(live, bundles.rec1, 1)["deployment"]["endpoint_config_name"]
        assert run(rollback, failed)["changed"] is False  # serving the champion already
        bad = run(LocalModelDeployOperator(task_id="deploy", model="rec", config=live,
                                           model_dir=str(bundles.rec3),
                                           candidate={"pathspec": "RecFlow/3"}))
        assert stack.models.endpoint("skiff-rec").model.version == "RecFlow/3"
        with pytest.raises(AirflowSkipException, match="None of deploy, smoke failed"):
            run(rollback)  # nothing of this run failed: the endpoint stays
        assert stack.models.endpoint("skiff-rec").model.version == "RecFlow/3"
        result = run(rollback, failed)  # after a failed smoke test of RecFlow/3
        assert result["changed"] is True and result["endpoint_config_name"] == good
        assert result["previous_endpoint_config_name"] == bad["endpoint_config_name"]
        assert stack.models.endpoint("skiff-rec").model.version == "RecFlow/1"
    finally:
        stack.close()


def test_smoke_test_fails_on_a_wrong_version(cfg: ServingConfig, bundles: SimpleNamespace) -> None:
    deployment = release(cfg, bundles.rec1, 1)["deployment"]
    with pytest.raises(AirflowException, match="not the deployed 'RecFlow/7'"):
        run(PredictSmokeTestOperator(task_id="smoke", config=cfg,
                                     deployment={**deployment, "model_version": "RecFlow/7"}))
    with pytest.raises(AirflowException, match="unknown SKUs"):
        run(PredictSmokeTestOperator(task_id="smoke", config=cfg, deployment=deployment,
                                     session=["not-a-sku"]))


def test_deploy_takes_the_bundle_the_training_task_returned(
        cfg: ServingConfig, bundles: SimpleNamespace, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """train XCom -> gate -> deploy -> promote carry one BundleRef; a gone folder is unpacked."""
    from hooks.metaflow_runner import MetaflowHook
    from skiff.serve import BundleRef, pack_bundle

    tarball = pack_bundle(bundles.rec1, tmp_path / "run" / "model.tar.gz")
    trained = BundleRef("RecFlow/1", str(tmp_path / "container" / "bundle"), str(tarball))
    gate = run(ModelGateOperator(task_id="gate", model="rec", config=cfg, candidate={
        "pathspec": "RecFlow/1", "metrics": METRICS, "bundle": trained.to_dict()}))
    assert gate["bundle"] == trained.to_dict()
    deployment = run(LocalModelDeployOperator(task_id="deploy", model="rec", candidate=gate,
                                              config=cfg))
    served = BundleRef.from_dict(deployment["bundle"])
    assert served.tarball == str(tarball) and served.folder == deployment["artifact_uri"]
    assert (tmp_path / "models" / "RecFlow" / "1" / "deploy" / "bundle" / "code").is_dir()
    smoke = run(PredictSmokeTestOperator(task_id="smoke", deployment=deployment, config=cfg))
    champion = run(ChampionPromoteOperator(task_id="promote", gate=gate, deployment=smoke,
                                           config=cfg))
    assert champion["bundle"] == served.to_dict()

    # a bare pathspec: the run's own artifact, through the Metaflow hook
    third = BundleRef("RecFlow/3", str(bundles.rec3))
    monkeypatch.setattr(MetaflowHook, "bundle", lambda self, p: third if p == "RecFlow/3"
                        else None)
    again = run(LocalModelDeployOperator(task_id="deploy", model="rec", candidate="RecFlow/3",
                                         config=cfg))
    assert again["model_version"] == "RecFlow/3" and again["operation"] == "update"
    with pytest.raises(AirflowException, match="RecFlow/2 recorded no model bundle"):
        run(LocalModelDeployOperator(task_id="deploy", model="rec", candidate="RecFlow/2",
                                     config=cfg))
    with pytest.raises(AirflowException, match="RecFlow/1 is not on this machine"):
        run(LocalModelDeployOperator(task_id="deploy", model="rec", config=cfg, candidate={
            "pathspec": "RecFlow/1", "bundle": {**trained.to_dict(), "tarball": ""}}))


def test_intent_release(cfg: ServingConfig, bundles: SimpleNamespace) -> None:
    gate = run(ModelGateOperator(task_id="gate", model="intent", config=cfg, candidate={
        "pathspec": "IntentFlow/1", "metrics": {"roc_auc": 0.7,
                                                "baselines": {"logistic": {"roc_auc": 0.6}}}}))
    deployment = run(LocalModelDeployOperator(task_id="deploy", model="intent", candidate=gate,
                                              model_dir=str(bundles.intent), config=cfg))
    smoke = run(PredictSmokeTestOperator(task_id="smoke", deployment=deployment, config=cfg))
    assert 0 < smoke["smoke"]["probability"] < 1 and smoke["endpoint_name"] == "skiff-intent"
    with pytest.raises(AirflowException, match="holds a 'rec' model"):
        run(LocalModelDeployOperator(task_id="deploy", model="intent", candidate=gate,
                                     model_dir=str(bundles.rec1), config=cfg))


def test_the_deployed_lambdas_timeout_fits_the_handlers_retry_budget() -> None:
    """LambdaFunctionDeployOperator's default timeout, like template.yaml's, outlasts the handler."""
    from operators.lambda_deploy import LambdaFunctionDeployOperator
    from skiff_api import handler

    operator = LambdaFunctionDeployOperator(task_id="lambda", role="arn:aws:iam::1:role/r",
                                            environment=ServingConfig().lambda_environment())
    settings = handler.Settings(operator.config["environment"]["Variables"])
    assert settings.worst_case_s() <= operator.timeout - max(2.0, 0.1 * operator.timeout)
