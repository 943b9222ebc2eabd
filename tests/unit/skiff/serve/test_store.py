"""The local control plane: endpoint configs (bundle copies), endpoints, and a restored server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from skiff.exceptions import ModelLoadError, ServingError
from skiff.serve import EndpointStore, ModelServer


def test_endpoint_store_tracks_configs_and_restores_a_server(bundles: SimpleNamespace,
                                                             tmp_path: Path) -> None:
    store = EndpointStore(tmp_path / "serving")
    assert store.endpoint("skiff-rec") is None and list(store.endpoints()) == []
    store.create_config("cfg-1", bundles.rec)
    store.create_config("cfg-2", bundles.rec2)
    with pytest.raises(ServingError, match="already exists"):
        store.create_config("cfg-1", bundles.rec)
    with pytest.raises(ModelLoadError, match="not a model bundle"):
        store.create_config("cfg-3", tmp_path)
    with pytest.raises(ServingError, match="No endpoint config 'cfg-9'"):
        store.set_endpoint("skiff-rec", "cfg-9")
    first = store.set_endpoint("skiff-rec", "cfg-1")
    assert first.previous_config_name is None and first.model_version == "RecFlow/1"
    second = store.set_endpoint("skiff-rec", "cfg-2")
    assert second.previous_config_name == "cfg-1"
    assert Path(second.model_dir).is_relative_to(tmp_path / "serving")  # a copy, not the source
    assert store.set_endpoint("skiff-rec", "cfg-2").previous_config_name == "cfg-1"  # idempotent
    server = ModelServer(max_batch=1)
    assert server.load_store(store) == ["skiff-rec"]
    assert server.endpoint("skiff-rec").model.version == "RecFlow/2"
    server.close()
