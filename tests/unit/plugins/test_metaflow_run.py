"""MetaflowHook / MetaflowRunOperator / MetaflowRunTrigger against real local Metaflow runs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from hooks.metaflow_runner import MetaflowHook, MetaflowRunFailed
from skiff.config import TrainingConfig
from skiff.train import flow_launch
from triggers.metaflow_run import MetaflowRunTrigger

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "flows" / "tiny_flow.py"
READS_WAREHOUSE = TINY.with_name("warehouse_flow.py")
BATCH = TrainingConfig(train_on="batch", s3_root="s3://bucket/mf", batch_queue="gpu-queue",
                       batch_job_role="arn:aws:iam::123456789012:role/skiff-batch",
                       batch_image="acme/train:1", batch_gpu=2, batch_memory=30000)


@pytest.fixture
def hook() -> MetaflowHook:
    # one datastore root per process: Metaflow reads it once, at import
    return MetaflowHook()


def test_local_launch_uses_the_local_datastore(tmp_path: Path) -> None:
    launch = flow_launch(TINY, {"alpha": "3", "skip": None, "since": "2026-01-01T00:00:00"},
                         TrainingConfig(metaflow_root=tmp_path), ["interval:x"])
    assert launch.run_args["alpha"] == 3  # templated text back to a number for the Runner API
    assert launch.env["METAFLOW_DEFAULT_DATASTORE"] == "local"
    assert launch.env["METAFLOW_DATASTORE_SYSROOT_LOCAL"] == str(tmp_path)
    assert launch.env["SKIFF_BATCH_GPU"] == "0"
    argv = launch.argv()
    assert argv[:3] == [sys.executable, str(TINY), "--no-pylint"]
    # None params fall back to the flow's defaults
    assert argv[3:] == ["--package-suffixes", ".py,.toml", "run", "--alpha", "3", "--since", "2026-01-01T00:00:00", "--tag", "interval:x"]


def test_batch_launch_command_and_environment() -> None:
    launch = flow_launch(TINY, {"alpha": 3}, BATCH)
    argv = launch.argv(Path("/tmp/id"))
    assert argv[3:] == ["--package-suffixes", ".py,.toml", "--datastore", "s3", "--with",
                        "batch:image=acme/train:1,queue=gpu-queue,iam_role=arn:aws:iam::123456789012:role/skiff-batch",
                        "run", "--alpha", "3", "--run-id-file", "/tmp/id"]
    env = launch.env
    assert env["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert env["METAFLOW_DATASTORE_SYSROOT_S3"] == "s3://bucket/mf"
    assert env["METAFLOW_BATCH_JOB_QUEUE"] == "gpu-queue"
    assert env["METAFLOW_BATCH_CONTAINER_IMAGE"] == "acme/train:1"
    assert env["METAFLOW_ECS_S3_ACCESS_IAM_ROLE"] == "arn:aws:iam::123456789012:role/skiff-batch"
    assert (env["SKIFF_BATCH_GPU"], env["SKIFF_BATCH_MEMORY"]) == ("2", "30000")  # read by @resources


def test_local_runtime_on_the_s3_datastore() -> None:
    """SKIFF_TRAIN_DATASTORE=s3 without Batch: the local runtime, Metaflow's S3 datastore."""
    config = TrainingConfig(datastore="s3", s3_root="s3://bucket/mf")
    launch = flow_launch(TINY, {"alpha": 3}, config)
    assert launch.argv()[3:] == ["--package-suffixes", ".py,.toml", "--datastore", "s3", "run",
                                 "--alpha", "3"]
    assert launch.env["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert launch.env["METAFLOW_DATASTORE_SYSROOT_S3"] == "s3://bucket/mf"
    assert launch.env["SKIFF_BATCH_GPU"] == "0"
    assert not [name for name in launch.env if name.startswith("METAFLOW_BATCH_")]


@pytest.mark.parametrize(
    ("env", "datastore"),
    [
        pytest.param({}, "local", id="default-local"),
        pytest.param({"SKIFF_TRAIN_ON": "batch"}, "s3", id="batch-implies-s3"),
        pytest.param({"SKIFF_TRAIN_DATASTORE": "S3"}, "s3", id="s3-on-the-local-runtime"),
    ],
)
def test_the_datastore_follows_the_target_unless_set(env: dict[str, str], datastore: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"METAFLOW_DATASTORE_SYSROOT_S3": "s3://b/m", "SKIFF_BATCH_QUEUE": "q",
                        "SKIFF_BATCH_JOB_ROLE_ARN": "arn:aws:iam::1:role/r", **env}.items():
        monkeypatch.setenv(name, value)
    for name in {"SKIFF_TRAIN_ON", "SKIFF_TRAIN_DATASTORE"} - set(env):
        monkeypatch.delenv(name, raising=False)
    assert TrainingConfig.from_env().datastore == datastore


def test_runner_api_builds_the_same_command_as_argv() -> None:
    from metaflow import Runner

    launch = flow_launch(TINY, {"alpha": 3}, BATCH, ["t1"])
    with Runner(str(TINY), show_output=False, env=launch.env, **launch.top_level) as runner:
        command = runner.api(**launch.top_level).run(**launch.run_args)
    assert command == launch.argv()[1:]  # the detached launch runs exactly what the Runner would


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        pytest.param("train_on", "k8s", "SKIFF_TRAIN_ON", id="unknown-target"),
        pytest.param("s3_root", "", "METAFLOW_DATASTORE_SYSROOT_S3", id="batch-without-s3"),
        pytest.param("s3_root", "bucket/mf", "must start with s3://", id="not-an-s3-url"),
        pytest.param("batch_job_role", "", "SKIFF_BATCH_JOB_ROLE_ARN", id="batch-without-job-role"),
        pytest.param("datastore", "local", "SKIFF_TRAIN_ON=batch needs SKIFF_TRAIN_DATASTORE=s3",
                     id="batch-on-the-local-datastore"),
        pytest.param("datastore", "gcs", "SKIFF_TRAIN_DATASTORE", id="unknown-datastore"),
    ],
)
def test_bad_training_config(var: str, value: str, match: str) -> None:
    kwargs = {"train_on": "batch", "s3_root": "s3://b/m", "batch_queue": "q",
              "batch_job_role": "arn:aws:iam::1:role/r", var: value}
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**kwargs)


@pytest.mark.parametrize(
    ("s3_root", "match"),
    [
        pytest.param("", "SKIFF_TRAIN_DATASTORE=s3 needs METAFLOW_DATASTORE_SYSROOT_S3",
                     id="s3-without-root"),
        pytest.param("bucket/mf", "must start with s3://", id="root-not-an-s3-url"),
    ],
)
def test_the_s3_datastore_needs_its_root(s3_root: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainingConfig(datastore="s3", s3_root=s3_root)


def test_run_streams_output_and_returns_metrics(hook: MetaflowHook) -> None:
    lines: list[str] = []
    pathspec = hook.run(hook.launch(TINY, {"alpha": 2.5}), log=lines.append)
    assert pathspec.startswith("TinyFlow/")
    assert any("tiny flow says hello" in line for line in lines)
    assert hook.describe(pathspec)["status"] == "successful"
    assert hook.metrics(pathspec) == {"alpha": 2.5, "double": 5.0}
    assert hook.bundle(pathspec) is None  # a flow storing no model


def test_failed_run_raises_with_the_flow_error(hook: MetaflowHook) -> None:
    with pytest.raises(MetaflowRunFailed, match="planted failure"):
        hook.run(hook.launch(TINY, {"fail": True}), log=lambda _: None)


def test_trigger_serializes_its_arguments() -> None:
    trigger = MetaflowRunTrigger("TinyFlow/1", {"A": "b"}, poll_interval=0.5, timeout_s=9,
                                 flow_file=str(TINY), launcher_pid=42, launcher_host="worker-1")
    path, kwargs = trigger.serialize()
    assert path == "triggers.metaflow_run.MetaflowRunTrigger"
    assert MetaflowRunTrigger(**kwargs).serialize() == (path, kwargs)


async def _first_event(trigger: MetaflowRunTrigger):
    async for event in trigger.run():
        return event.payload


@pytest.mark.parametrize(("fail", "status", "message"), [
    pytest.param(False, "success", "successful", id="success"),
    pytest.param(True, "failed", "planted failure", id="failure"),
])
def test_detached_run_outlives_its_launcher_and_the_trigger_sees_it_end(
    hook: MetaflowHook, fail: bool, status: str, message: str
) -> None:
    launch = hook.launch(TINY, {"fail": fail, "alpha": 4})
    pathspec = hook.start(launch)  # returns as soon as the run has an id
    trigger = MetaflowRunTrigger(pathspec, launch.env, poll_interval=0.5, timeout_s=120)
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == status, event
    assert message in event["message"]


def test_trigger_times_out(hook: MetaflowHook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MetaflowHook, "describe", lambda self, p: {"status": "running", "message": "", "pathspec": p})
    trigger = MetaflowRunTrigger("TinyFlow/1", hook.env, poll_interval=0.01, timeout_s=0.05)
    assert asyncio.run(_first_event(trigger))["status"] == "timeout"


@pytest.mark.parametrize("detached", [pytest.param(False, id="run"), pytest.param(True, id="start")])
def test_a_run_gets_the_snowflake_connection_but_the_launch_does_not(
        detached: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow reads plain connector arguments; the launch (logged, stored with the trigger)
    holds no credentials."""
    import json

    monkeypatch.setenv("SKIFF_WAREHOUSE", "snowflake")
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps({
        "conn_type": "snowflake", "login": "skiff", "password": "not-a-secret",
        "extra": {"account": "skiff-test", "database": "SKIFF"}}))
    monkeypatch.delenv("SKIFF_SNOWFLAKE_CONNECT", raising=False)
    hook = MetaflowHook()
    launch = hook.launch(READS_WAREHOUSE)
    assert "not-a-secret" not in json.dumps(launch.env) + " ".join(launch.argv())
    if detached:
        pathspec = hook.start(launch)
        event = asyncio.run(_first_event(MetaflowRunTrigger(pathspec, launch.env, poll_interval=0.5,
                                                             timeout_s=120)))
        assert event["status"] == "success", event
    else:
        pathspec = hook.run(launch, log=lambda _: None)
    data = hook.client.Run(pathspec).data
    assert {"account", "database", "password", "user"} <= set(data.connect_arguments)
    assert "SKIFF_SNOWFLAKE_CONNECT" in data.handed and "SKIFF_WAREHOUSE" in data.handed
    # the step's @environment is recorded by name only, never with the values
    assert "SKIFF_SNOWFLAKE_CONNECT" in data.recorded_vars and "not-a-secret" not in data.recorded_vars
    graph = hook.client.Run(pathspec)["start"].task["_graph_info"].data
    assert "not-a-secret" not in json.dumps(graph)


def test_the_secrets_a_run_gets_are_masked_in_task_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's secrets masker knows every credential :attr:`MetaflowHook.run_env` resolves."""
    import json

    from airflow.sdk.log import mask_secret  # noqa: F401  (the masker the hook registers with)
    from airflow.sdk._shared.secrets_masker import redact  # the masker task logs pass through

    monkeypatch.setenv("SKIFF_WAREHOUSE", "snowflake")
    monkeypatch.setenv("SKIFF_REGISTRY_URI", "s3://bucket/registry")
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DEFAULT", json.dumps({
        "conn_type": "snowflake", "login": "skiff", "password": "dummy-snow-pw",
        "extra": {"account": "skiff-test", "database": "SKIFF"}}))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "AKIDUMMY", "password": "dummy-aws-secret",
        "extra": {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:1"}}))
    monkeypatch.setenv("AIRFLOW_CONN_WANDB_DEFAULT", json.dumps({"conn_type": "generic",
                                                                 "password": "dummy-wandb-key"}))
    env = MetaflowHook().run_env
    assert env["AWS_SECRET_ACCESS_KEY"] == "dummy-aws-secret" and env["WANDB_API_KEY"] == "dummy-wandb-key"
    assert (env["AWS_DEFAULT_REGION"], env["AWS_ENDPOINT_URL"]) == ("eu-west-1", "http://127.0.0.1:1")
    assert set(env["SKIFF_RUN_ENV"].split(",")) == set(env) - {"SKIFF_RUN_ENV"}
    line = f"run env: {env}"
    for secret in ("dummy-snow-pw", "dummy-aws-secret", "dummy-wandb-key"):
        assert secret in line and secret not in str(redact(line))


def _gone(pid: int, within_s: float) -> bool:
    """Whether process ``pid`` ended (a zombie of this test process counts) within ``within_s``."""
    import time

    import psutil

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


def test_a_deferred_run_stopped_by_hand_is_killed_by_its_trigger(hook: MetaflowHook) -> None:
    import socket

    launch = hook.launch(TINY, {"sleep": 120})
    pathspec = hook.start(launch)
    trigger = MetaflowRunTrigger(pathspec, launch.env, poll_interval=0.5, timeout_s=60,
                                 flow_file=str(TINY), launcher_pid=hook.pid,
                                 launcher_host=socket.gethostname())
    asyncio.run(trigger.on_kill())
    assert _gone(hook.pid, 20), "the launcher still runs"
    assert hook.describe(pathspec)["status"] != "successful"


def test_a_blocking_run_stops_with_its_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """on_kill (Airflow calls it when a running task is stopped) ends the flow's processes,
    and the task fails at once instead of waiting for the flow."""
    import threading
    import time

    from airflow.exceptions import AirflowException

    from operators.metaflow_run import MetaflowRunOperator

    op = MetaflowRunOperator(task_id="train", flow_file=str(TINY), flow_params={"sleep": 120},
                             deferrable=False)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            op.execute({})
        except BaseException as exc:  # noqa: BLE001  (the thread reports what ended it)
            failure.append(exc)

    worker = threading.Thread(target=run)
    started = time.monotonic()
    worker.start()
    while op.hook.pid is None and time.monotonic() - started < 60:
        time.sleep(0.2)
    assert op.hook.pid is not None, "the run never started"
    op.on_kill()
    worker.join(timeout=60)
    assert not worker.is_alive() and time.monotonic() - started < 90
    assert failure and isinstance(failure[0], AirflowException), failure


def test_a_batch_launch_on_duckdb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.exceptions import AirflowException

    monkeypatch.setenv("SKIFF_WAREHOUSE", "duckdb")
    with pytest.raises(AirflowException, match="SKIFF_TRAIN_ON=batch needs SKIFF_WAREHOUSE=snowflake"):
        MetaflowHook(config=BATCH).launch(TINY)


def test_on_the_s3_datastore_the_run_and_the_client_get_the_aws_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A local run on the S3 datastore gets the AWS connection (a local registry needs none),
    and the hook's Metaflow client, which reads the run back from S3 in this process, too."""
    import json
    import os

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, "")  # recorded, so that the undo removes what the client sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("SKIFF_REGISTRY_URI", "/tmp/registry")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "AKIDUMMY", "password": "dummy-aws-secret",
        "extra": {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:1"}}))
    local = MetaflowHook(config=TrainingConfig())
    assert local.aws_env() == {} and "AWS_ACCESS_KEY_ID" not in local.run_env

    hook = MetaflowHook(config=TrainingConfig(datastore="s3", s3_root="s3://bucket/mf"))
    env = hook.run_env
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_ENDPOINT_URL"]) == ("AKIDUMMY", "http://127.0.0.1:1")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env["SKIFF_RUN_ENV"].split(","))
    assert hook.client.Run  # the client, imported
    assert {name: os.environ[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                 "AWS_ENDPOINT_URL")} == {
        "AWS_ACCESS_KEY_ID": "AKIDUMMY", "AWS_SECRET_ACCESS_KEY": "dummy-aws-secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
