"""Re-scoring the champion on a run's held-out sessions: the served bundle scores like the model."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from serving_models import rec_bundle
from skiff.config import ServingConfig
from skiff.serve import BundleRef, LoadedModel, pack_bundle, write_bundle
from skiff.serve.registry import ChampionRecord, LocalStorage, ModelRegistry, open_storage
from skiff.train import champion, features, intent, next_item

WINDOW = 4


def _intent_data(seed: int = 0, n: int = 120) -> intent.IntentData:
    rng = np.random.default_rng(seed)
    vocab = features.event_vocabulary()
    lengths = rng.integers(1, 30, n)
    prefixes = features.Ragged.from_lengths(rng.integers(2, len(vocab), lengths.sum()).astype(np.int32),
                                            lengths)
    labels = rng.integers(0, 2, n).astype(np.int8)
    examples = features.IntentExamples(prefixes, labels, np.arange(n), rng.choice([0, 2, 4], n))
    return intent.IntentData(vocab, examples.take(np.arange(0, n, 2)), examples.take(np.arange(1, n, 2)),
                             max_len=20)


def _rec_data(skus: list[str], seed: int = 0, n: int = 80) -> next_item.NextItemData:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1)
    table = pa.table({
        "session_start_at": [start + timedelta(minutes=i) for i in range(n)],
        "sku_sequence": [list(rng.choice(skus, rng.integers(2, 9))) for _ in range(n)],
    })
    return next_item.prepare(table, np.datetime64(start + timedelta(minutes=int(n * 0.7))),
                             window=WINDOW)


def test_the_served_intent_bundle_scores_as_the_keras_model(tmp_path: Path) -> None:
    """A run that re-scored its own model through its bundle gets its own metrics back."""
    from skiff.train import models

    data = _intent_data()
    model = models.build_intent_model(len(data.vocab), embedding_dim=4, units=4)
    bundle = write_bundle(model, tmp_path / "b", kind="intent", vocabulary=data.vocab,
                          version="IntentFlow/1", max_len=data.max_len)
    keras_scores = intent.score(data, *intent.model_scores(model, data))
    served = intent.score(data, *champion.intent_scores(LoadedModel.load(bundle), data))
    assert served["roc_auc"] == pytest.approx(keras_scores["roc_auc"], abs=1e-6)
    assert served["f1"] == pytest.approx(keras_scores["f1"], abs=1e-6)


def test_the_served_rec_bundle_ranks_as_the_keras_model(tmp_path: Path) -> None:
    from skiff.train import models

    data = _rec_data([f"sku{i}" for i in range(30)])
    model = models.build_next_item_model(len(data.vocab), embedding_dim=8, units=8,
                                         max_position=WINDOW)
    bundle = write_bundle(model, tmp_path / "b", kind="rec", vocabulary=data.vocab,
                          version="RecFlow/1", max_len=WINDOW, k=next_item.K)
    keras_top = next_item.model_top_k(model, data)
    served_top = champion.rec_top_k(LoadedModel.load(bundle), data, next_item.K)
    assert served_top.shape == keras_top.shape
    assert (served_top[:, :5] == keras_top[:, :5]).mean() > 0.99  # float ties may swap a pair
    assert next_item.score(served_top, data)["mrr@20"] == pytest.approx(
        next_item.score(keras_top, data)["mrr@20"], abs=1e-3)


def test_a_champion_with_another_vocabulary_is_translated(tmp_path: Path) -> None:
    """SKUs the champion never saw are its OOV; its SKUs the run lacks are never hits."""
    from skiff.train import models

    old_skus = [f"sku{i}" for i in range(0, 20)] + ["retired"]
    data = _rec_data([f"sku{i}" for i in range(10, 30)])
    vocab = features.Vocabulary((features.PAD_TOKEN, features.OOV_TOKEN, *old_skus))
    model = models.build_next_item_model(len(vocab), embedding_dim=8, units=8, max_position=WINDOW)
    bundle = write_bundle(model, tmp_path / "old", kind="rec", vocabulary=vocab,
                          version="RecFlow/0", max_len=WINDOW, k=next_item.K)
    top = champion.rec_top_k(LoadedModel.load(bundle), data, next_item.K)
    assert top.shape == (len(data.eval_examples), next_item.K)
    known = {data.vocab.index(s) for s in old_skus if s in data.vocab}
    assert set(np.unique(top)) <= known | {-1}
    assert (top == -1).any()  # sku0..9 and "retired" are not in the run's vocabulary

    to_old = champion.translation(list(data.vocab.tokens), {t: i for i, t in enumerate(vocab.tokens)})
    assert to_old[0] == 0 and to_old[1] == 1
    assert to_old[data.vocab.index("sku25")] == 1 and to_old[data.vocab.index("sku12")] == vocab.index("sku12")


def _record(tmp_path: Path, pathspec: str = "RecFlow/7", folder: str = "", tarball: str = ""
            ) -> ChampionRecord:
    bundle = BundleRef(pathspec, folder or str(tmp_path / "gone"), tarball)
    return ChampionRecord(model="rec", pathspec=pathspec, metrics={"mrr@20": 0.3}, bundle=bundle,
                          artifact_uri=bundle.folder, endpoint_name="skiff-rec",
                          endpoint_config_name="c1")


def test_load_champion_reads_the_registry_and_falls_back_to_none(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_REGISTRY_URI", str(tmp_path / "registry"))
    config = ServingConfig.from_env()
    assert champion.load_champion("rec", config) is None  # no champion yet

    registry = ModelRegistry(LocalStorage(tmp_path / "registry"))
    registry.promote(_record(tmp_path))  # its bundle is gone: fall back, do not fail the run
    assert champion.load_champion("rec", config) is None

    registry.promote(_record(tmp_path, pathspec="RecFlow/8",
                             folder=str(rec_bundle(tmp_path / "b8", version="RecFlow/8"))))
    found = champion.load_champion("rec", config)
    assert found is not None and found.record.pathspec == "RecFlow/8"
    assert found.name == "champion RecFlow/8" and found.model.version == "RecFlow/8"
    assert found.source == found.record.bundle.folder

    # the folder is gone (a run on Batch, a cleaned $SKIFF_HOME): the tarball is unpacked
    tarball = pack_bundle(rec_bundle(tmp_path / "b9", version="RecFlow/9"), tmp_path / "9.tar.gz")
    registry.promote(_record(tmp_path, pathspec="RecFlow/9", tarball=str(tarball)))
    found = champion.load_champion("rec", config, workdir=tmp_path / "work")
    assert found is not None and found.model.version == "RecFlow/9"
    assert found.model.path == tmp_path / "work" / "bundle" and found.source == str(tarball)


def test_a_champion_only_on_s3_is_fetched_with_the_handed_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry and the champion's tarball on S3, its folder on no disk here: the tarball is
    downloaded with the client the registry is read with (the AWS variables the launch handed)."""
    import boto3
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDHANDED", "AWS_SECRET_ACCESS_KEY": "handed",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "SKIFF_REGISTRY_URI": "s3://models/registry"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    tarball = pack_bundle(rec_bundle(tmp_path / "b9", version="RecFlow/9"), tmp_path / "9.tar.gz")
    with mock_aws():  # botocore answered in-process: no network
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        s3.upload_file(str(tarball), "models", "runs/RecFlow/9/model.tar.gz")
        uri = "s3://models/runs/RecFlow/9/model.tar.gz"
        ModelRegistry(open_storage("s3://models/registry", s3)).promote(
            _record(tmp_path, pathspec="RecFlow/9", tarball=uri))
        found = champion.load_champion("rec", ServingConfig.from_env(), workdir=tmp_path / "w")
    assert found is not None and found.model.version == "RecFlow/9"
    assert found.source == uri and (tmp_path / "w" / "model.tar.gz").is_file()


@pytest.mark.parametrize("handed", [pytest.param(True, id="keys-handed"),
                                    pytest.param(False, id="job-role")])
def test_an_s3_registry_client_takes_the_handed_aws_variables(
        handed: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """What the launch handed (MetaflowHook.run_env) goes to the client explicitly; without
    keys the log says the machine's role is used."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    if handed:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDHANDED")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "handed-secret")
    caplog.set_level("INFO", logger=champion.__name__)
    args = champion._handed_aws("us-east-1")
    assert (args["region_name"], args["endpoint_url"]) == ("eu-west-1", "http://127.0.0.1:9")
    if handed:
        assert (args["aws_access_key_id"], args["aws_secret_access_key"]) == ("AKIDHANDED", "handed-secret")
        assert args["aws_session_token"] is None
    else:
        assert "aws_access_key_id" not in args and "role" in caplog.text
