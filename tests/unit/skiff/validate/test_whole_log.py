"""The range a whole-log validation covers: the raw log's plausible hours."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from skiff.config import SkiffConfig
from skiff.data import DuckDBWarehouse
from skiff.exceptions import SkiffError
from skiff.times import to_epoch_ms
from skiff.validate.whole_log import log_span

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def _ms(text: str) -> int:
    return to_epoch_ms(datetime.fromisoformat(text))


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    warehouse.ensure_raw_tables()
    return warehouse


def test_the_span_is_the_whole_hours_of_plausible_times(warehouse, config: SkiffConfig) -> None:
    with warehouse.connect() as con:
        con.executemany(
            "insert into raw.browsing_train (session_id_hash, server_timestamp_epoch_ms, "
            "arrival_ts_ms) values (?, ?, ?)", [
                ("a", _ms("2026-11-20T10:59:00+00:00"), _ms("2026-11-20T11:05:00+00:00")),
                ("b", _ms("2026-11-24T17:10:00+00:00"), _ms("2026-11-24T17:12:00+00:00")),
                # a replayed bad batch: its broken times stamped as arrival too
                ("c", 1_795_000_000 * 1000 * 1000, 1_795_000_000 * 1000 * 1000),  # microseconds
                ("d", 1_795_000_000, 1_795_000_000),  # seconds: January 1970
            ])
        con.execute("insert into raw.sku_to_content (product_sku_hash, arrival_ts_ms) "
                    f"values ('s', {_ms('2026-11-25T08:00:00+00:00')})")
    start, end = log_span(warehouse, config, now=NOW)
    assert start == datetime(2026, 11, 20, 10, tzinfo=UTC)  # the first event, before its arrival
    assert end == datetime(2026, 11, 25, 9, tzinfo=UTC)  # the end of the last arrival's hour


def test_an_empty_log_has_no_span(warehouse, config: SkiffConfig) -> None:
    with pytest.raises(SkiffError, match="holds no event or arrival time"):
        log_span(warehouse, config, now=NOW)
