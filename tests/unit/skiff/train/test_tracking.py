"""W&B offline tracking writes a run folder with config, history and summary, no network."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skiff.train.tracking import _flatten, log_training_run


def test_flatten_nested_metrics() -> None:
    assert _flatten({"model": {"auc": 0.8, "n": 3}, "ok": True, "name": "x", "mrr": 0.2}) == {
        "model/auc": 0.8, "model/n": 3.0, "mrr": 0.2}


def test_offline_run_is_written(monkeypatch: pytest.MonkeyPatch, skiff_home: Path) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    folder = log_training_run("IntentFlow/123", params={"epochs": 2, "data_version": "abc"},
                              metrics={"model": {"roc_auc": 0.71}},
                              history={"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}, tags=["test"])
    assert folder is not None and folder.name.startswith("offline-run-")
    (log,) = folder.glob("*.wandb")  # the record log `wandb sync` uploads later
    # protobuf records: summary items and config values are stored as JSON text. wandb-core,
    # a separate process, may still be flushing the log when finish() returns (seen on a
    # loaded machine: only the file's header was there); it does before its process exits.
    needles = (b"model/roc_auc", b"0.71", b"data_version", b'"abc"', b"val_loss")
    deadline = time.monotonic() + 60
    while not all(n in log.read_bytes() for n in needles) and time.monotonic() < deadline:
        time.sleep(0.2)
    records = log.read_bytes()
    for needle in needles:
        assert needle in records, needle


def test_disabled_mode_logs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert log_training_run("x", params={}, metrics={}) is None
