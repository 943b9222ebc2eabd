"""The bundle format, and BundleRef with its resolver, tarball and upload (a fake S3 client)."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving_models import K, POPULAR, SKUS, WINDOW
from skiff.exceptions import ModelLoadError, SkiffConfigError
from skiff.serve import BundleRef, bundle, pack_bundle, read_bundle_meta


class FakeS3:
    """The three calls the bundle transport makes, as boto3's client makes them, on a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.calls: list[str] = []

    class NotFound(Exception):
        response = {"Error": {"Code": "404", "Message": "Not Found"}}

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        self.calls.append("download_file")
        if (bucket, key) not in self.objects:
            raise self.NotFound("An error occurred (404) when calling the HeadObject operation")
        Path(filename).write_bytes(self.objects[bucket, key])

    def upload_file(self, filename: str, bucket: str, key: str) -> None:
        self.calls.append("upload_file")
        self.objects[bucket, key] = Path(filename).read_bytes()

    def copy(self, source: dict[str, str], bucket: str, key: str) -> None:
        self.calls.append("copy")
        self.objects[bucket, key] = self.objects[source["Bucket"], source["Key"]]


def test_bundle_layout_and_tarball(bundles: SimpleNamespace, tmp_path: Path) -> None:
    meta = read_bundle_meta(bundles.rec)
    assert meta["kind"] == "rec" and meta["version"] == "RecFlow/1"
    assert meta["vocabulary"][2:] == list(SKUS) and meta["max_len"] == WINDOW and meta["k"] == K
    assert meta["format"] == bundle.FORMAT == 2 and meta["popular"] == POPULAR
    assert "popular" not in read_bundle_meta(bundles.intent)
    assert (bundles.rec / "1" / "saved_model.pb").is_file()
    assert (bundles.rec / "code" / "inference.py").is_file()
    tar = pack_bundle(bundles.rec, tmp_path / "model.tar.gz")
    with tarfile.open(tar) as t:
        names = set(t.getnames())
    assert {"1/saved_model.pb", "code/inference.py", "code/skiff_model.json"} <= names
    assert read_bundle_meta(bundle.unpack_bundle(tar.read_bytes(), tmp_path / "u"))["version"] \
        == "RecFlow/1"
    with pytest.raises(ModelLoadError, match="not a model bundle"):
        read_bundle_meta(tmp_path)
    with pytest.raises(ModelLoadError, match="not a model bundle"):
        pack_bundle(tmp_path, tmp_path / "x.tar.gz")


def test_inference_py_runs_standalone_in_the_container_layout(bundles: SimpleNamespace) -> None:
    """The bundle's code/inference.py, imported from the bundle as the TF Serving container does."""
    spec = importlib.util.spec_from_file_location("container_inference",
                                                  bundles.rec / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = SimpleNamespace(request_content_type="application/json")
    request = json.loads(module.input_handler(
        io.BytesIO(b'{"sessions": [["sku01", "sku02"]], "k": 2}'), context))
    assert request == {"signature_name": "serve",
                       "inputs": {"items": [[3, 4]], "first": [3]}}
    tf_serving = SimpleNamespace(status_code=200, content=json.dumps(
        {"outputs": {"items": [[2, 5, 6]], "scores": [[0.5, 0.2, 0.1]]}}).encode())
    body, content_type = module.output_handler(tf_serving, context)
    assert json.loads(body)["predictions"] == [{"items": ["sku00", "sku03"], "scores": [0.5, 0.2],
                                                "ignored": [], "ignored_count": 0}]
    # unknown SKUs are dropped (a session of none: the OOV placeholder row, then the popular items)
    request = json.loads(module.input_handler(
        io.BytesIO(b'{"sessions": [["new", "sku01", "new"], ["zzz"]], "k": 2}'), context))
    assert request["inputs"] == {"items": [[3], [1]], "first": [3, 1]}
    tf_serving.content = json.dumps({"outputs": {"items": [[2, 5], [9, 8]],
                                                 "scores": [[0.5, 0.2], [0.4, 0.3]]}}).encode()
    body, _ = module.output_handler(tf_serving, context)
    assert json.loads(body)["predictions"] == [
        {"items": ["sku00", "sku03"], "scores": [0.5, 0.2], "ignored": ["new"], "ignored_count": 1},
        {"items": POPULAR["items"][:2], "scores": POPULAR["scores"][:2], "fallback": "popular",
         "ignored": ["zzz"], "ignored_count": 1}]
    intent = module_of(bundles.intent)
    with pytest.raises(intent.BadRequest, match="^bad_request: session 0: unknown event types"):
        intent.input_handler(b'{"sessions": [["view", "zzz"]]}', context)


def module_of(bundle_dir: Path) -> Any:
    """The bundle's code/inference.py as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"inference_{bundle_dir.name}",
                                                  bundle_dir / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("kind", "popular", "message"), [
    pytest.param("intent", POPULAR, "belong to next-item bundles", id="intent"),
    pytest.param("rec", {"items": ["a", "b"], "scores": [1.0]}, "one score per item", id="ragged"),
    pytest.param("rec", {"items": [1], "scores": [1.0]}, "one score per item", id="not-skus"),
    pytest.param("rec", ["a"], "one score per item", id="a-list"),
])
def test_write_bundle_refuses_bad_popular_items(kind: str, popular: Any, message: str,
                                                tmp_path: Path) -> None:
    with pytest.raises(SkiffConfigError, match=message):
        bundle.write_bundle(None, tmp_path / "b", kind=kind, vocabulary=["[PAD]", "[OOV]", "a"],
                            version="F/1", max_len=3, popular=popular)
    assert not (tmp_path / "b").exists()


def test_bundle_ref_round_trips_and_rejects_what_names_no_bundle() -> None:
    ref = BundleRef("RecFlow/3", "/m/bundle", "s3://b/k/model.tar.gz")
    assert BundleRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    assert BundleRef.from_dict({**ref.to_dict(), "added_later": 1}) == ref  # newer writers
    assert BundleRef.from_dict({"pathspec": "RecFlow/3", "folder": "/m", "tarball": None}) \
        == BundleRef("RecFlow/3", "/m")
    for doc, match in [({"folder": "/m"}, "not a Metaflow run pathspec"),
                       ({"pathspec": "RecFlow/3"}, "neither a folder nor a tarball"),
                       ({"pathspec": "RecFlow/3", "folder": 7}, "must be text"),
                       ("RecFlow/3", "is a dict with")]:
        with pytest.raises(ModelLoadError, match=match):
            BundleRef.from_dict(doc)


def test_resolve_prefers_the_folder_then_the_local_then_the_s3_tarball(
        bundles: SimpleNamespace, tmp_path: Path) -> None:
    tarball = pack_bundle(bundles.rec, tmp_path / "model.tar.gz")
    s3 = FakeS3()
    s3.objects["models", "runs/RecFlow/1/model.tar.gz"] = tarball.read_bytes()

    here = BundleRef("RecFlow/1", str(bundles.rec), "s3://models/runs/RecFlow/1/model.tar.gz")
    assert bundle.resolve(here, tmp_path / "w1", s3_client=s3) == bundles.rec
    gone = tmp_path / "gone"  # the folder a Batch container wrote
    local = bundle.resolve(BundleRef("RecFlow/1", str(gone), str(tarball)), tmp_path / "w2")
    assert local == tmp_path / "w2" / "bundle" and read_bundle_meta(local)["version"] == "RecFlow/1"
    assert s3.calls == []
    remote = bundle.resolve(BundleRef("RecFlow/1", str(gone), here.tarball), tmp_path / "w3",
                            s3_client=s3)
    assert read_bundle_meta(remote)["version"] == "RecFlow/1" and s3.calls == ["download_file"]
    with pytest.raises(ModelLoadError, match="RecFlow/1 is not on this machine"):
        bundle.resolve(BundleRef("RecFlow/1", str(gone), str(tmp_path / "no.tar.gz")),
                       tmp_path / "w4")
    with pytest.raises(ModelLoadError, match="not an s3://bucket/key URI"):
        bundle.resolve(BundleRef("RecFlow/1", tarball="s3://models"), tmp_path / "w5")
    with pytest.raises(ModelLoadError, match=r"cannot be read from s3://models/nope \(404\)"):
        bundle.resolve(BundleRef("RecFlow/1", tarball="s3://models/nope"), tmp_path / "w6",
                       s3_client=s3)


def test_tarball_and_upload_ship_the_existing_tarball(bundles: SimpleNamespace,
                                                      tmp_path: Path) -> None:
    packed = pack_bundle(bundles.rec, tmp_path / "run" / "model.tar.gz")
    s3 = FakeS3()
    run = BundleRef("RecFlow/1", str(bundles.rec), str(packed))
    assert bundle.tarball(run, tmp_path / "w") == str(packed)  # not packed again
    shipped = bundle.upload(run, "s3://art/skiff/models/rec/c1/model.tar.gz", tmp_path / "w",
                            s3_client=s3)
    assert shipped == BundleRef("RecFlow/1", str(bundles.rec),
                                "s3://art/skiff/models/rec/c1/model.tar.gz")
    assert s3.objects["art", "skiff/models/rec/c1/model.tar.gz"] == packed.read_bytes()
    assert not (tmp_path / "w").exists()

    again = bundle.upload(shipped, "s3://art/skiff/models/rec/c2/model.tar.gz", tmp_path / "w",
                          s3_client=s3)  # on S3 already: copied there, not downloaded
    assert s3.calls == ["upload_file", "copy"] and again.tarball.endswith("c2/model.tar.gz")
    assert bundle.upload(again, again.tarball, tmp_path / "w", s3_client=s3) == again
    assert s3.calls == ["upload_file", "copy"]  # already where it is asked to be

    folder_only = BundleRef("RecFlow/1", str(shutil.copytree(bundles.rec, tmp_path / "f")))
    fresh = Path(bundle.tarball(folder_only, tmp_path / "w"))
    assert fresh == tmp_path / "w" / "model.tar.gz"
    with tarfile.open(fresh) as tar:
        assert "code/skiff_model.json" in tar.getnames()
    with pytest.raises(ModelLoadError, match="not an s3://bucket/key URI"):
        bundle.upload(run, str(tmp_path / "elsewhere.tar.gz"), tmp_path / "w", s3_client=s3)
