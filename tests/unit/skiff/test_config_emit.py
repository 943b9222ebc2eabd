"""``EmitConfig``: the embedded shoppers' settings, their environment variables and errors."""

from __future__ import annotations

import pytest

from skiff.config import EmitConfig, SkiffConfig
from skiff.data.emitter import Emitter
from skiff.exceptions import SkiffConfigError


def test_defaults() -> None:
    cfg = SkiffConfig.from_env().emit
    assert cfg == EmitConfig()
    assert cfg.url == "http://127.0.0.1:8070/collect"
    assert (cfg.seed, cfg.sessions_per_hour, cfg.products) == (42, 450.0, 5_000)
    assert (cfg.duplicate_share, cfg.late_share, cfg.max_lateness_minutes) == (0.002, 0.01, 90)
    assert (cfg.speed, cfg.batch_size, cfg.give_up_s) == (1.0, 500, 120.0)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (("SKIFF_COLLECT_URL", "http://collector:8070/collect"),
                       ("SKIFF_EMIT_SEED", "7"), ("SKIFF_EMIT_SESSIONS_PER_HOUR", "1200.5"),
                       ("SKIFF_EMIT_PRODUCTS", "800"), ("SKIFF_EMIT_DUPLICATE_SHARE", "0.02"),
                       ("SKIFF_EMIT_LATE_SHARE", "0.03"),
                       ("SKIFF_EMIT_MAX_LATENESS_MINUTES", "30"), ("SKIFF_EMIT_SPEED", "60"),
                       ("SKIFF_EMIT_BATCH_SIZE", "50"), ("SKIFF_EMIT_GIVE_UP_S", "5")):
        monkeypatch.setenv(var, value)
    cfg = EmitConfig.from_env()
    assert cfg == EmitConfig("http://collector:8070/collect", 7, 1200.5, 800, 0.02, 0.03, 30,
                             60.0, 50, 5.0)
    emitter = Emitter.from_config(cfg)
    assert (emitter.seed, emitter.sessions_per_hour, emitter.catalogue_table.num_rows) == (
        7, 1200.5, 800)
    assert (emitter.duplicate_share, emitter.late_share, emitter.max_lateness_ms) == (
        0.02, 0.03, 30 * 60_000)


@pytest.mark.parametrize(("var", "value"), [
    pytest.param("SKIFF_COLLECT_URL", "127.0.0.1:8070/collect", id="no-scheme"),
    pytest.param("SKIFF_EMIT_SEED", "-1", id="negative-seed"),
    pytest.param("SKIFF_EMIT_SESSIONS_PER_HOUR", "0", id="no-shoppers"),
    pytest.param("SKIFF_EMIT_PRODUCTS", "10", id="tiny-catalogue"),
    pytest.param("SKIFF_EMIT_DUPLICATE_SHARE", "0.7", id="mostly-duplicates"),
    pytest.param("SKIFF_EMIT_LATE_SHARE", "nan", id="nan"),
    pytest.param("SKIFF_EMIT_MAX_LATENESS_MINUTES", "2", id="lateness-below-the-minimum"),
    pytest.param("SKIFF_EMIT_SPEED", "0", id="stopped-clock"),
    pytest.param("SKIFF_EMIT_BATCH_SIZE", "0", id="empty-batches"),
    pytest.param("SKIFF_EMIT_DRIFT", "longer", id="unknown-drift"),
    pytest.param("SKIFF_EMIT_DRIFT_FROM", "yesterday", id="drift-from-not-a-time"),
    pytest.param("SKIFF_EMIT_PREDICT_URL", "ftp://127.0.0.1/predict", id="predict-not-http"),
    pytest.param("SKIFF_EMIT_PREDICT_SHARE", "1.5", id="share-over-one"),
    pytest.param("SKIFF_EMIT_PREDICT_TIMEOUT_S", "0", id="no-time-to-answer"),
])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str,
                                      value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SkiffConfigError, match=var):
        EmitConfig.from_env()


def test_drift_and_predict_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (EmitConfig().drift, EmitConfig().predict_url, EmitConfig().predict_share) == (
        "", "", 0.5)
    monkeypatch.setenv("SKIFF_EMIT_DRIFT", "Tail")
    monkeypatch.setenv("SKIFF_EMIT_DRIFT_FROM", "2026-11-28T03:00:00Z")
    monkeypatch.setenv("SKIFF_EMIT_PREDICT_URL", "http://127.0.0.1:8000/predict")
    cfg = EmitConfig.from_env()
    assert (cfg.drift, cfg.predict_url) == ("tail", "http://127.0.0.1:8000/predict")
    emitter = Emitter.from_config(cfg)
    assert (emitter.drift, emitter.drift_from_ms) == ("tail", 1795834800000)
