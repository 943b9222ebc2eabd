"""Training on the S3 datastore end to end, against a moto server (real HTTP on 127.0.0.1).

The flows run on Metaflow's local runtime with ``SKIFF_TRAIN_DATASTORE=s3``: artifacts, logs,
cards and the model tarball go to the moto bucket through Metaflow's own S3 client, and the
champion registry is an ``s3://`` prefix there too. Airflow's ``aws_default`` connection
(``endpoint_url`` in its extra) is the only way to the bucket: no ``AWS_*`` variable is set,
so everything reaches S3 as a launch hands it (``MetaflowHook.run_env``) or as the hook's
Metaflow client reads a run back.

- a flow run (launched as the DAG's train task launches it) whose champion has no copy on
  this machine re-scores it from its S3 tarball, and leaves its artifacts, card and bundle
  tarball in S3, read back by the hook as the gate and deploy read them (about 40 s);
- ``dag.test()`` of train + release, twice (slow): run 1 trains, promotes and deploys to the
  local model server; run 2 runs where none of run 1's files are, fetches the champion from
  S3, beats it and is served by ``/predict``.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

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


def s3_env(url: str, **extra: str) -> dict[str, str]:
    """The settings and connection of a Skiff on the S3 datastore and registry at ``url``."""
    return {
        "SKIFF_TRAIN_DATASTORE": "s3",
        "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
        "SKIFF_REGISTRY_URI": f"s3://{BUCKET}/registry",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": KEY_ID, "password": SECRET,
            "extra": {"region_name": REGION, "endpoint_url": url}}),
        **extra,
    }


@pytest.fixture
def on_s3(moto_s3: SimpleNamespace, marts_warehouse: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """This process configured for the S3 datastore, the AWS variables unset; the variables the
    hook's Metaflow client sets in the process (the connection's) are removed afterwards."""
    for name, value in s3_env(moto_s3.url, SKIFF_DUCKDB_PATH=str(marts_warehouse)).items():
        monkeypatch.setenv(name, value)
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    yield moto_s3
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
    ModelRegistry(open_storage(f"s3://{BUCKET}/registry", s3)).promote(ChampionRecord(
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
