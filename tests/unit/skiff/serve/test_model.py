"""A loaded bundle predicts what the training library predicts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from serving_models import K
from skiff.serve import LoadedModel


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
