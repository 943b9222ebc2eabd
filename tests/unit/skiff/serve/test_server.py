"""The local model server without HTTP: bundles, invocations, atomic swaps, micro-batching."""

from __future__ import annotations

import importlib.util
import json
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from serving_models import K, SKUS, WINDOW, intent_bundle, rec_bundle
from skiff.exceptions import ModelLoadError, ServingError

from skiff.serve import server as serving


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("bundles")
    return SimpleNamespace(rec=rec_bundle(root / "rec", "RecFlow/1", seed=1),
                           rec2=rec_bundle(root / "rec2", "RecFlow/2", seed=2),
                           intent=intent_bundle(root / "intent", "IntentFlow/1"),
                           root=root)


def invoke(target: object, sessions: list[list[str]], **extra: object) -> tuple[int, dict]:
    status, body = target.invoke(json.dumps({"sessions": sessions, **extra}).encode())
    return status, json.loads(body)


def test_bundle_layout_and_tarball(bundles: SimpleNamespace, tmp_path: Path) -> None:
    meta = serving.read_bundle_meta(bundles.rec)
    assert meta["kind"] == "rec" and meta["version"] == "RecFlow/1"
    assert meta["vocabulary"][2:] == list(SKUS) and meta["max_len"] == WINDOW and meta["k"] == K
    assert (bundles.rec / "1" / "saved_model.pb").is_file()
    assert (bundles.rec / "code" / "inference.py").is_file()
    tar = serving.bundle_tarball(bundles.rec, tmp_path / "model.tar.gz")
    with tarfile.open(tar) as t:
        names = set(t.getnames())
    assert {"1/saved_model.pb", "code/inference.py", "code/skiff_model.json"} <= names
    with pytest.raises(ModelLoadError, match="not a model bundle"):
        serving.read_bundle_meta(tmp_path)


def test_served_predictions_equal_the_training_library(bundles: SimpleNamespace) -> None:
    from skiff.train import models

    loaded = serving.LoadedModel.load(bundles.rec)
    sessions = [["sku03", "sku04", "sku05", "sku06", "sku07", "sku08"], ["sku10"]]
    ids = loaded.codec.encode(sessions)
    out = loaded.predict(ids)
    saved = models.load_saved_model(bundles.rec / "1")
    # sku03..sku08 are ids 5..10: the model sees the last WINDOW of them, plus the first
    items = np.array([[7, 8, 9, 10], [12, 0, 0, 0]], np.int32)
    expected = models.predict_next_item(saved, {"items": items, "first": np.array([5, 12])}, k=K)
    np.testing.assert_array_equal(out["items"], expected[0])
    np.testing.assert_allclose(out["scores"], expected[1], rtol=1e-5)


def test_invocations_answer_the_contract(bundles: SimpleNamespace) -> None:
    endpoint = serving.Endpoint("skiff-rec", max_batch=1)
    assert invoke(endpoint, [["sku01"]])[0] == 503  # no model yet
    endpoint.swap(bundles.rec, "cfg-1")
    status, body = invoke(endpoint, [["sku01", "sku02"], ["sku03"]], k=3)
    assert status == 200 and body["model"] == "rec" and body["model_version"] == "RecFlow/1"
    assert [len(p["items"]) for p in body["predictions"]] == [3, 3]
    assert all(i in SKUS for p in body["predictions"] for i in p["items"])
    assert len(invoke(endpoint, [["sku01"]], k=99)[1]["predictions"][0]["items"]) == K
    status, body = invoke(endpoint, [["sku01", "nope", "[PAD]"]])
    assert status == 400 and "unknown SKUs '[PAD]', 'nope'" in body["message"]
    for raw in (b"{", b"[]", b'{"sessions": []}', b'{"sessions": [[]]}',
                b'{"sessions": [[1, 2]]}', b'{"sessions": [["sku01"]], "k": 0}'):
        status, body = endpoint.invoke(raw)
        assert status == 400 and json.loads(body)["error"] == "bad_request", raw
    assert endpoint.invoke(b'{"sessions": [["sku01"]]}', "text/csv")[0] == 400

    intent = serving.Endpoint("skiff-intent", max_batch=1)
    intent.swap(bundles.intent)
    status, body = invoke(intent, [["view", "detail", "add"], ["view"]])
    assert status == 200 and len(body["predictions"]) == 2
    assert all(0 < p["probability"] < 1 for p in body["predictions"])
    assert invoke(intent, [["view", "start"]])[0] == 400


def _blocking(model: object) -> tuple[threading.Event, threading.Event]:
    """Make ``model.predict`` wait inside the call until released."""
    entered, release = threading.Event(), threading.Event()
    original = model.predict

    def predict(ids: list[list[int]]) -> dict:
        entered.set()
        assert release.wait(10)
        return original(ids)

    model.predict = predict
    return entered, release


@pytest.mark.parametrize("max_batch", [pytest.param(1, id="unbatched"),
                                       pytest.param(16, id="micro-batched")])
def test_swap_lets_requests_in_flight_finish_on_the_old_model(bundles: SimpleNamespace,
                                                              max_batch: int) -> None:
    endpoint = serving.Endpoint("skiff-rec", max_batch=max_batch)
    old = endpoint.swap(bundles.rec, "cfg-1")
    entered, release = _blocking(old)
    answers: list[tuple[int, dict]] = []
    slow = threading.Thread(target=lambda: answers.append(invoke(endpoint, [["sku01"]])))
    slow.start()
    assert entered.wait(10)  # the request is inside the old model's call
    endpoint.swap(bundles.rec2, "cfg-2")
    assert endpoint.model.version == "RecFlow/2" and endpoint.config_name == "cfg-2"
    if max_batch == 1:  # unbatched: a new request runs on the new model while the old one waits
        assert invoke(endpoint, [["sku01"]])[1]["model_version"] == "RecFlow/2"
    release.set()
    slow.join(10)
    assert answers[0][0] == 200 and answers[0][1]["model_version"] == "RecFlow/1"
    assert invoke(endpoint, [["sku01"]])[1]["model_version"] == "RecFlow/2"
    endpoint.close()


def test_a_model_that_fails_to_load_is_never_swapped_in(bundles: SimpleNamespace,
                                                        tmp_path: Path) -> None:
    import shutil

    endpoint = serving.Endpoint("skiff-rec", max_batch=1)
    endpoint.swap(bundles.rec, "cfg-1")
    corrupt = shutil.copytree(bundles.rec, tmp_path / "corrupt")
    (corrupt / "1" / "saved_model.pb").write_bytes(b"not a graph")
    mislabelled = shutil.copytree(bundles.rec, tmp_path / "mislabelled")
    meta = json.loads((mislabelled / "code" / "skiff_model.json").read_text())
    (mislabelled / "code" / "skiff_model.json").write_text(json.dumps({**meta, "kind": "intent"}))
    no_vocab = shutil.copytree(bundles.rec, tmp_path / "no_vocab")
    (no_vocab / "code" / "skiff_model.json").write_text(json.dumps(
        {k: v for k, v in meta.items() if k != "vocabulary"}))
    with_features = intent_bundle(tmp_path / "features", n_features=2)
    cases = {tmp_path / "missing": "not a model bundle", corrupt: "does not load",
             mislabelled: "takes ['tokens']", no_vocab: "lacks ['vocabulary']",
             with_features: "n_features=0"}
    for path, message in cases.items():
        with pytest.raises(ModelLoadError, match=message.replace("[", r"\[").replace("]", r"\]")):
            endpoint.swap(path, "cfg-bad")
        assert endpoint.model.version == "RecFlow/1" and endpoint.config_name == "cfg-1"
        assert invoke(endpoint, [["sku01"]])[0] == 200


def test_micro_batching_serves_concurrent_requests_correctly(bundles: SimpleNamespace) -> None:
    batched = serving.Endpoint("skiff-rec", max_batch=32)
    batched.swap(bundles.rec)
    single = serving.Endpoint("skiff-rec-1", max_batch=1)
    single.swap(bundles.rec)
    rng = np.random.default_rng(0)
    sessions = [[SKUS[i] for i in rng.integers(0, len(SKUS), rng.integers(1, 8))]
                for _ in range(64)]
    expected = [invoke(single, [s])[1] for s in sessions]
    results: dict[int, dict] = {}
    barrier = threading.Barrier(16)

    def client(worker: int) -> None:
        barrier.wait()
        for i in range(worker, len(sessions), 16):
            results[i] = invoke(batched, [sessions[i]])[1]

    threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i, want in enumerate(expected):
        got = results[i]["predictions"][0]
        assert got["items"] == want["predictions"][0]["items"], i
        np.testing.assert_allclose(got["scores"], want["predictions"][0]["scores"], atol=1e-5)
    stats = batched.describe()["batches"]
    assert stats["rows"] == len(sessions) and stats["calls"] <= len(sessions)
    batched.close()
    single.close()


def test_model_server_routes_and_health(bundles: SimpleNamespace) -> None:
    server = serving.ModelServer(max_batch=4)
    assert not server.healthy()
    server.deploy("skiff-rec", bundles.rec, "cfg-1")
    server.deploy("skiff-intent", bundles.intent, "cfg-2")
    assert server.healthy() and server.default_endpoint == "skiff-rec"
    assert server.invoke(None, b'{"sessions": [["sku01"]]}')[0] == 200
    assert server.invoke("skiff-intent", b'{"sessions": [["view"]]}')[0] == 200
    assert server.invoke("nope", b'{"sessions": [["view"]]}')[0] == 404
    names = {e["endpoint_name"]: e for e in server.describe()["endpoints"]}
    assert names["skiff-intent"]["model_version"] == "IntentFlow/1"
    assert names["skiff-rec"]["endpoint_config_name"] == "cfg-1"
    client = serving.LocalRuntimeClient(server)
    answer = client.invoke_endpoint(EndpointName="skiff-intent", Body='{"sessions": [["add"]]}')
    assert json.loads(answer["Body"].read())["model"] == "intent"
    with pytest.raises(serving.LocalModelError) as raised:
        client.invoke_endpoint(EndpointName="skiff-intent", Body='{"sessions": [["zzz"]]}')
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert raised.value.response["OriginalStatusCode"] == 400
    server.close()


def test_endpoint_store_tracks_configs_and_restores_a_server(bundles: SimpleNamespace,
                                                             tmp_path: Path) -> None:
    store = serving.EndpointStore(tmp_path / "serving")
    assert store.endpoint("skiff-rec") is None and list(store.endpoints()) == []
    store.create_config("cfg-1", bundles.rec)
    store.create_config("cfg-2", bundles.rec2)
    with pytest.raises(ServingError, match="already exists"):
        store.create_config("cfg-1", bundles.rec)
    with pytest.raises(ServingError, match="No endpoint config 'cfg-9'"):
        store.set_endpoint("skiff-rec", "cfg-9")
    first = store.set_endpoint("skiff-rec", "cfg-1")
    assert first.previous_config_name is None and first.model_version == "RecFlow/1"
    second = store.set_endpoint("skiff-rec", "cfg-2")
    assert second.previous_config_name == "cfg-1"
    assert Path(second.model_dir).is_relative_to(tmp_path / "serving")  # a copy, not the source
    assert store.set_endpoint("skiff-rec", "cfg-2").previous_config_name == "cfg-1"  # idempotent
    server = serving.ModelServer(max_batch=1)
    assert server.load_store(store) == ["skiff-rec"]
    assert server.endpoint("skiff-rec").model.version == "RecFlow/2"
    server.close()


def test_inference_py_runs_standalone_in_the_container_layout(bundles: SimpleNamespace) -> None:
    """The bundle's code/inference.py, imported from the bundle as the TF Serving container does."""
    spec = importlib.util.spec_from_file_location("container_inference",
                                                  bundles.rec / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = SimpleNamespace(request_content_type="application/json")
    request = json.loads(module.input_handler(
        __import__("io").BytesIO(b'{"sessions": [["sku01", "sku02"]], "k": 2}'), context))
    assert request == {"signature_name": "serve",
                       "inputs": {"items": [[3, 4]], "first": [3]}}
    tf_serving = SimpleNamespace(status_code=200, content=json.dumps(
        {"outputs": {"items": [[2, 5, 6]], "scores": [[0.5, 0.2, 0.1]]}}).encode())
    body, content_type = module.output_handler(tf_serving, context)
    assert json.loads(body)["predictions"] == [{"items": ["sku00", "sku03"], "scores": [0.5, 0.2]}]
    with pytest.raises(module.BadRequest, match="^bad_request: session 0: unknown SKUs"):
        module.input_handler(b'{"sessions": [["zzz"]]}', context)
