"""The AWS deploy path against moto in server mode (a real HTTP endpoint on 127.0.0.1).

Airflow's ``aws_default`` connection points at the server through ``endpoint_url`` in its extra
(``AIRFLOW_CONN_AWS_DEFAULT``), so the Amazon provider's operators and hooks and Skiff's own run
unchanged. The release is the DAG's own: ``release_tasks`` in the fixture DAG
``skiff_release_test`` with ``SKIFF_SERVING=sagemaker``, run by ``dag.test()`` in a subprocess
(``tests/dag_runs.py``): a first promote (the endpoint created), a second (updated), a
rejected challenger, a failed smoke test and a failed update, each followed by a look at
what moto and the registry hold.

moto 5.2.5 lacks ``UpdateEndpoint``, lets ``CreateEndpoint`` overwrite an existing endpoint
and runs no container; :func:`_aws_endpoint_semantics` gives its backend AWS's behaviour for
these (the code under test is not patched), a model whose SavedModel does not parse failing
the container's health check as it would on AWS. moto's ``invoke_endpoint`` answers what the
test queues through its ``/moto-api``, and its Lambda runs no code without Docker: the Lambda
is checked on its control plane here, its handler over HTTP in ``test_local_serving_http.py``.
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

from dag_runs import DagRuns
from serving_models import SKUS, rec_bundle, retag

pytestmark = pytest.mark.integration

REGION, BUCKET = "us-east-1", "skiff-artifacts"
ROLE = "arn:aws:iam::123456789012:role/skiff-sagemaker"
#: What SageMaker reports when a model's container does not come up (its words).
HEALTH_CHECK_FAILED = ("The primary container for production variant AllTraffic did not pass "
                       "the ping health check. Please check CloudWatch logs for this endpoint.")


def _container_failure(backend: Any, endpoint_config_name: str) -> str | None:
    """Why the TensorFlow Serving container of the config's model would not come up (its
    ``ModelDataUrl`` is missing from S3, or holds no SavedModel that parses); None when it
    would."""
    from google.protobuf.message import DecodeError
    from moto.s3.exceptions import MissingBucket, MissingKey
    from moto.s3.models import s3_backends
    from tensorflow.core.protobuf import saved_model_pb2

    config = backend.describe_endpoint_config(endpoint_config_name)
    for variant in config["ProductionVariants"]:
        url = backend.describe_model(variant["ModelName"]).primary_container["ModelDataUrl"]
        bucket, _, key = url.removeprefix("s3://").partition("/")
        s3 = s3_backends[backend.account_id][backend.partition]
        try:
            data = s3.get_object(bucket, key).value
        except (MissingBucket, MissingKey):
            return f"Failed to download model data for container container_1 from {url}."
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                saved_model_pb2.SavedModel.FromString(
                    tar.extractfile("1/saved_model.pb").read())  # type: ignore[union-attr]
        except (KeyError, tarfile.TarError, DecodeError):
            return HEALTH_CHECK_FAILED
    return None


def _aws_endpoint_semantics() -> None:
    """Give moto's SageMaker backend AWS's endpoint semantics.

    AWS refuses to create an endpoint that exists, and has UpdateEndpoint; a model whose
    container does not come up fails a create (``Failed``) and an update, which leaves the
    endpoint ``InService`` on its old config with the ``FailureReason`` (as Terraform's
    provider found: hashicorp/terraform-provider-aws#39099, #46663).
    """
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
        endpoint = create(self, endpoint_name, endpoint_config_name, tags)
        if failure := _container_failure(self, endpoint_config_name):
            endpoint.endpoint_status, endpoint.failure_reason = "Failed", failure
        return endpoint

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str) -> Any:
        if endpoint_name not in self.endpoints:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        config = self.describe_endpoint_config(endpoint_config_name)  # raises when missing
        endpoint = self.endpoints[endpoint_name]
        endpoint.failure_reason = _container_failure(self, endpoint_config_name)
        if endpoint.failure_reason is None:
            endpoint.endpoint_config_name = endpoint_config_name
            endpoint.production_variants = endpoint._process_production_variants(
                config["ProductionVariants"])
        endpoint.endpoint_status = "InService"
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
    """A moto server on 127.0.0.1, and this process's environment (which the DAG runs'
    subprocess inherits) pointing Airflow's ``aws_default`` and the serving settings at it."""
    from moto.server import ThreadedMotoServer

    from skiff.config import ServingConfig

    _aws_endpoint_semantics()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                    {"conn_type": "aws", "extra": {"endpoint_url": url, "region_name": REGION}}),
                "SKIFF_SERVING": "sagemaker", "SKIFF_ARTIFACT_BUCKET": BUCKET,
                "SKIFF_SAGEMAKER_ROLE_ARN": ROLE, "SKIFF_AWS_REGION": REGION,
                "SKIFF_SAGEMAKER_IMAGE_URI": "123.dkr.ecr.{region}.amazonaws.com/tfs:1",
                "SKIFF_SAGEMAKER_INSTANCE_TYPE": "ml.t2.medium"}.items():
            mp.setenv(name, value)
        import boto3

        boto3.client("s3", endpoint_url=url, region_name=REGION).create_bucket(Bucket=BUCKET)
        root = tmp_path_factory.mktemp("moto-bundles")
        yield SimpleNamespace(
            url=url, config=ServingConfig.from_env(), bundles=_bundles(root),
            sagemaker=boto3.client("sagemaker", endpoint_url=url, region_name=REGION),
            s3=boto3.client("s3", endpoint_url=url, region_name=REGION),
            boto3=boto3)
    server.stop()


def _bundles(root: Path) -> dict[int | str, Path]:
    """RecFlow/1 to /5, and ``broken``: RecFlow/6, whose SavedModel no server would load."""
    first = rec_bundle(root / "rec1", "RecFlow/1")
    bundles: dict[int | str, Path] = {1: first, **{
        v: retag(first, root / f"rec{v}", f"RecFlow/{v}") for v in (2, 3, 4, 5)}}
    broken = bundles["broken"] = retag(first, root / "broken", "RecFlow/6")
    (broken / "1" / "saved_model.pb").write_bytes(b"garbage")
    return bundles


class FakeTI:
    """The part of a task instance the deploy plan touches: XCom pushes."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def queue_model_answer(moto: SimpleNamespace, answer: dict | bytes) -> None:
    """What moto's sagemaker-runtime answers next (it runs no model).

    moto answers a body it saw before as it did then: each run's smoke test asks with
    SKUs of its own.
    """
    body = answer.decode() if isinstance(answer, bytes) else json.dumps(answer)
    request = urllib.request.Request(
        f"{moto.url}/moto-api/static/sagemaker/endpoint-results", method="POST",
        data=json.dumps({"results": [{"Body": body, "ContentType": "application/json"}]}).encode())
    urllib.request.urlopen(request, timeout=10).read()


def rec_answer(version: str) -> dict:
    return {"model": "rec", "model_version": version,
            "predictions": [{"items": list(SKUS[:3]), "scores": [0.3, 0.2, 0.1]}]}


def champion(moto: SimpleNamespace) -> dict | None:
    from hooks.model_registry import ModelRegistryHook

    record = ModelRegistryHook(moto.config).champion("rec")
    return record.to_dict() if record else None


#: The release's tasks on SageMaker, in their order.
DEPLOY_TASKS = ("plan_deploy_rec", "create_model_rec", "create_endpoint_config_rec",
                "deploy_endpoint_rec")


@pytest.fixture(scope="module")
def releases(moto: SimpleNamespace, airflow_db: Path,
             tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Five runs of the release task group (dag.test), each with ``after``: the endpoint
    (config, status, failure reason) and the registry's champion once it ended.

    1. ``first``: RecFlow/1 from a bare folder: the endpoint is created, RecFlow/1 promoted;
    2. ``second``: RecFlow/2 as a run hands it on (a BundleRef with the tarball it packed):
       the endpoint is updated, RecFlow/2 promoted;
    3. ``rejected``: RecFlow/3 loses to the champion: green, nothing deployed;
    4. ``failed_smoke``: RecFlow/4 is deployed, then its smoke test gets a body that is not
       JSON (``body``, moto's own default answer);
    5. ``failed_update``: RecFlow/6's SavedModel is garbage: the update fails.
    """
    from skiff.serve import BundleRef, pack_bundle

    tarball = pack_bundle(moto.bundles[2], tmp_path_factory.mktemp("run2") / "model.tar.gz")
    base = {"baselines": {"most_popular": {"mrr@20": 0.05}}}

    def conf(version: int, mrr: float, **more: Any) -> dict[str, Any]:
        return {"pathspec": f"RecFlow/{version}", "metrics": {**base, "mrr@20": mrr},
                "smoke_session": f"{SKUS[version]},{SKUS[version + 10]}", **more}

    runs = {
        "first": (conf(1, 0.20, model_dir=str(moto.bundles[1])), rec_answer("RecFlow/1")),
        "second": (conf(2, 0.30, bundle=BundleRef("RecFlow/2", str(moto.bundles[2]),
                                                  str(tarball)).to_dict()),
                   rec_answer("RecFlow/2")),
        "rejected": (conf(3, 0.25, model_dir=str(moto.bundles[3])), None),
        "failed_smoke": (conf(4, 0.40, model_dir=str(moto.bundles[4])), b"body"),
        "failed_update": (conf(6, 0.50, model_dir=str(moto.bundles["broken"])), None),
    }
    done: dict[str, Any] = {}
    with DagRuns("skiff_release_test") as dag:
        for name, (run_conf, answer) in runs.items():
            if answer is not None:  # only a smoke test that gets to ask takes an answer
                queue_model_answer(moto, answer)
            result = dag.run(run_conf)
            endpoint = moto.sagemaker.describe_endpoint(EndpointName="skiff-rec")
            result["after"] = {"config": endpoint["EndpointConfigName"],
                               "status": endpoint["EndpointStatus"],
                               "failure": endpoint.get("FailureReason"),
                               "champion": champion(moto)}
            done[name] = SimpleNamespace(**result)
    return SimpleNamespace(tarball=tarball, **done)


def test_first_promote_creates_the_endpoint(moto: SimpleNamespace,
                                            releases: SimpleNamespace) -> None:
    first = releases.first
    assert first.state == "success", (first.tasks, first.output[-3000:])
    assert {first.tasks[t] for t in (*DEPLOY_TASKS, "smoke_test_rec", "promote_rec")} == {
        "success"}
    assert first.tasks["rollback_rec"] == "skipped"  # nothing failed
    plan = first.xcom["plan_deploy_rec"]
    assert plan["operation"] == "create" and plan["previous_endpoint_config_name"] is None
    assert first.after["config"] == plan["endpoint_config_name"]
    assert first.after["status"] == "InService"
    # the smoke test went through the Lambda handler to moto's runtime
    assert first.xcom["smoke_test_rec"]["smoke"]["model_version"] == "RecFlow/1"
    assert first.after["champion"]["pathspec"] == "RecFlow/1"
    assert first.after["champion"]["endpoint_config_name"] == plan["endpoint_config_name"]


def test_an_update_ships_the_runs_tarball_and_promotes(moto: SimpleNamespace,
                                                       releases: SimpleNamespace) -> None:
    first, second = releases.first.xcom["plan_deploy_rec"], releases.second.xcom
    assert releases.second.state == "success", (releases.second.tasks,
                                                releases.second.output[-3000:])
    plan = second["plan_deploy_rec"]
    assert plan["operation"] == "update"
    assert plan["previous_endpoint_config_name"] == first["endpoint_config_name"]
    assert releases.second.after["config"] == plan["endpoint_config_name"]
    model = moto.sagemaker.describe_model(ModelName=plan["model_name"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == plan["artifact_uri"]
    assert model["PrimaryContainer"]["Image"] == "123.dkr.ecr.us-east-1.amazonaws.com/tfs:1"
    assert model["ExecutionRoleArn"] == ROLE
    # the tarball SageMaker's TensorFlow Serving container expects, with the contract code
    key = plan["artifact_uri"].removeprefix(f"s3://{BUCKET}/")
    data = moto.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert {"1/saved_model.pb", "code/inference.py", "code/skiff_model.json"} <= names
    assert data == releases.tarball.read_bytes()  # the run's own tarball, not packed again
    assert plan["bundle"]["tarball"] == plan["artifact_uri"]
    assert second["smoke_test_rec"]["smoke"]["model_version"] == "RecFlow/2"
    record = releases.second.after["champion"]
    assert record["pathspec"] == "RecFlow/2" and record["previous"] == "RecFlow/1"
    assert record["endpoint_config_name"] == plan["endpoint_config_name"]
    assert record["previous_endpoint_config_name"] == first["endpoint_config_name"]
    assert record["backend"] == "sagemaker" and record["artifact_uri"].startswith("s3://")
    assert record["bundle"] == {"pathspec": "RecFlow/2", "folder": str(moto.bundles[2]),
                                "tarball": record["artifact_uri"]}
    # no run after it promoted anything: the champion and two history records, and beside
    # them every gate decision, promoted or not (the Skiff page lists them)
    listing = moto.s3.list_objects_v2(Bucket=BUCKET, Prefix="skiff/registry/")["Contents"]
    keys = [o["Key"] for o in listing if "/decisions/" not in o["Key"]]
    assert "skiff/registry/rec/champion.json" in keys and len(keys) == 3
    decisions = [o["Key"] for o in listing if "/decisions/" in o["Key"]]
    assert any(k.endswith("-RecFlow-2.json") for k in decisions), decisions


def test_a_rejected_challenger_ends_green_and_touches_nothing(releases: SimpleNamespace) -> None:
    rejected = releases.rejected
    assert rejected.state == "success", rejected.tasks  # a lost comparison is a decision
    decision = rejected.xcom["gate_rec"]
    assert decision["promote"] is False and "Keep champion" in decision["reason"]
    assert decision["champion_pathspec"] == "RecFlow/2"
    assert decision["against"] == "champion-recorded"
    assert {rejected.tasks[t] for t in (*DEPLOY_TASKS, "smoke_test_rec", "promote_rec",
                                        "rollback_rec")} == {"skipped"}
    assert rejected.after == releases.second.after


def test_a_failed_smoke_test_rolls_the_endpoint_back_to_the_champion(
        releases: SimpleNamespace) -> None:
    """RecFlow/4 is deployed and serving when its smoke test fails: the DAG's rollback task
    points the endpoint back at the champion's config."""
    run, champion_config = releases.failed_smoke, releases.second.after["config"]
    assert run.state == "failed", run.tasks
    assert {run.tasks[t] for t in DEPLOY_TASKS} == {"success"}
    deployed = run.xcom["deploy_endpoint_rec"]["Endpoint"]  # the provider operator's answer
    assert deployed["EndpointConfigName"] == run.xcom["plan_deploy_rec"]["endpoint_config_name"]
    assert deployed["EndpointConfigName"] != champion_config
    assert run.tasks["smoke_test_rec"] == "failed" and "unexpected body" in run.output
    assert run.tasks["promote_rec"] == "upstream_failed"
    assert run.tasks["rollback_rec"] == "success"
    assert run.xcom["rollback_rec"]["changed"] is True
    assert run.xcom["rollback_rec"]["endpoint_config_name"] == champion_config
    assert run.after["config"] == champion_config and run.after["status"] == "InService"
    assert run.after["failure"] is None
    assert run.after["champion"] == releases.second.after["champion"]


def test_a_failed_update_leaves_the_champion_serving(releases: SimpleNamespace) -> None:
    """RecFlow/6's container fails its health check: SageMaker keeps the endpoint on the
    champion's config, ``InService``, with the reason, so the provider's wait succeeds; the
    smoke test notices the update did not take, and the rollback finds nothing to undo."""
    run, champion_config = releases.failed_update, releases.second.after["config"]
    assert run.state == "failed", run.tasks
    assert {run.tasks[t] for t in DEPLOY_TASKS} == {"success"}
    endpoint = run.xcom["deploy_endpoint_rec"]["Endpoint"]
    assert endpoint["EndpointConfigName"] == champion_config
    assert endpoint["FailureReason"] == HEALTH_CHECK_FAILED
    assert run.tasks["smoke_test_rec"] == "failed" and "the update did not take" in run.output
    assert run.tasks["rollback_rec"] == "success"
    assert run.xcom["rollback_rec"]["changed"] is False
    assert run.after["config"] == champion_config and run.after["status"] == "InService"
    assert run.after["failure"] == HEALTH_CHECK_FAILED  # the endpoint still says why
    assert run.after["champion"] == releases.second.after["champion"]


def test_a_batch_runs_tarball_is_copied_within_s3(moto: SimpleNamespace, tmp_path: Path) -> None:
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


def test_lambda_function_create_update_and_permission(moto: SimpleNamespace,
                                                      tmp_path: Path) -> None:
    from operators.lambda_deploy import LambdaFunctionDeployOperator

    iam = moto.boto3.client("iam", endpoint_url=moto.url, region_name=REGION)
    role = iam.create_role(RoleName="skiff-predict", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service":
                                                              "lambda.amazonaws.com"}}]}))
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
