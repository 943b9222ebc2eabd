"""validate_volume on a 5-minute schedule at night: no false drop, and a real one still fails.

The emitter's shoppers (seed 42, `make run`'s traffic) on 2026-11-29: the interval
00:35-00:40 holds 24 events (of 9 sessions), under 0.2x a twelfth of the day's median hour;
the check used to fail it as a ``volume_drop`` (as the first interval of a night demo did).
It now counts the hour ending with the interval.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from skiff.data import DuckDBWarehouse, Emitter
from skiff.validate.parameters import ValidationWindow, fetch_parameters, volume_span
from skiff.validate.pushdown import validate_in_warehouse

HOUR = 3_600_000
START = datetime(2026, 11, 29, 0, 35, tzinfo=UTC)
FIVE = ValidationWindow(START, START + timedelta(minutes=5), now=START + timedelta(minutes=6))


@pytest.fixture(scope="module")
def night_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw browsing log of the emitter's 25 hours up to 01:00 (about 2 s)."""
    path = tmp_path_factory.mktemp("night") / "w.duckdb"
    DuckDBWarehouse(path).ensure_raw_tables()
    emitter = Emitter(seed=42, sessions_per_hour=450)
    con = duckdb.connect(str(path))
    for hour in range(FIVE.start_ms // HOUR - 24, FIVE.start_ms // HOUR + 1):
        events = emitter.events(hour).browsing  # noqa: F841  (read by the query)
        con.execute("insert into raw.browsing_train by name select * from events")
    con.close()
    return path


def _events(path: Path, since_ms: int, until_ms: int) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select count(*) from raw.browsing_train where "
                           "server_timestamp_epoch_ms >= ? and server_timestamp_epoch_ms < ?",
                           [since_ms, until_ms]).fetchone()[0]


def _validate(path: Path, config, specs) -> dict[str, bool]:
    suite = specs["volume"].render(fetch_parameters(specs["volume"], config, FIVE,
                                                    DuckDBWarehouse(path)))
    with duckdb.connect(str(path)) as con:
        result = validate_in_warehouse(con, suite)
    return {r.expectation_config.meta["defect"]: r.success for r in result.results}


def test_a_quiet_five_minutes_at_night_is_not_a_volume_drop(night_log, config, specs) -> None:
    day = [_events(night_log, h * HOUR, (h + 1) * HOUR)
           for h in range(FIVE.start_ms // HOUR - 24, FIVE.start_ms // HOUR)]
    interval = _events(night_log, FIVE.start_ms, FIVE.end_ms)
    # what the check used to compare: the interval alone against a twelfth of the median hour
    assert 0 < interval < config.validation.volume_min_ratio * sorted(day)[12] / 12
    assert volume_span(FIVE) == (FIVE.end_ms - HOUR, FIVE.end_ms)
    assert _validate(night_log, config, specs) == {
        "empty_hour": True, "volume_drop": True, "volume_spike": True}


def test_a_real_drop_on_a_five_minute_schedule_still_fails(night_log, tmp_path, config,
                                                           specs) -> None:
    path = tmp_path / "w.duckdb"
    path.write_bytes(night_log.read_bytes())
    with duckdb.connect(str(path)) as con:  # the collector lost the 50 minutes before
        con.execute("delete from raw.browsing_train where server_timestamp_epoch_ms >= ? "
                    "and server_timestamp_epoch_ms < ?", [FIVE.end_ms - HOUR + 600_000,
                                                          FIVE.start_ms])
    assert _validate(path, config, specs) == {
        "empty_hour": True, "volume_drop": False, "volume_spike": True}
