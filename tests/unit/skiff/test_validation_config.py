"""ValidationConfig: documented defaults, SKIFF_* overrides, errors that name the variable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from skiff.config import REPO_ROOT, SkiffConfig, ValidationConfig
from skiff.exceptions import SkiffConfigError


def test_defaults(skiff_home: Path) -> None:
    cfg = SkiffConfig.from_env().validation
    assert cfg == ValidationConfig(reports_dir=skiff_home / "gx")
    assert cfg.suites_dir == REPO_ROOT / "include" / "gx" / "suites"
    assert (cfg.volume_min_ratio, cfg.volume_max_ratio, cfg.volume_history_hours) == (0.2, 5.0, 24)
    assert (cfg.label_rate_min, cfg.label_rate_max) == (0.01, 0.5)
    assert cfg.earliest_event_time == datetime(2018, 1, 1, tzinfo=UTC)
    assert cfg.memory_limit == "2GB"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var, value in {
        "SKIFF_GX_DIR": str(tmp_path / "reports"),
        "SKIFF_VOLUME_HISTORY_HOURS": "48",
        "SKIFF_VOLUME_MIN_RATIO": "0.3",
        "SKIFF_VOLUME_MAX_RATIO": "3",
        "SKIFF_LABEL_RATE_MIN": "0.02",
        "SKIFF_LABEL_RATE_MAX": "0.4",
        "SKIFF_MAX_FUTURE_SKEW_MINUTES": "5",
        "SKIFF_EARLIEST_EVENT_TIME": "2019-06-01T00:00:00Z",
        "SKIFF_MAX_DUPLICATE_SHARE": "0",
        "SKIFF_MAX_UNKNOWN_SKU_SHARE": "0.25",
        "SKIFF_MAX_OUT_OF_ORDER_SHARE": "0.1",
        "SKIFF_MAX_EVENT_GAP_MINUTES": "60",
        "SKIFF_VALIDATE_MEMORY_LIMIT": " 1.5GiB ",
    }.items():
        monkeypatch.setenv(var, value)
    cfg = ValidationConfig.from_env()
    assert cfg.reports_dir == tmp_path / "reports"
    assert cfg.volume_history_hours == 48
    assert (cfg.volume_min_ratio, cfg.volume_max_ratio) == (0.3, 3.0)
    assert (cfg.label_rate_min, cfg.label_rate_max) == (0.02, 0.4)
    assert cfg.max_future_skew_minutes == 5
    assert cfg.earliest_event_time == datetime(2019, 6, 1, tzinfo=UTC)
    assert (cfg.max_duplicate_share, cfg.max_unknown_sku_share) == (0.0, 0.25)
    assert (cfg.max_out_of_order_share, cfg.max_event_gap_minutes) == (0.1, 60)
    assert cfg.memory_limit == "1.5GiB"


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        pytest.param("SKIFF_VOLUME_MIN_RATIO", "lots", "SKIFF_VOLUME_MIN_RATIO", id="not-a-number"),
        pytest.param("SKIFF_VOLUME_MIN_RATIO", "1.5", "bracket 1", id="min-above-1"),
        pytest.param("SKIFF_VOLUME_MAX_RATIO", "0.5", "bracket 1", id="max-below-1"),
        pytest.param("SKIFF_LABEL_RATE_MIN", "0.6", "SKIFF_LABEL_RATE_MIN", id="band-inverted"),
        pytest.param("SKIFF_MAX_DUPLICATE_SHARE", "1", "SKIFF_MAX_DUPLICATE_SHARE", id="share-1"),
        pytest.param("SKIFF_EARLIEST_EVENT_TIME", "last year", "ISO 8601", id="not-a-time"),
        pytest.param("SKIFF_MAX_EVENT_GAP_MINUTES", "0", ">= 1", id="gap-0"),
        pytest.param("SKIFF_LABEL_RATE_MAX", "nan", "SKIFF_LABEL_RATE_MAX", id="nan"),
        pytest.param("SKIFF_VALIDATE_MEMORY_LIMIT", "half", "SKIFF_VALIDATE_MEMORY_LIMIT",
                     id="memory-not-a-size"),
        pytest.param("SKIFF_VALIDATE_MEMORY_LIMIT", "2", "a number and a unit",
                     id="memory-no-unit"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                                      match: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SkiffConfigError, match=match):
        SkiffConfig.from_env()
