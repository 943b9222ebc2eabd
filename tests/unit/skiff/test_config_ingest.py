"""IngestConfig: where each interval's events come from, the grace wait, and the schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.config import IngestConfig, SkiffConfig
from skiff.exceptions import SkiffConfigError


def test_defaults(skiff_home: Path) -> None:
    cfg = SkiffConfig.from_env().ingest
    assert cfg == IngestConfig.from_env()
    assert cfg.source == "landing"  # skiff init's history, then the collector's files
    assert (cfg.grace_minutes, cfg.poll_seconds, cfg.schedule) == (10, 30, "0 * * * *")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKIFF_INGEST_SOURCE", "Landing")
    monkeypatch.setenv("SKIFF_INGEST_GRACE_MINUTES", "25")
    monkeypatch.setenv("SKIFF_INGEST_POLL_S", "5")
    monkeypatch.setenv("SKIFF_SCHEDULE", "0  */2 * * *")
    cfg = IngestConfig.from_env()
    assert (cfg.source, cfg.grace_minutes, cfg.poll_seconds, cfg.schedule) == (
        "landing", 25, 5, "0 */2 * * *")


@pytest.mark.parametrize("schedule", [
    "0 * * * *", "0 */2 * * *", "0 6 * * 1-5", "@daily", "@hourly",
    # sub-hour: data intervals follow the cron (landing files go by their first arrival)
    "*/5 * * * *", "* * * * *", "30 * * * *", "0,30 * * * *", "*/15 9-17 * * 1-5",
    "10-50/20 * * * *",
])
def test_any_cron_of_whole_minutes(schedule: str) -> None:
    assert IngestConfig(schedule=schedule).schedule == schedule


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        pytest.param("SKIFF_INGEST_SOURCE", "kafka", "SKIFF_INGEST_SOURCE='kafka'", id="source"),
        pytest.param("SKIFF_LANDING_URI", "gs://b/landing", "SKIFF_LANDING_URI", id="uri"),
        pytest.param("SKIFF_INGEST_GRACE_MINUTES", "soon", "SKIFF_INGEST_GRACE_MINUTES",
                     id="grace"),
        pytest.param("SKIFF_INGEST_POLL_S", "0", ">= 1", id="poll"),
        pytest.param("SKIFF_SCHEDULE", "hourly", "SKIFF_SCHEDULE='hourly' is not a cron",
                     id="not-cron"),
        pytest.param("SKIFF_SCHEDULE", "0 25 * * *", "SKIFF_SCHEDULE='0 25 \\* \\* \\*' is not",
                     id="bad-hour"),
        pytest.param("SKIFF_SCHEDULE", "0 * * *", "five fields", id="four-fields"),
        pytest.param("SKIFF_SCHEDULE", "*/30 * * * * *", "seconds\\) field: data intervals "
                     "are whole minutes", id="shorter-than-a-minute"),
        pytest.param("SKIFF_SCHEDULE", "60 * * * *", "is not a cron", id="minute-60"),
        pytest.param("SKIFF_SCHEDULE", "*/0 * * * *", "is not a cron", id="step-0"),
        pytest.param("SKIFF_SCHEDULE", "*/90 * * * *", "fires once an hour, at minute 0",
                     id="step-over-an-hour"),
        pytest.param("SKIFF_SCHEDULE", "*/7 * * * *", "/7 does not divide the hour", id="step-7"),
        pytest.param("SKIFF_SCHEDULE", "50-10 * * * *", "range 50-10 runs backwards",
                     id="backwards"),
        pytest.param("SKIFF_SCHEDULE", "0 0 31 2 *", "never fires", id="february-31"),
        pytest.param("SKIFF_SCHEDULE", "@every 5m", "is not a cron", id="not-a-preset"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                                      match: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SkiffConfigError, match=match):
        SkiffConfig.from_env()
