"""The champion registry (local folder, fake S3 client) and the gate decision."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from skiff.exceptions import DataContractError, RegistryError, SkiffConfigError
from skiff.serve import BundleRef
from skiff.serve.registry import (
    ChampionRecord,
    LocalStorage,
    ModelRegistry,
    S3Storage,
    gate_decision,
    higher_is_better,
    open_storage,
)


class FakeS3:
    """The four S3 calls S3Storage makes, on a dict (moto covers the real API elsewhere)."""

    class NoSuchKey(Exception):
        response = {"Error": {"Code": "NoSuchKey"}}

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if (Bucket, Key) not in self.objects:
            raise self.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[Bucket, Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803
        self.objects[Bucket, Key] = Body

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        objects = self.objects

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803
                keys = sorted(k for b, k in objects if b == Bucket and k.startswith(Prefix))
                return [{"Contents": [{"Key": k} for k in keys]}] if keys else [{}]

        return Paginator()


def record(pathspec: str, value: float, model: str = "rec", **kw: Any) -> ChampionRecord:
    return ChampionRecord(model=model, pathspec=pathspec, metrics={"mrr@20": value},
                          bundle=BundleRef(pathspec, f"/serving/{pathspec}",
                                           f"/models/{pathspec}/model.tar.gz"),
                          artifact_uri=f"/serving/{pathspec}",
                          endpoint_name=f"skiff-{model}",
                          endpoint_config_name=f"cfg-{pathspec.replace('/', '-')}", **kw)


@pytest.fixture(params=["local", "s3"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    if request.param == "local":
        return ModelRegistry(open_storage(str(tmp_path / "registry")))
    return ModelRegistry(open_storage("s3://bucket/skiff/registry", FakeS3()))


def test_promotions_keep_the_previous_champion_and_a_history(registry: ModelRegistry) -> None:
    assert registry.champion("rec") is None and registry.history("rec") == []
    first = registry.promote(record("RecFlow/1", 0.2), expected_previous=None)
    assert first.previous is None and registry.champion("rec") == first
    second = registry.promote(record("RecFlow/2", 0.3))
    assert second.previous == "RecFlow/1"
    assert second.previous_endpoint_config_name == "cfg-RecFlow-1"
    assert registry.champion("rec") == second
    assert [r.pathspec for r in registry.history("rec")] in (
        ["RecFlow/1", "RecFlow/2"], ["RecFlow/2", "RecFlow/1"])  # same second: order by name
    assert registry.champion("intent") is None  # models are separate


def test_promote_refuses_when_another_run_promoted_meanwhile(registry: ModelRegistry) -> None:
    registry.promote(record("RecFlow/1", 0.2))
    with pytest.raises(RegistryError, match="another run promoted meanwhile"):
        registry.promote(record("RecFlow/3", 0.4), expected_previous=None)
    assert registry.champion("rec").pathspec == "RecFlow/1"
    registry.promote(record("RecFlow/3", 0.4), expected_previous="RecFlow/1")


def test_records_tolerate_new_fields_and_reject_garbage(tmp_path: Path) -> None:
    doc = record("RecFlow/1", 0.2).to_dict() | {"added_in_a_later_version": 1}
    assert ChampionRecord.from_dict(doc).pathspec == "RecFlow/1"
    with pytest.raises(RegistryError, match="Not a champion record"):
        ChampionRecord.from_dict({"model": "rec"})
    storage = LocalStorage(tmp_path)
    storage.write_text("rec/champion.json", "{not json")
    with pytest.raises(RegistryError, match="not JSON"):
        ModelRegistry(storage).champion("rec")


@pytest.mark.parametrize(("artifact", "folder", "tarball"), [
    pytest.param("/serving/models/c1", "/serving/models/c1", "", id="local-served-copy"),
    pytest.param("s3://art/skiff/models/rec/c1/model.tar.gz", "/models/RecFlow/1/bundle",
                 "s3://art/skiff/models/rec/c1/model.tar.gz", id="sagemaker-tarball"),
])
def test_records_written_before_the_bundle_ref_still_read(artifact: str, folder: str,
                                                           tarball: str) -> None:
    doc = record("RecFlow/1", 0.2).to_dict()
    del doc["bundle"]
    doc |= {"model_uri": "/models/RecFlow/1/bundle", "artifact_uri": artifact}
    assert ChampionRecord.from_dict(doc).bundle == BundleRef("RecFlow/1", folder, tarball)
    with pytest.raises(RegistryError, match="neither a folder nor a tarball"):
        ChampionRecord.from_dict({**record("RecFlow/1", 0.2).to_dict(),
                                  "bundle": {"pathspec": "RecFlow/1"}})


def test_storage_details(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path / "r")
    assert local.read_text("x.json") is None and local.list("nothing") == []
    local.write_text("a/b.json", "1")
    assert local.read_text("a/b.json") == "1" and local.list("a") == ["a/b.json"]
    with pytest.raises(RegistryError, match="leaves the registry"):
        local.read_text("../outside.json")
    with pytest.raises(RegistryError, match="pass an S3 client"):
        open_storage("s3://bucket/prefix")
    with pytest.raises(RegistryError, match="names no bucket"):
        open_storage("s3:///prefix", FakeS3())
    s3 = open_storage("s3://bucket/p/", FakeS3())
    assert isinstance(s3, S3Storage) and s3.uri == "s3://bucket/p"
    with pytest.raises(RegistryError, match="lower-case"):
        ModelRegistry(local).champion("../etc")


# --------------------------------------------------------------------------- the gate

BASELINES = {"most_popular": {"mrr@20": 0.10}, "cooccurrence": {"mrr@20": 0.15}}


@pytest.mark.parametrize(("candidate", "champion", "margin", "promote", "against", "says"), [
    pytest.param({"mrr@20": 0.2, "baselines": BASELINES}, None, 0.0, True, "baselines",
                 "best baseline 'cooccurrence'", id="first-deploy-beats-baselines"),
    pytest.param({"mrr@20": 0.14, "baselines": BASELINES}, None, 0.0, False, "baselines",
                 "Reject (first deploy)", id="first-deploy-loses-to-a-baseline"),
    pytest.param({"mrr@20": 0.16, "baselines": BASELINES}, None, 0.02, False, "baselines",
                 "more than 0.0200", id="first-deploy-within-margin"),
    pytest.param({"mrr@20": 0.01}, None, 0.0, True, "none", "No champion",
                 id="first-deploy-nothing-to-compare"),
    pytest.param({"model": {"mrr@20": 0.2}, "baselines": BASELINES}, None, 0.0, True,
                 "baselines", "0.2000", id="flow-layout-metric-under-model"),
    pytest.param({"mrr@20": 0.31, "champion": {"pathspec": "RecFlow/1", "mrr@20": 0.30}},
                 record("RecFlow/1", 0.5), 0.0, True, "champion", "beats champion 0.3000",
                 id="beats-champion-rescored-on-same-sessions"),
    pytest.param({"mrr@20": 0.305, "champion": {"pathspec": "RecFlow/1", "mrr@20": 0.30}},
                 record("RecFlow/1", 0.1), 0.01, False, "champion", "not above margin",
                 id="within-margin-of-champion"),
    pytest.param({"mrr@20": 0.4, "champion": {"pathspec": "RecFlow/0", "mrr@20": 0.1}},
                 record("RecFlow/1", 0.3), 0.0, True, "champion-recorded", "older held-out",
                 id="rescored-a-different-champion-uses-the-record"),
    pytest.param({"mrr@20": 0.25}, record("RecFlow/1", 0.3), 0.0, False, "champion-recorded",
                 "Keep champion", id="loses-to-recorded-champion"),
])
def test_gate_decision(candidate: dict, champion: ChampionRecord | None, margin: float,
                       promote: bool, against: str, says: str) -> None:
    outcome = gate_decision(candidate, champion, "mrr@20", margin, candidate_pathspec="RecFlow/2")
    assert outcome.promote is promote and outcome.against == against
    assert says in outcome.reason
    summary = outcome.to_dict()
    assert summary["promote"] is promote and summary["metric"] == "mrr@20"


def test_gate_keeps_a_champion_that_is_the_candidate() -> None:
    outcome = gate_decision({"mrr@20": 0.9}, record("RecFlow/1", 0.1), "mrr@20",
                            candidate_pathspec="RecFlow/1")
    assert not outcome.promote and outcome.against == "self"


def test_gate_lower_is_better_for_losses() -> None:
    assert higher_is_better("roc_auc") and not higher_is_better("val_loss")
    champion = ChampionRecord("intent", "IntentFlow/1", {"log_loss": 0.5},
                              BundleRef("IntentFlow/1", "m"), "a", "e", "c")
    assert gate_decision({"log_loss": 0.4}, champion, "log_loss").promote
    assert not gate_decision({"log_loss": 0.6}, champion, "log_loss").promote


def test_gate_errors_name_the_problem() -> None:
    with pytest.raises(DataContractError, match="lack 'roc_auc'"):
        gate_decision({"mrr@20": 0.2}, record("RecFlow/1", 0.1), "roc_auc")
    with pytest.raises(DataContractError, match="Baseline 'pop' lacks"):
        gate_decision({"mrr@20": 0.2, "baselines": {"pop": {"hr": 1}}}, None, "mrr@20")
    with pytest.raises(SkiffConfigError, match="margin"):
        gate_decision({"mrr@20": 0.2}, record("RecFlow/1", 0.1), "mrr@20", margin=-1)
