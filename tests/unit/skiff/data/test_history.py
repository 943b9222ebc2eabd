"""skiff init's history: the shoppers' past hours as landing files, all but the last interval ingested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from skiff.data import DuckDBWarehouse, Emitter, LandingZone
from skiff.data.history import META_FILE, History, init_history, last_interval
from skiff.data.landing import first_arrival_ms
from skiff.exceptions import SkiffConfigError
from skiff.times import to_epoch_ms

NOW = datetime(2026, 11, 25, 14, 17, 30, tzinfo=UTC)


@pytest.fixture
def emitter() -> Emitter:
    return Emitter(seed=5, sessions_per_hour=120, products=200)


def _arrivals(duck: DuckDBWarehouse) -> tuple[int, int, int]:
    with duck.connect() as con:
        return con.execute("select count(*), min(arrival_ts_ms), max(arrival_ts_ms) "
                           "from raw.browsing_train").fetchall()[0]


def test_hourly_history_leaves_the_last_hour_to_the_dag(emitter, tmp_path: Path) -> None:
    zone, duck = LandingZone.from_uri(tmp_path / "landing"), DuckDBWarehouse(tmp_path / "w.duckdb")
    history, summary = init_history(emitter, zone, duck, span_hours=4, now=NOW)
    assert (history.start, history.end) == (NOW.replace(hour=10, minute=0, second=0),
                                            NOW.replace(minute=0, second=0))
    assert history.emitted_to == NOW  # past the hour's end: the DAG sees the zone moved on
    rows, first, last = _arrivals(duck)
    assert rows == summary.rows["browsing_train"] > 0
    assert to_epoch_ms(history.start) <= first and last < to_epoch_ms(NOW.replace(hour=13, minute=0, second=0))
    assert summary.rows["sku_to_content"] == 200  # the catalogue, once
    # the hour left for the DAG, and the next one's first minutes, are in the zone
    left = zone.list("browsing_train", history.end - timedelta(hours=1), history.end)
    assert left and zone.list("browsing_train", history.end, history.emitted_to)
    assert History.read(tmp_path / "landing" / META_FILE) == history


def test_running_again_extends_it_without_writing_or_ingesting_twice(emitter, tmp_path) -> None:
    zone, duck = LandingZone.from_uri(tmp_path / "landing"), DuckDBWarehouse(tmp_path / "w.duckdb")
    first, _ = init_history(emitter, zone, duck, span_hours=3, now=NOW)
    files = sorted(p.name for p in (tmp_path / "landing").rglob("*.gz"))
    rows = _arrivals(duck)[0]
    same, again = init_history(emitter, zone, duck, span_hours=3, now=NOW)
    assert same == first and sum(again.rows.values()) == 0
    assert sorted(p.name for p in (tmp_path / "landing").rglob("*.gz")) == files
    later, more = init_history(emitter, zone, duck, span_hours=3, now=NOW + timedelta(hours=2))
    assert later.start == first.start and later.end == first.end + timedelta(hours=2)
    assert more.rows["browsing_train"] > 0 and more.rows["sku_to_content"] == 0
    with duck.connect() as con:  # every event once: the new hours continue where the last ended
        dupes = con.execute("select count(*) - count(distinct (session_id_hash, "
                            "server_timestamp_epoch_ms, event_type, product_action, "
                            "product_sku_hash, arrival_ts_ms)) from raw.browsing_train").fetchall()
    assert dupes == [(0,)] and _arrivals(duck)[0] > rows


def test_a_sub_hour_schedule_cuts_files_at_its_intervals(emitter, tmp_path) -> None:
    zone, duck = LandingZone.from_uri(tmp_path / "landing"), DuckDBWarehouse(tmp_path / "w.duckdb")
    assert last_interval("*/5 * * * *", NOW) == (NOW.replace(minute=10, second=0),
                                                 NOW.replace(minute=15, second=0))
    history, _ = init_history(emitter, zone, duck, span_hours=2, schedule="*/5 * * * *", now=NOW)
    assert history.end == NOW.replace(minute=15, second=0)
    assert history.emitted_to == history.end + timedelta(minutes=5)
    hour = NOW.replace(minute=0, second=0)
    files = zone.list("browsing_train", hour, history.emitted_to)
    # one file per 5-minute interval (the emitter's, cut where the schedule fires)
    assert len({first_arrival_ms(f.name, hour) // 300_000 for f in files}) == len(files) == 4
    # ingested up to the last interval's start, which is left for the DAG
    assert _arrivals(duck)[2] < to_epoch_ms(history.end - timedelta(minutes=5))
    assert zone.list("browsing_train", history.end - timedelta(minutes=5), history.end)


def test_another_shop_or_an_s3_zone_is_refused(emitter, tmp_path) -> None:
    zone, duck = LandingZone.from_uri(tmp_path / "landing"), DuckDBWarehouse(tmp_path / "w.duckdb")
    init_history(emitter, zone, duck, span_hours=2, now=NOW)
    with pytest.raises(SkiffConfigError, match="seed 5 .* not seed 6"):
        init_history(Emitter(seed=6, sessions_per_hour=120, products=200), zone, duck,
                     span_hours=2, now=NOW)
    s3 = LandingZone.from_uri("s3://bucket/landing", client=object())
    with pytest.raises(SkiffConfigError, match="local landing zone, not s3://bucket/landing"):
        init_history(emitter, s3, duck, span_hours=2, now=NOW)
