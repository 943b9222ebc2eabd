"""The AWS Batch job a Batch launch submits, read back from a moto server (real HTTP).

The launch is the one the DAG's train task makes (``MetaflowHook.start`` with
``SKIFF_TRAIN_ON=batch``): Metaflow packs the code, uploads it to the S3 datastore, registers a
job definition and submits the step's job to the queue, all against moto. moto cannot run the
container (no Docker here), so the job fails at once; what is checked is what Metaflow sent:
image, queue, GPU and memory, the job role, the environment a step gets, the command, and that
the Snowflake password appears only as the value of the variable that carries it (the AWS
keys, which the launcher used, not at all). Then the run is stopped as
a stopped task stops it (``MetaflowHook.kill``: the launcher, then ``batch kill``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

FLOW = Path(__file__).resolve().parents[1] / "fixtures" / "flows" / "batch_flow.py"
REGION = "us-east-1"
BUCKET = "skiff-metaflow"
QUEUE = "skiff-gpu"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/skiff-train:1"
JOB_ROLE = "arn:aws:iam::123456789012:role/skiff-batch-job"
PASSWORD = "dummy-snowflake-pw-7f3a"
AWS_SECRET = "dummy-aws-secret-91c2"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    import boto3
    import httpx
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's request recorder keeps the requests as sent (its file is relative to the cwd)
    mp = pytest.MonkeyPatch()
    mp.chdir(tmp_path_factory.mktemp("moto-recording"))
    httpx.post(f"{url}/moto-api/recorder/start-recording").raise_for_status()
    clients = {name: boto3.client(name, endpoint_url=url, region_name=REGION,
                                  aws_access_key_id="AKIDSKIFFTEST", aws_secret_access_key=AWS_SECRET)
               for name in ("s3", "batch", "iam", "ec2")}
    clients["s3"].create_bucket(Bucket=BUCKET)
    role = clients["iam"].create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
    profile = clients["iam"].create_instance_profile(InstanceProfileName="batch-instance")
    vpc = clients["ec2"].create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = clients["ec2"].create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = clients["ec2"].create_security_group(GroupName="batch", Description="batch",
                                                 VpcId=vpc)["GroupId"]
    # a managed EC2 environment of GPU instances, as a real GPU queue has (Metaflow reads its type)
    env = clients["batch"].create_compute_environment(
        computeEnvironmentName="skiff-gpu", type="MANAGED", state="ENABLED",
        serviceRole=role["Role"]["Arn"],
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 8, "desiredvCpus": 0,
                          "instanceTypes": ["g4dn.xlarge"], "subnets": [subnet],
                          "securityGroupIds": [group],
                          "instanceRole": profile["InstanceProfile"]["Arn"]})
    clients["batch"].create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1,
                                      computeEnvironmentOrder=[{
                                          "order": 1,
                                          "computeEnvironment": env["computeEnvironmentArn"]}])
    yield SimpleNamespace(url=url, **clients)
    # the recorder is moto's, shared by the process: stop it before later moto tests run
    httpx.post(f"{url}/moto-api/recorder/stop-recording").raise_for_status()
    server.stop()
    mp.undo()


def _requests(url: str, action: str) -> list[dict]:
    """The bodies of the recorded Batch requests of ``action`` (e.g. ``submitjob``)."""
    import base64

    import httpx

    lines = httpx.get(f"{url}/moto-api/recorder/download-recording").text.splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [json.loads(base64.b64decode(e["body"]) if e["body_encoded"] else e["body"])
            for e in entries if e["url"].lower().rstrip("/").endswith(f"/v1/{action}")]


def test_the_batch_job_metaflow_submits(aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from hooks.metaflow_runner import MetaflowHook

    for name, value in {
        "SKIFF_TRAIN_ON": "batch", "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
        "SKIFF_BATCH_QUEUE": QUEUE, "SKIFF_BATCH_IMAGE": IMAGE, "SKIFF_BATCH_GPU": "1",
        "SKIFF_BATCH_MEMORY": "30000", "SKIFF_WAREHOUSE": "snowflake",
        "SKIFF_BATCH_JOB_ROLE_ARN": JOB_ROLE,
        "AIRFLOW_CONN_SNOWFLAKE_DEFAULT": json.dumps({
            "conn_type": "snowflake", "login": "skiff", "password": PASSWORD,
            "extra": {"account": "skiff-test", "database": "SKIFF"}}),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "AKIDSKIFFTEST", "password": AWS_SECRET,
            "extra": {"region_name": REGION, "endpoint_url": aws.url}}),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "SKIFF_SNOWFLAKE_CONNECT"):
        monkeypatch.delenv(name, raising=False)  # the launch must get them from the connections

    hook = MetaflowHook()
    launch = hook.launch(FLOW)
    pathspec = hook.start(launch, wait_s=180)
    try:
        job = _first_job(aws.batch, hook.pid, within_s=120)
    finally:  # as a stopped task does: the launcher, then `batch kill` against moto (must exit 0)
        hook.kill(FLOW, pathspec, hook.pid, own_session=True, grace_s=2)
    assert _ended(hook.pid)

    submitted = _requests(aws.url, "submitjob")
    assert len(submitted) == 1, submitted  # one job: the start step
    request = submitted[0]
    container = request["containerOverrides"]
    definition = aws.batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])
    definition = definition["jobDefinitions"][0]
    assert request["jobQueue"] == QUEUE and job["jobQueue"].endswith(f"job-queue/{QUEUE}")
    assert definition["containerProperties"]["image"] == IMAGE
    resources = {r["type"]: r["value"] for r in container["resourceRequirements"]}
    assert (resources["GPU"], resources["MEMORY"]) == ("1", "30000"), container

    env = {e["name"]: e["value"] for e in container["environment"]}
    handed = set(env["SKIFF_RUN_ENV"].split(","))
    assert {"SKIFF_SNOWFLAKE_CONNECT", "SKIFF_WAREHOUSE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
            "SKIFF_BATCH_QUEUE"} <= handed <= set(env)
    assert json.loads(env["SKIFF_SNOWFLAKE_CONNECT"])["password"] == PASSWORD
    assert env["SKIFF_WAREHOUSE"] == "snowflake"
    assert env["METAFLOW_SKIP_INSTALL_DEPENDENCIES"] == "1"  # the image has boto3 and requests
    # AWS: the job's role, not the connection's keys (those served the launcher, above)
    assert definition["containerProperties"]["jobRoleArn"] == JOB_ROLE
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert env["METAFLOW_CODE_URL"].startswith(f"s3://{BUCKET}/metaflow/BatchProbeFlow/")
    bucket, key = env["METAFLOW_CODE_URL"][len("s3://"):].split("/", 1)
    assert aws.s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0  # the code package

    command = " ".join(container["command"])
    assert "batch_flow.py" in command and " step start " in command
    assert f"--with 'batch:cpu=1,gpu=1,memory=30000,image={IMAGE},queue={QUEUE}" in command
    # the password lives only in its own variable: not in the command, the job definition, the
    # job's parameters or tags, nor in any other variable; the AWS secret nowhere in the job
    elsewhere = json.dumps([container["command"], definition, request.get("parameters"), request.get("tags"),
                            {k: v for k, v in env.items() if k != "SKIFF_SNOWFLAKE_CONNECT"}])
    assert PASSWORD not in elsewhere and AWS_SECRET not in elsewhere


def _ended(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _first_job(batch, launcher: int, within_s: float) -> dict:
    """The first job on the queue; fails early when the launcher ended without submitting."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        ended = _ended(launcher)
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            listed = batch.list_jobs(jobQueue=QUEUE, jobStatus=status)["jobSummaryList"]
            if listed:
                return batch.describe_jobs(jobs=[listed[0]["jobId"]])["jobs"][0]
        assert not ended, "the launch ended without submitting a job: see its log (MetaflowHook.start)"
        time.sleep(1)
    raise AssertionError(f"no job reached {QUEUE} within {within_s}s")
