"""The AWS deploy path against moto in server mode (a real HTTP endpoint on 127.0.0.1).

Airflow's ``aws_default`` connection points at the server through ``endpoint_url`` in its extra
(``AIRFLOW_CONN_AWS_DEFAULT``), so the Amazon provider's operators and hooks and Skiff's own run
unchanged. moto 5.2.5 lacks ``UpdateEndpoint`` and lets ``CreateEndpoint`` overwrite an existing
endpoint; :func:`_aws_endpoint_semantics` gives its backend AWS's behaviour for both (the code
under test is not patched). moto's ``invoke_endpoint`` answers what the test queues through its
``/moto-api``, and its Lambda runs no code without Docker: the Lambda is checked on its control
plane here, its handler over HTTP in ``test_local_serving_http.py``.
"""

from __future__ import annotations

import io
import json
import tarfile
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving_models import SKUS, rec_bundle, retag
from skiff.config import ServingConfig

pytestmark = pytest.mark.integration

REGION, BUCKET = "us-east-1", "skiff-artifacts"
ROLE = "arn:aws:iam::123456789012:role/skiff-sagemaker"


def _aws_endpoint_semantics() -> None:
    """Give moto's SageMaker backend AWS's UpdateEndpoint, and refuse re-creating an endpoint."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerModelBackend, "_skiff_patched", False):
        return
    create = SageMakerModelBackend.create_endpoint

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str,
                        tags: Any) -> Any:
        if endpoint_name in self.endpoints:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        return create(self, endpoint_name, endpoint_config_name, tags)

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str) -> Any:
        if endpoint_name not in self.endpoints:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        config = self.describe_endpoint_config(endpoint_config_name)  # raises when missing
        endpoint = self.endpoints[endpoint_name]
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config["ProductionVariants"])
        endpoint.last_modified_time = utcnow()
        return endpoint

    def respond(self: Any) -> Any:
        endpoint = self.sagemaker_backend.update_endpoint(self._get_param("EndpointName"),
                                                          self._get_param("EndpointConfigName"))
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerModelBackend.update_endpoint = update_endpoint
    SageMakerResponse.update_endpoint = respond
    SageMakerModelBackend._skiff_patched = True


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from moto.server import ThreadedMotoServer

    _aws_endpoint_semantics()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": url, "region_name": REGION}}))
        import boto3

        boto3.client("s3", endpoint_url=url, region_name=REGION).create_bucket(Bucket=BUCKET)
        root = tmp_path_factory.mktemp("moto-bundles")
        yield SimpleNamespace(
            url=url, ti=FakeTI(),
            config=ServingConfig(backend="sagemaker", bucket=BUCKET, role_arn=ROLE,
                                 region=REGION, image_uri="123.dkr.ecr.{region}.amazonaws.com/tfs:1",
                                 instance_type="ml.t2.medium"),
            bundles=_bundles(root),
            sagemaker=boto3.client("sagemaker", endpoint_url=url, region_name=REGION),
            s3=boto3.client("s3", endpoint_url=url, region_name=REGION),
            boto3=boto3)
    server.stop()


def _bundles(root: Path) -> dict[int, Path]:
    first = rec_bundle(root / "rec1", "RecFlow/1")
    return {1: first, **{v: retag(first, root / f"rec{v}", f"RecFlow/{v}") for v in (2, 3, 4, 5)}}


class FakeTI:
    """The part of a task instance the operators touch: XCom pushes, the run's task states."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.failed: tuple[str, ...] = ()

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def get_task_states(self, dag_id: str | None, task_ids: list[str],
                        run_ids: list[str]) -> dict[str, dict[str, str]]:
        return {run_ids[0]: {t: "failed" if t in self.failed else "success" for t in task_ids}}


def queue_model_answer(moto: SimpleNamespace, answer: dict | bytes) -> None:
    """What moto's sagemaker-runtime answers next (it runs no model)."""
    body = answer.decode() if isinstance(answer, bytes) else json.dumps(answer)
    request = urllib.request.Request(
        f"{moto.url}/moto-api/static/sagemaker/endpoint-results", method="POST",
        data=json.dumps({"results": [{"Body": body, "ContentType": "application/json"}]}).encode())
    urllib.request.urlopen(request, timeout=10).read()


def rec_answer(version: str) -> dict:
    return {"model": "rec", "model_version": version,
            "predictions": [{"items": list(SKUS[:3]), "scores": [0.3, 0.2, 0.1]}]}


def gate(moto: SimpleNamespace, version: int, mrr: float, bundle: dict | None = None) -> dict:
    from operators.gate import ModelGateOperator

    metrics = {"mrr@20": mrr, "baselines": {"most_popular": {"mrr@20": 0.05}}}
    op = ModelGateOperator(task_id="gate_rec", model="rec", config=moto.config, candidate={
        "pathspec": f"RecFlow/{version}", "metrics": metrics, "bundle": bundle})
    return op.execute({"ti": moto.ti})


def deploy(moto: SimpleNamespace, version: int, gated: dict, *, smoke_answer: dict | bytes,
           skip_model: bool = False) -> dict:
    """plan → provider operators → smoke test → promote; roll back on any failure (as the DAG).

    The bundle is the gate's (the training task's) when it carries one, else the folder.
    """
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerEndpointConfigOperator,
        SageMakerEndpointOperator,
        SageMakerModelOperator,
    )

    from operators.deploy import SageMakerDeployPlanOperator
    from operators.promote import ChampionPromoteOperator, EndpointRollbackOperator
    from operators.smoke_test import PredictSmokeTestOperator

    ctx, aws = {"ti": moto.ti}, {"aws_conn_id": "aws_default", "region_name": REGION}
    try:
        folder = None if gated.get("bundle") else str(moto.bundles[version])
        plan = SageMakerDeployPlanOperator(task_id="plan", model="rec", candidate=gated,
                                           model_dir=folder, config=moto.config).execute(ctx)
        if not skip_model:
            SageMakerModelOperator(task_id="model", config=moto.ti.xcom["model_config"],
                                   **aws).execute(ctx)
        SageMakerEndpointConfigOperator(task_id="endpoint_config",
                                        config=moto.ti.xcom["endpoint_config_config"],
                                        **aws).execute(ctx)
        SageMakerEndpointOperator(task_id="endpoint", config=moto.ti.xcom["endpoint_config"],
                                  operation="create", check_interval=1, **aws).execute(ctx)
        queue_model_answer(moto, smoke_answer)
        smoke = PredictSmokeTestOperator(task_id="smoke", deployment=plan, config=moto.config,
                                         session=[SKUS[version], SKUS[version + 5]]).execute(ctx)
        champion = ChampionPromoteOperator(task_id="promote", gate=gated, deployment=smoke,
                                           config=moto.config).execute(ctx)
        return {"plan": plan, "smoke": smoke, "champion": champion}
    except Exception as exc:
        moto.ti.failed = ("deploy",)
        rollback = EndpointRollbackOperator(task_id="rollback", model="rec", config=moto.config,
                                            watch=("deploy",), check_interval=1).execute(
            {**ctx, "run_id": "manual__1"})
        return {"error": exc, "rollback": rollback}


def serving_config(moto: SimpleNamespace) -> str:
    return moto.sagemaker.describe_endpoint(EndpointName="skiff-rec")["EndpointConfigName"]


def champion(moto: SimpleNamespace) -> dict | None:
    from hooks.model_registry import ModelRegistryHook

    record = ModelRegistryHook(moto.config).champion("rec")
    return record.to_dict() if record else None


@pytest.fixture(scope="module")
def released(moto: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """RecFlow/1 created (first deploy, a bare folder), then RecFlow/2 as an update (a run's
    BundleRef with the tarball it packed)."""
    from skiff.serve import BundleRef, pack_bundle

    first = deploy(moto, 1, gate(moto, 1, 0.20), smoke_answer=rec_answer("RecFlow/1"))
    tarball = pack_bundle(moto.bundles[2], tmp_path_factory.mktemp("run2") / "model.tar.gz")
    run = BundleRef("RecFlow/2", str(moto.bundles[2]), str(tarball))
    second = deploy(moto, 2, gate(moto, 2, 0.30, run.to_dict()),
                    smoke_answer=rec_answer("RecFlow/2"))
    return SimpleNamespace(first=first, second=second, tarball=tarball)


def test_create_then_update(moto: SimpleNamespace, released: SimpleNamespace) -> None:
    first, second = released.first, released.second
    assert "error" not in first and "error" not in second, (first.get("error"), second.get("error"))
    assert first["plan"]["operation"] == "create" and first["plan"]["previous_endpoint_config_name"] is None
    assert second["plan"]["operation"] == "update"
    assert second["plan"]["previous_endpoint_config_name"] == first["plan"]["endpoint_config_name"]
    endpoint = moto.sagemaker.describe_endpoint(EndpointName="skiff-rec")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == second["plan"]["endpoint_config_name"]
    model = moto.sagemaker.describe_model(ModelName=second["plan"]["model_name"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == second["plan"]["artifact_uri"]
    assert model["PrimaryContainer"]["Image"] == "123.dkr.ecr.us-east-1.amazonaws.com/tfs:1"
    assert model["ExecutionRoleArn"] == ROLE
    # the tarball SageMaker's TensorFlow Serving container expects, with the contract code
    key = second["plan"]["artifact_uri"].removeprefix(f"s3://{BUCKET}/")
    data = moto.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {"1/saved_model.pb", "code/inference.py", "code/skiff_model.json"} <= set(tar.getnames())
    assert data == released.tarball.read_bytes()  # the run's own tarball, not packed again
    assert second["plan"]["bundle"]["tarball"] == second["plan"]["artifact_uri"]
    # the smoke test went through the Lambda handler to moto's runtime
    assert second["smoke"]["smoke"]["model_version"] == "RecFlow/2"
    record = champion(moto)
    assert record["pathspec"] == "RecFlow/2" and record["previous"] == "RecFlow/1"
    assert record["endpoint_config_name"] == second["plan"]["endpoint_config_name"]
    assert record["previous_endpoint_config_name"] == first["plan"]["endpoint_config_name"]
    assert record["backend"] == "sagemaker" and record["artifact_uri"].startswith("s3://")
    assert record["bundle"] == {"pathspec": "RecFlow/2", "folder": str(moto.bundles[2]),
                                "tarball": record["artifact_uri"]}
    keys = [o["Key"] for o in moto.s3.list_objects_v2(Bucket=BUCKET, Prefix="skiff/registry/")["Contents"]]
    assert "skiff/registry/rec/champion.json" in keys and len(keys) == 3  # + 2 history records


def test_failed_smoke_test_rolls_back_to_the_old_config(moto: SimpleNamespace,
                                                        released: SimpleNamespace) -> None:
    good = serving_config(moto)
    result = deploy(moto, 3, gate(moto, 3, 0.40), smoke_answer=b"body")  # moto's fixed body
    assert "unexpected body" in str(result["error"])
    assert result["rollback"]["changed"] is True
    assert result["rollback"]["endpoint_config_name"] == good
    assert serving_config(moto) == good
    assert moto.sagemaker.describe_endpoint(EndpointName="skiff-rec")["EndpointStatus"] == "InService"
    assert champion(moto)["pathspec"] == "RecFlow/2"


def test_failed_update_leaves_the_old_config_serving(moto: SimpleNamespace,
                                                     released: SimpleNamespace) -> None:
    good = serving_config(moto)
    result = deploy(moto, 4, gate(moto, 4, 0.50), smoke_answer=rec_answer("RecFlow/4"),
                    skip_model=True)  # the model was never created: its endpoint config fails
    assert "Could not find model" in str(result["error"])
    assert result["rollback"]["changed"] is False
    assert serving_config(moto) == good and champion(moto)["pathspec"] == "RecFlow/2"


def test_smoke_test_notices_an_update_that_did_not_take(moto: SimpleNamespace,
                                                        released: SimpleNamespace) -> None:
    from airflow.exceptions import AirflowException

    from operators.smoke_test import PredictSmokeTestOperator

    plan = {**released.second["plan"], "endpoint_config_name": "skiff-rec-never-applied"}
    with pytest.raises(AirflowException, match="the update did not take"):
        PredictSmokeTestOperator(task_id="smoke", deployment=plan,
                                 config=moto.config).execute({"ti": moto.ti})


def test_a_rejected_challenger_ends_green_and_touches_nothing(moto: SimpleNamespace,
                                                              released: SimpleNamespace) -> None:
    from airflow.providers.common.compat.sdk import DownstreamTasksSkipped
    from airflow.sdk import DAG

    from operators.gate import ModelGateOperator

    good = serving_config(moto)
    with DAG("gate_only", schedule=None):
        op = ModelGateOperator(task_id="gate_rec", model="rec", config=moto.config,
                               candidate={"pathspec": "RecFlow/9", "metrics": {"mrr@20": 0.1}})
        op >> ModelGateOperator(task_id="deploy_rec", model="rec", candidate="x/1")
    ti = FakeTI()
    ti.map_index = -1
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        op.execute({"ti": ti})
    assert list(skipped.value.tasks) == ["deploy_rec"]
    decision = ti.xcom["return_value"]
    assert decision["promote"] is False and "Keep champion" in decision["reason"]
    assert decision["champion_pathspec"] == "RecFlow/2" and decision["against"] == "champion-recorded"
    assert serving_config(moto) == good


def test_a_batch_runs_tarball_is_copied_within_s3(moto: SimpleNamespace, released: SimpleNamespace,
                                                  tmp_path: Path) -> None:
    """A run on Batch left its folder in its container and its tarball in S3: the plan reads
    the bundle from S3 and copies that very tarball to the endpoint's key."""
    from operators.deploy import SageMakerDeployPlanOperator
    from skiff.serve import BundleRef, pack_bundle

    packed = pack_bundle(moto.bundles[5], tmp_path / "model.tar.gz").read_bytes()
    moto.s3.put_object(Bucket=BUCKET, Key="metaflow/data/RecFlow/5/model.tar.gz", Body=packed)
    run = BundleRef("RecFlow/5", "/batch/container/models/RecFlow/5/bundle",
                    f"s3://{BUCKET}/metaflow/data/RecFlow/5/model.tar.gz")
    ti = FakeTI()
    plan = SageMakerDeployPlanOperator(task_id="plan", model="rec", config=moto.config,
                                       candidate={"pathspec": "RecFlow/5",
                                                  "bundle": run.to_dict()}).execute({"ti": ti})
    assert plan["model_version"] == "RecFlow/5" and plan["artifact_uri"] != run.tarball
    key = plan["artifact_uri"].removeprefix(f"s3://{BUCKET}/")
    assert moto.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == packed
    assert ti.xcom["model_config"]["PrimaryContainer"]["ModelDataUrl"] == plan["artifact_uri"]
    assert BundleRef.from_dict(plan["bundle"]).tarball == plan["artifact_uri"]


def test_lambda_function_create_update_and_permission(moto: SimpleNamespace, tmp_path: Path) -> None:
    from operators.lambda_deploy import LambdaFunctionDeployOperator

    iam = moto.boto3.client("iam", endpoint_url=moto.url, region_name=REGION)
    role = iam.create_role(RoleName="skiff-predict", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    arn = role["Role"]["Arn"]
    from skiff_api import package

    first = package.build(tmp_path / "lambda.zip")
    api = f"arn:aws:execute-api:{REGION}:123456789012:abc123/*/GET/predict"

    def run(zip_path: Path) -> dict:
        return LambdaFunctionDeployOperator(
            task_id="deploy_lambda", role=arn, zip_path=str(zip_path), api_source_arn=api,
            environment=moto.config.lambda_environment(), aws_conn_id="aws_default",
            region_name=REGION).execute({"ti": FakeTI()})

    created = run(first)
    assert created["operation"] == "create" and created["code_changed"]
    again = run(first)
    assert again["operation"] == "update" and not again["code_changed"]
    second = tmp_path / "lambda2.zip"
    with zipfile.ZipFile(first) as src, zipfile.ZipFile(second, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item) + b"\n# changed\n")
    changed = run(second)
    assert changed["code_changed"] and changed["code_sha256"] != created["code_sha256"]
    client = moto.boto3.client("lambda", endpoint_url=moto.url, region_name=REGION)
    function = client.get_function(FunctionName="skiff-predict")["Configuration"]
    assert function["Handler"] == "handler.lambda_handler" and function["Runtime"] == "python3.12"
    assert function["CodeSha256"] == changed["code_sha256"]
    assert function["Environment"]["Variables"]["SKIFF_ENDPOINT_NAME"] == "skiff"
    policy = json.loads(client.get_policy(FunctionName="skiff-predict")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["skiff-api-gateway"]
