"""store_model: the model as model.keras and a servable bundle, and where the bundle goes."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from skiff.serve import BundleRef, read_bundle_meta
from skiff.train import features, models, store_model


class FakeS3:
    """The one call publishing makes, as boto3's client makes it."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def upload_file(self, filename: str, bucket: str, key: str) -> None:
        self.objects[bucket, key] = Path(filename).read_bytes()


@pytest.fixture(scope="module")
def model() -> object:
    return models.build_intent_model(len(features.event_vocabulary()), embedding_dim=4, units=4)


def test_store_model_writes_the_bundle_and_its_tarball(model: object, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_HOME", str(tmp_path))
    keras_path, ref = store_model(model, "IntentFlow", "7", kind="intent", max_len=20,
                                  vocabulary=features.event_vocabulary(), extra={"data": "v1"})
    run = tmp_path / "models" / "IntentFlow" / "7"
    assert keras_path == run / "model.keras" and keras_path.is_file()
    assert ref == BundleRef("IntentFlow/7", str(run / "bundle"), str(run / "model.tar.gz"))
    meta = read_bundle_meta(ref.folder)
    assert meta["version"] == "IntentFlow/7" and meta["data"] == "v1"
    with tarfile.open(ref.tarball) as tar:
        assert "code/skiff_model.json" in tar.getnames()


def test_a_run_on_batch_publishes_its_tarball_to_s3(model: object, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_HOME", str(tmp_path))
    s3 = FakeS3()
    _, ref = store_model(model, "IntentFlow", "8", kind="intent", max_len=20,
                         vocabulary=features.event_vocabulary(),
                         publish_to="s3://mf/metaflow/data/", s3_client=s3)
    assert ref.tarball == "s3://mf/metaflow/data/IntentFlow/8/model.tar.gz"
    local = tmp_path / "models" / "IntentFlow" / "8" / "model.tar.gz"
    assert s3.objects["mf", "metaflow/data/IntentFlow/8/model.tar.gz"] == local.read_bytes()
