"""The serve tests' bundles: two next-item models and an intent model, built once per session."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from serving_models import intent_bundle, rec_bundle


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """``rec`` (RecFlow/1), ``rec2`` (RecFlow/2, other weights), ``intent`` (IntentFlow/1)."""
    root = tmp_path_factory.mktemp("bundles")
    return SimpleNamespace(rec=rec_bundle(root / "rec", "RecFlow/1", seed=1),
                           rec2=rec_bundle(root / "rec2", "RecFlow/2", seed=2),
                           intent=intent_bundle(root / "intent", "IntentFlow/1"),
                           root=root)
