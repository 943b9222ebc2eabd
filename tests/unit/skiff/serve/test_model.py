"""A loaded bundle predicts what the training library predicts; what it ignored stays per row."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from serving_models import K, POPULAR, SKUS, invoke, retag
from skiff.serve import Endpoint, LoadedModel


def test_served_predictions_equal_the_training_library(bundles: SimpleNamespace) -> None:
    from skiff.train import models

    loaded = LoadedModel.load(bundles.rec)
    sessions = [["sku03", "sku04", "sku05", "sku06", "sku07", "sku08"], ["sku10"]]
    ids = loaded.codec.encode(sessions)
    out = loaded.predict(ids)
    saved = models.load_saved_model(bundles.rec / "1")
    # sku03..sku08 are ids 5..10: the model sees the last WINDOW of them, plus the first
    items = np.array([[7, 8, 9, 10], [12, 0, 0, 0]], np.int32)
    expected = models.predict_next_item(saved, {"items": items, "first": np.array([5, 12])}, k=K)
    np.testing.assert_array_equal(out["items"], expected[0])
    np.testing.assert_allclose(out["scores"], expected[1], rtol=1e-5)
    assert loaded.describe()["model_version"] == "RecFlow/1"


def test_unknown_skus_and_fallbacks_stay_with_their_rows_in_a_micro_batch(
        bundles: SimpleNamespace) -> None:
    """Concurrent requests share model calls; each answer lists its own ignored SKUs."""
    endpoint = Endpoint("skiff-rec", max_batch=16, batch_wait_ms=200)
    endpoint.swap(bundles.rec, "cfg-1")
    requests = {f"r{n}": [[f"sku{n:02d}", f"new{n}"], [f"gone{n}"], ["sku01"]] for n in range(6)}
    answers: dict[str, tuple[int, dict]] = {}
    threads = [threading.Thread(target=lambda r=r, s=s: answers.__setitem__(r, invoke(
        endpoint, s, k=3))) for r, s in requests.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert endpoint.describe()["batches"]["calls"] < len(requests)  # rows were batched
    for name, (status, body) in answers.items():
        n = int(name[1:])
        partial, unknown, known = body["predictions"]
        assert status == 200
        assert partial["ignored"] == [f"new{n}"] and "fallback" not in partial
        assert all(i in SKUS for i in partial["items"]) and len(partial["items"]) == 3
        assert unknown == {"items": POPULAR["items"][:3], "scores": POPULAR["scores"][:3],
                           "fallback": "popular", "ignored": [f"gone{n}"], "ignored_count": 1}
        assert known["ignored"] == [] and known["ignored_count"] == 0
    endpoint.close()


def test_a_bundle_without_popular_items_still_loads_and_says_so(bundles: SimpleNamespace,
                                                                tmp_path: Path) -> None:
    old = retag(bundles.rec, tmp_path / "old", "RecFlow/0", drop=("popular",))
    endpoint = Endpoint("skiff-rec", max_batch=1)
    endpoint.swap(old)
    status, body = invoke(endpoint, [["nope"], ["sku01", "nope"]])
    fallback, partial = body["predictions"]
    assert status == 200 and fallback["items"] == [] and fallback["fallback"] == "popular"
    assert "no popular items" in fallback["message"] and len(partial["items"]) == K
