"""Tiny servable models for the serving tests: a next-item and an intent bundle in ~2 s.

The models are untrained (random weights): serving tests check plumbing, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The SKUs of the tiny next-item model's vocabulary (ids 2..).
SKUS = tuple(f"sku{i:02d}" for i in range(28))
WINDOW, K = 4, 5
#: The tiny next-item bundle's popular items (its answer to a session with no known SKU).
POPULAR = {"items": ["sku27", "sku26", "sku25", "sku24", "sku23"],
           "scores": [0.3, 0.2, 0.1, 0.05, 0.01]}


def rec_bundle(path: Path, version: str = "RecFlow/1", seed: int = 0,
               popular: dict | None = POPULAR) -> Path:
    """A next-item bundle over :data:`SKUS` (window 4, top 5, :data:`POPULAR` unless None)."""
    import keras

    from skiff.serve import write_bundle
    from skiff.train import features, models

    keras.utils.set_random_seed(seed)
    vocab = features.Vocabulary((features.PAD_TOKEN, features.OOV_TOKEN, *SKUS))
    model = models.build_next_item_model(len(vocab), embedding_dim=8, units=8,
                                         max_position=WINDOW)
    return write_bundle(model, path, kind="rec", vocabulary=vocab, version=version,
                        max_len=WINDOW, k=K, popular=popular)


def intent_bundle(path: Path, version: str = "IntentFlow/1", seed: int = 0,
                  n_features: int = 0) -> Path:
    """An intent bundle over the event tokens (tokens only unless ``n_features``)."""
    import keras

    from skiff.serve import write_bundle
    from skiff.train import features, models

    keras.utils.set_random_seed(seed)
    vocab = features.event_vocabulary()
    model = models.build_intent_model(len(vocab), embedding_dim=4, units=4,
                                      n_features=n_features)
    return write_bundle(model, path, kind="intent", vocabulary=vocab, version=version,
                        max_len=20)


def invoke(target: Any, sessions: list[list[str]], **extra: Any) -> tuple[int, dict]:
    """Invoke an endpoint or model server (its ``invoke(body)``) with JSON; status and answer."""
    status, body = target.invoke(json.dumps({"sessions": sessions, **extra}).encode())
    return status, json.loads(body)


def retag(bundle: Path, path: Path, version: str, *, drop: tuple[str, ...] = ()) -> Path:
    """A copy of ``bundle`` claiming another version (same weights; no export, ~10 ms).

    :param drop: metadata fields to leave out (``("popular",)``: a bundle of format 1).
    """
    import shutil

    shutil.copytree(bundle, path)
    meta_file = path / "code" / "skiff_model.json"
    meta = {**json.loads(meta_file.read_text()), "version": version}
    meta_file.write_text(json.dumps({k: v for k, v in meta.items() if k not in drop}))
    return path
