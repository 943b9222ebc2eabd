"""A run's parameters: the window, thresholds from the configuration, the volume reference."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from skiff.config import SkiffConfig, ValidationConfig
from skiff.data import TABLES, DuckDBWarehouse
from skiff.validate.parameters import (
    ValidationWindow,
    VolumeReference,
    fetch_parameters,
    raw_contract_columns,
    allow_duplicates,
    suite_parameters,
    volume_reference,
    volume_span,
)

HOUR = 3_600_000


def test_thresholds_come_from_the_configuration(specs, params, window) -> None:
    custom = SkiffConfig(validation=ValidationConfig(
        label_rate_min=0.05, label_rate_max=0.42, max_duplicate_share=0.03,
        max_unknown_sku_share=0.2, max_event_gap_minutes=45, max_future_skew_minutes=30,
        earliest_event_time=datetime(2019, 1, 1, tzinfo=UTC), volume_min_ratio=0.5,
        volume_max_ratio=3.0, max_out_of_order_share=0.1))
    values = params(custom)
    kwargs = {(name, e["meta"]["defect"]): e["kwargs"]
              for name, spec in specs.items() for e in spec.render(values).expectations}
    assert kwargs[("fct_sessions", "label_rate")] == {
        "column": "add_label", "min_value": 0.05, "max_value": 0.42}
    assert kwargs[("browsing_train", "duplicate_events")]["mostly"] == pytest.approx(0.97)
    assert kwargs[("int_session_events", "unknown_skus")]["mostly"] == pytest.approx(0.8)
    assert kwargs[("int_session_events", "duplicate_session_ids")]["max_value"] == 45 * 60
    assert kwargs[("fct_sessions", "out_of_order_events")]["mostly"] == pytest.approx(0.9)
    assert kwargs[("browsing_train", "future_timestamps")]["max_value"] == int(
        (window.now + timedelta(minutes=30)).timestamp() * 1000)
    assert kwargs[("browsing_train", "ancient_timestamps")]["min_value"] == int(
        datetime(2019, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert kwargs[("volume", "volume_drop")]["min_value"] == 500
    assert kwargs[("volume", "volume_spike")]["max_value"] == 3000


def test_future_cutoff_is_the_later_of_now_and_the_interval_end(config, window) -> None:
    early = ValidationWindow(window.start, window.end, now=window.start)  # a run before its end
    cutoff = suite_parameters(config, early)["future_cutoff_ms"]
    assert cutoff == early.end_ms + 10 * 60_000
    assert suite_parameters(config, window)["future_cutoff_ms"] == int(
        (window.now + timedelta(minutes=10)).timestamp() * 1000)


def test_volume_reference_counts_empty_hours_but_not_the_time_before_the_log(window) -> None:
    first = window.start_ms // HOUR - 5
    counts = {first: 100, first + 1: 120, first + 3: 80, first + 4: 110}  # first + 2: empty
    assert volume_reference(counts, window) == VolumeReference(hours=5, median=100.0)
    assert volume_reference({}, window) == VolumeReference(0, None)


def test_volume_reference_scales_to_the_counted_span(window) -> None:
    """A 5-minute interval (SKIFF_SCHEDULE='*/5 * * * *') is counted over the hour ending with
    it, so it expects the median hour; a two-hour one twice it; the unfinished hour a sub-hour
    interval starts in (10:05's hour 10) is not history."""
    start_hour = window.start_ms // HOUR
    counts = {start_hour - 2: 1200, start_hour - 1: 1200, start_hour: 40}
    five = ValidationWindow(window.start + timedelta(minutes=5),
                            window.start + timedelta(minutes=10), now=window.now)
    assert volume_reference(counts, five) == VolumeReference(hours=2, median=1200.0)
    assert volume_span(five) == (five.end_ms - HOUR, five.end_ms)
    assert volume_span(window) == (window.start_ms, window.end_ms)
    two = ValidationWindow(window.start, window.start + timedelta(hours=2), now=window.now)
    assert volume_reference(counts, two) == VolumeReference(hours=2, median=2400.0)
    assert volume_reference({start_hour: 40}, five) == VolumeReference(0, None)


def _raw_log(path: Path, events_by_hour: dict[int, int]) -> DuckDBWarehouse:
    """A raw log holding only event times: ``events_by_hour[h]`` events in epoch hour ``h``."""
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_raw_tables()
    con = duckdb.connect(str(path))
    for hour, events in events_by_hour.items():
        con.execute("insert into raw.browsing_train (server_timestamp_epoch_ms) "
                    "select ? + i from range(?) t(i)", [hour * HOUR, events])
    con.close()
    return warehouse


def test_fetch_parameters_counts_the_history_only_for_the_volume_suite(
        config, specs, window, tmp_path: Path) -> None:
    first = window.start_ms // HOUR - 5
    warehouse = _raw_log(tmp_path / "w.duckdb", {
        first - config.validation.volume_history_hours: 7,  # before the history: not counted
        first: 100, first + 1: 120, first + 3: 80, first + 4: 110,
        window.start_ms // HOUR: 5_000,  # the interval itself: not its own reference
    })
    values = fetch_parameters(specs["volume"], config, window, warehouse)
    assert values["volume_history_hours"] == 5 and values["volume_median_events"] == 100.0
    ratios = config.validation.volume_min_ratio, config.validation.volume_max_ratio
    assert (values["volume_min_events"], values["volume_max_events"]) == (
        math.ceil(ratios[0] * 100), math.floor(ratios[1] * 100))

    class NoWarehouse:
        def events_per_hour(self, since_ms: int, until_ms: int) -> dict[int, int]:
            raise AssertionError("only a suite with volume_* parameters counts events")

    values = fetch_parameters(specs["browsing_train"], config, window, NoWarehouse())
    assert values["volume_median_events"] is None


def test_raw_contract_columns_follow_the_contract() -> None:
    columns = raw_contract_columns()
    assert len(columns) == sum(len(t.log_schema) for t in TABLES)
    assert "browsing_train.server_timestamp_epoch_ms integer" in columns
    assert "sku_to_content.price_bucket float" in columns
    assert "search_train.ingested_at timestamp" in columns


def test_window_is_aware_and_ordered(window) -> None:
    assert window.label == "2026-11-20T1100Z"
    assert str(window) == "2026-11-20 11:00 UTC .. 2026-11-20 12:00 UTC"
    assert ValidationWindow.of("2026-11-20T11:00:00", "2026-11-20T12:00:00Z", window.now) == window
    with pytest.raises(ValueError, match="after its start"):
        ValidationWindow(window.end, window.start, window.now)


def test_config_objects_are_frozen(config) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.validation.label_rate_max = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("rows, mostly", [
    pytest.param(5000, 0.99, id="large: the share"),
    pytest.param(800, 1 - 20 / 800, id="a night hour: 20 copies"),
    pytest.param(10, 0.0, id="tiny: any"),
    pytest.param(0, 0.99, id="empty"),
])
def test_duplicates_allowed_are_a_share_with_a_floor_of_copies(config, window, rows,
                                                                 mostly) -> None:
    cfg = ValidationConfig(max_duplicate_share=0.01, duplicate_allowance=20)
    params = allow_duplicates(suite_parameters(config, window), rows, cfg)
    assert params["duplicate_mostly"] == pytest.approx(mostly)
    assert params["duplicate_allowance"] == 20
