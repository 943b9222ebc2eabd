"""Training on the S3 datastore end to end, against a moto server (real HTTP on 127.0.0.1).

The flows run on Metaflow's local runtime with ``SKIFF_TRAIN_DATASTORE=s3``: artifacts, logs,
cards and the model tarball go to the moto bucket through Metaflow's own S3 client, and the
champion registry is an ``s3://`` prefix there too. Airflow's ``aws_default`` connection
(``endpoint_url`` in its extra) is the only way to the bucket: no ``AWS_*`` variable is set,
so everything reaches S3 as a launch hands it (``MetaflowHook.run_env``) or as the hook's
Metaflow client reads a run back.

- a flow run (launched as the DAG's train task launches it) whose champion has no copy on
  this machine re-scores it from its S3 tarball, and leaves its artifacts, logs, card and
  bundle tarball in S3, read back by the hook as the gate and deploy read them; a deploy on a
  worker without the run's folder takes the tarball from S3 (a flow run's time: 45 s here,
  100 s on a busy machine);
- ``dag.test()`` of skiff_hourly's train and release stages (the data stages marked done, the
  marts are the fixture's), twice (slow): run 1 trains, is promoted and served by the local
  model server; run 2 runs where none of run 1's files are, fetches the champion from S3,
  beats it, and ``/predict`` answers it.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from environ import environ

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FLOWS = REPO / "include" / "flows"
REGION, BUCKET = "us-east-1", "skiff-s3flow"
KEY_ID, SECRET = "AKIDS3FLOWTEST", "dummy-s3flow-secret"
INTERVAL_END = "2026-11-01T00:00:00+00:00"  # the end of the marts' history (conftest)
_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[SimpleNamespace]:
    """A moto server on 127.0.0.1 with the bucket, and a client of it for the test's own looks."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET)
    s3.create_bucket(Bucket=BUCKET)
    yield SimpleNamespace(url=url, s3=s3)
    server.stop()


@pytest.fixture
def on_s3(moto_s3: SimpleNamespace, marts_warehouse: Path, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Iterator[SimpleNamespace]:
    """This process configured for the S3 datastore and a registry of the test's own
    (``registry`` is its key prefix), the AWS variables unset; the variables the hook's
    Metaflow client sets in the process (the connection's) are removed afterwards."""
    registry = f"registry-{request.node.name}"
    env = {"SKIFF_TRAIN_DATASTORE": "s3",
           "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
           "SKIFF_REGISTRY_URI": f"s3://{BUCKET}/{registry}",
           "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
               "conn_type": "aws", "login": KEY_ID, "password": SECRET,
               "extra": {"region_name": REGION, "endpoint_url": moto_s3.url}}),
           "SKIFF_DUCKDB_PATH": str(marts_warehouse)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    yield SimpleNamespace(**vars(moto_s3), registry=registry)
    for name in _AWS_VARS:
        os.environ.pop(name, None)


def keys(s3, prefix: str) -> list[str]:
    """Every key under ``prefix`` in the bucket."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def tarball_meta(s3, uri: str) -> dict:
    """The bundle metadata inside the ``model.tar.gz`` at ``uri`` (read from S3)."""
    import io

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "1/saved_model.pb" in tar.getnames()  # a SavedModel, as SageMaker serves it
        return json.load(tar.extractfile("code/skiff_model.json"))


def test_a_run_on_the_s3_datastore_scores_the_champion_fetched_from_s3(
        on_s3: SimpleNamespace, tmp_path: Path) -> None:
    from hooks.metaflow_runner import MetaflowHook
    from serving_models import intent_bundle
    from skiff.serve import (BundleRef, ChampionRecord, ModelRegistry, open_storage,
                             pack_bundle)

    s3 = on_s3.s3
    # the champion trained elsewhere: its folder is on no disk here, its tarball only in S3
    champion_key = "elsewhere/IntentFlow/0/model.tar.gz"
    packed = pack_bundle(intent_bundle(tmp_path / "champion", "IntentFlow/0"), tmp_path / "c.tgz")
    s3.upload_file(str(packed), BUCKET, champion_key)
    bundle = BundleRef("IntentFlow/0", folder="/gone/IntentFlow/0/bundle",
                       tarball=f"s3://{BUCKET}/{champion_key}")
    ModelRegistry(open_storage(f"s3://{BUCKET}/{on_s3.registry}", s3)).promote(ChampionRecord(
        model="intent", pathspec="IntentFlow/0", metrics={"roc_auc": 0.5}, bundle=bundle,
        artifact_uri=bundle.tarball, endpoint_name="skiff-intent", endpoint_config_name="c0"))

    hook = MetaflowHook()  # as MetaflowRunOperator launches and reads the run back
    launch = hook.launch(FLOWS / "train_intent.py",
                         {"epochs": 1, "interval_end": INTERVAL_END, "max_sessions": 2500})
    assert launch.argv()[3:7] == ["--package-suffixes", ".py,.toml", "--datastore", "s3"]
    assert "AWS_ACCESS_KEY_ID" not in os.environ  # only the connection knows the way
    pathspec = hook.run(launch, log=lambda _: None)
    flow, run_id = pathspec.split("/")

    # the champion branch fetched the champion from S3 and re-scored it on this run's data
    metrics = hook.metrics(pathspec)  # the client reads the run's artifacts from S3
    assert metrics["champion"]["pathspec"] == "IntentFlow/0"
    assert 0.0 <= metrics["champion"]["roc_auc"] <= 1.0
    run = hook.client.Run(pathspec)
    assert run["end"].task.data.champion_pathspec == "IntentFlow/0"
    champion_log = run["champion"].task.stdout  # the step's log, kept in S3
    assert f"champion IntentFlow/0 read from s3://{BUCKET}/{champion_key}" in champion_log

    # artifacts, logs and the card are in S3, not in the local datastore (metadata only there)
    stored = keys(s3, "metaflow/")
    assert any(k.startswith(f"metaflow/{flow}/{run_id}/evaluate/") and k.endswith("data.json")
               for k in stored)
    assert any(k.startswith(f"metaflow/{flow}/data/") for k in stored)  # the artifacts' blobs
    assert any(k.startswith(f"metaflow/{flow}/{run_id}/champion/") and "stdout" in k
               for k in stored)
    assert any(k.startswith(f"metaflow/mf.cards/{flow}/runs/{run_id}/") for k in stored)
    local = hook.config.metaflow_root / ".metaflow" / flow / run_id
    assert local.is_dir() and not list(local.rglob("*.data.json"))

    # the bundle the gate and the deploy are handed: its tarball in S3, named by the run
    ref = hook.bundle(pathspec)
    assert ref.pathspec == pathspec
    assert ref.tarball == f"s3://{BUCKET}/metaflow/data/{flow}/{run_id}/model.tar.gz"
    meta = tarball_meta(s3, ref.tarball)
    assert (meta["kind"], meta["version"]) == ("intent", pathspec)

    # the deploy on a worker without the run's folder: the bundle comes from its S3 tarball
    # (no model server answers on the free port: the deploy loads the model here once)
    from operators.deploy import LocalModelDeployOperator
    from skiff.ops.local_airflow import free_port
    from skiff.train import models_dir

    shutil.move(ref.folder, tmp_path / "run-folder")
    with environ(SKIFF_HOME=str(tmp_path / "worker"), SKIFF_SERVE_PORT=str(free_port()),
                 SKIFF_SERVE_TOKEN="d" * 32):
        deployment = LocalModelDeployOperator(
            task_id="deploy_intent", model="intent",
            candidate={"pathspec": pathspec, "metrics": metrics, "bundle": ref.to_dict()},
        ).execute({})
        downloaded = models_dir(flow, run_id) / "deploy" / "model.tar.gz"
        assert downloaded.is_file()  # fetched through the aws_default connection
    assert deployment["model_version"] == pathspec
    assert deployment["bundle"]["tarball"] == ref.tarball
    assert Path(deployment["artifact_uri"]).is_relative_to(tmp_path / "worker" / "serving")


# dag.test() of skiff_hourly in a subprocess (it needs the DAGs folder configured), its data
# stages marked done (the marts are the fixture's), and the rec model's tasks too
_DAG_TEST = """
import json, sys
from datetime import datetime
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["skiff_hourly"]
run = dag.test(logical_date=datetime.fromisoformat(sys.argv[2]), mark_success_pattern=sys.argv[3])
tis = {ti.task_id: ti for ti in run.get_task_instances()}
out = {"state": run.state, "tasks": {t: ti.state for t, ti in tis.items()}}
for t in ("train_intent", "gate_intent", "deploy_intent", "smoke_test_intent", "promote_intent"):
    out[t] = tis[t].xcom_pull(task_ids=t)
print("RESULT " + json.dumps(out, default=str))
"""
#: skiff_hourly's tasks that do not run: ingest, validation, dbt, and the rec model's
_DONE = (r"ingest_events|validate_.*|prepare\..*|train_rec"
         r"|(gate|deploy|smoke_test|promote|rollback)_rec")


def _dag_test(env: dict[str, str], logical_date: str, epochs: int) -> dict:
    """One ``dag.test()`` of skiff_hourly's train + release of the intent model."""
    import subprocess
    import sys

    env = {**env, "METAFLOW_RUN_EPOCHS": str(epochs)}  # the flow's --epochs (Metaflow's variable)
    proc = subprocess.run([sys.executable, "-c", _DAG_TEST, str(REPO / "dags"), logical_date,
                           _DONE], env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(lines[-1][len("RESULT "):])


def _predict(api: str) -> str:
    """The model version ``GET /predict`` answers for an intent session."""
    import urllib.request

    with urllib.request.urlopen(f"{api}/predict?session=view,detail,add&model=intent",
                                timeout=30) as answer:
        return json.loads(answer.read())["model_version"]


@pytest.mark.slow  # two dag.test() runs, each a flow run and a deploy: 2 to 5 min here
def test_train_and_release_twice_on_the_s3_datastore_and_registry(
        on_s3: SimpleNamespace, airflow_db: Path, tmp_path: Path) -> None:
    from hooks.metaflow_runner import MetaflowHook
    from skiff.config import ServingConfig
    from skiff.serve import EndpointStore, ModelRegistry, open_storage
    from skiff_api.local_stack import LocalStack

    s3 = on_s3.s3
    # a home of its own (the model server's endpoints), but the local metadata where this
    # process's Metaflow client reads it (a root is read once, at import)
    home, token = tmp_path / "home", "s" * 32
    serving = {"SKIFF_HOME": str(home), "SKIFF_SERVE_TOKEN": token,
               "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(MetaflowHook().config.metaflow_root)}
    with environ(**serving):  # the model server on loopback, in this process
        stack = LocalStack.build(ServingConfig.from_env(), store=EndpointStore(home / "serving"),
                                 port=0, api_port=0, control_port=0).start()
    env = {**os.environ, **serving, "SKIFF_TRAIN_MAX_SESSIONS": "2500",
           "SKIFF_SERVE_PORT": str(stack.port("models")),
           "SKIFF_SERVE_CONTROL_PORT": str(stack.port("control"))}
    registry = ModelRegistry(open_storage(f"s3://{BUCKET}/{on_s3.registry}", s3))
    try:
        # run 1: the first model; it beats the baselines, is deployed and promoted. Epochs:
        # on these marts 4 give a ROC-AUC of about 0.65 (logistic regression 0.57), 8 about
        # 0.72, so each run wins its gate by a wide margin (TensorFlow on CPU varies ~0.02)
        first = _dag_test(env, "2026-11-01T00:00:00+00:00", epochs=4)
        assert first["state"] == "success", first["tasks"]
        assert first["tasks"]["train_intent"] == "success"
        assert first["tasks"]["rollback_intent"] == "skipped"  # nothing failed
        one = first["train_intent"]["pathspec"]
        tarball = f"s3://{BUCKET}/metaflow/data/{one}/model.tar.gz"
        assert first["train_intent"]["bundle"]["tarball"] == tarball  # read from the run, on S3
        assert tarball_meta(s3, tarball)["version"] == one
        assert any(k.endswith("data.json") for k in keys(s3, f"metaflow/{one}/end/"))
        assert first["gate_intent"]["promote"] and first["gate_intent"]["against"] == "baselines"
        assert first["deploy_intent"]["bundle"]["tarball"] == tarball
        assert first["smoke_test_intent"]["smoke"]["model_version"] == one
        assert _predict(stack.urls["api"]) == one
        champion = registry.champion("intent")  # the registry is in S3
        assert champion.pathspec == one and champion.bundle.tarball == tarball
        assert keys(s3, f"{on_s3.registry}/intent/champion.json")

        # run 2 runs where none of run 1's files are (a Batch container, another worker): the
        # served copy the champion record names is moved away meanwhile, so the champion
        # branch can only fetch it from S3
        served = Path(champion.bundle.folder)
        assert served.is_dir()
        shutil.move(served, tmp_path / "served-copy")
        try:
            second = _dag_test(env, "2026-11-01T01:00:00+00:00", epochs=8)
        finally:
            shutil.move(tmp_path / "served-copy", served)
        assert second["state"] == "success", second["tasks"]
        two = second["train_intent"]["pathspec"]
        assert two != one
        metrics = second["train_intent"]["metrics"]
        assert metrics["champion"]["pathspec"] == one  # re-scored on run 2's held-out sessions
        run = MetaflowHook().client.Run(two)
        assert f"champion {one} read from {tarball}" in run["champion"].task.stdout
        gate = second["gate_intent"]
        assert gate["promote"] and gate["against"] == "champion", gate["reason"]
        assert second["deploy_intent"]["model_version"] == two
        assert _predict(stack.urls["api"]) == two  # /predict answers the new version
        champion = registry.champion("intent")
        assert (champion.pathspec, champion.previous) == (two, one)
        assert champion.bundle.tarball == f"s3://{BUCKET}/metaflow/data/{two}/model.tar.gz"
    finally:
        stack.close()
