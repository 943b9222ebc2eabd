"""The local model server without HTTP: invocations, atomic swaps, refused models, routes."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from serving_models import K, SKUS, intent_bundle, invoke
from skiff.exceptions import ModelLoadError, SkiffConfigError
from skiff.serve import Endpoint, KindMismatch, ModelServer


def test_invocations_answer_the_contract(bundles: SimpleNamespace) -> None:
    endpoint = Endpoint("skiff-rec", max_batch=1)
    assert invoke(endpoint, [["sku01"]])[0] == 503  # no model yet
    endpoint.swap(bundles.rec, "cfg-1")
    status, body = invoke(endpoint, [["sku01", "sku02"], ["sku03"]], k=3)
    assert status == 200 and body["model"] == "rec" and body["model_version"] == "RecFlow/1"
    assert [len(p["items"]) for p in body["predictions"]] == [3, 3]
    assert all(i in SKUS for p in body["predictions"] for i in p["items"])
    assert len(invoke(endpoint, [["sku01"]], k=99)[1]["predictions"][0]["items"]) == K
    status, body = invoke(endpoint, [["sku01", "nope", "[PAD]", "nope"]])  # ignored, in order
    assert status == 200 and body["predictions"][0]["ignored"] == ["nope", "[PAD]"]
    for raw in (b"{", b"[]", b'{"sessions": []}', b'{"sessions": [[]]}',
                b'{"sessions": [[1, 2]]}', b'{"sessions": [["sku01"]], "k": 0}'):
        status, body = endpoint.invoke(raw)
        assert status == 400 and json.loads(body)["error"] == "bad_request", raw
    assert endpoint.invoke(b'{"sessions": [["sku01"]]}', "text/csv")[0] == 400

    intent = Endpoint("skiff-intent", max_batch=1)
    intent.swap(bundles.intent)
    status, body = invoke(intent, [["view", "detail", "add"], ["view"]])
    assert status == 200 and len(body["predictions"]) == 2
    assert all(0 < p["probability"] < 1 for p in body["predictions"])
    assert invoke(intent, [["view", "start"]])[0] == 400
    with pytest.raises(SkiffConfigError, match="1-63 letters"):
        Endpoint("skiff_rec")


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
    endpoint = Endpoint("skiff-rec", max_batch=max_batch)
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
    endpoint = Endpoint("skiff-rec", max_batch=1)
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
    cases = {tmp_path / "missing": (ModelLoadError, "not a model bundle"),
             corrupt: (ModelLoadError, "does not load"),
             no_vocab: (ModelLoadError, "lacks ['vocabulary']"),
             # refused from its metadata, before it is loaded
             mislabelled: (KindMismatch, "serves rec models; this bundle is a 'intent'"),
             with_features: (KindMismatch, "serves rec models")}
    for path, (error, message) in cases.items():
        with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
            endpoint.swap(path, "cfg-bad")
        assert endpoint.model.version == "RecFlow/1" and endpoint.config_name == "cfg-1"
        assert invoke(endpoint, [["sku01"]])[0] == 200
    # an endpoint whose name promises no kind loads them, and the loader's checks refuse them
    anything = Endpoint("other", max_batch=1)
    assert anything.kind is None
    for path, message in ((mislabelled, "takes ['tokens']"), (with_features, "n_features=0")):
        with pytest.raises(ModelLoadError, match=message.replace("[", r"\[").replace("]", r"\]")):
            anything.swap(path)
        assert anything.model is None and anything.kind is None
    anything.swap(bundles.intent)
    assert anything.kind == "intent"
    with pytest.raises(KindMismatch):
        anything.swap(bundles.rec)
    assert anything.model.kind == "intent"


def test_model_server_routes_and_health(bundles: SimpleNamespace) -> None:
    server = ModelServer(max_batch=4)
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
    with pytest.raises(KeyError):
        server.endpoint("nope")
    server.close()


def test_a_stuck_model_call_answers_503_within_the_timeout(bundles: SimpleNamespace) -> None:
    """The batcher's wait is bounded (SKIFF_SERVE_PREDICT_TIMEOUT_S): no request hangs."""
    endpoint = Endpoint("skiff-rec", max_batch=8, predict_timeout_s=0.3)
    model = endpoint.swap(bundles.rec)
    release = threading.Event()
    real = model.predict
    model.predict = lambda ids: (release.wait(10), real(ids))[1]  # type: ignore[method-assign]
    try:
        for _ in range(2):  # the stuck call, then one queued behind it
            started = time.monotonic()
            status, answer = invoke(endpoint, [["sku01"]])
            assert (status, answer["error"]) == (503, "model_timeout"), answer
            assert 0.3 <= time.monotonic() - started < 2
    finally:
        release.set()
    model.predict = real  # type: ignore[method-assign]
    assert invoke(endpoint, [["sku01"]])[0] == 200  # the abandoned requests are skipped
    endpoint.close()


def test_a_refused_first_model_creates_no_endpoint(bundles: SimpleNamespace) -> None:
    """A new endpoint whose first model is refused is not left empty (``/ping`` would fail)."""
    server = ModelServer(max_batch=1)
    server.deploy("skiff-rec", bundles.rec)
    with pytest.raises(KindMismatch):
        server.deploy("other-intent", bundles.rec)
    assert set(server.endpoints) == {"skiff-rec"} and server.healthy()
    server.close()
