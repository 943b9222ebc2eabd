"""The bundle format: layout, metadata, tarball, and the container's inference.py."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from serving_models import K, SKUS, WINDOW
from skiff.exceptions import ModelLoadError
from skiff.serve import bundle, pack_bundle, read_bundle_meta


def test_bundle_layout_and_tarball(bundles: SimpleNamespace, tmp_path: Path) -> None:
    meta = read_bundle_meta(bundles.rec)
    assert meta["kind"] == "rec" and meta["version"] == "RecFlow/1"
    assert meta["vocabulary"][2:] == list(SKUS) and meta["max_len"] == WINDOW and meta["k"] == K
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
    assert json.loads(body)["predictions"] == [{"items": ["sku00", "sku03"], "scores": [0.5, 0.2]}]
    with pytest.raises(module.BadRequest, match="^bad_request: session 0: unknown SKUs"):
        module.input_handler(b'{"sessions": [["zzz"]]}', context)
