"""Ingest by arrival on DuckDB: the interval's landing files appended once, all or nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from landing_files import (
    browsing,
    catalogue,
    encode,
    landing_path,
    predictions,
    search,
    write_file,
)
from skiff.data import DuckDBWarehouse
from skiff.data.ingest import arrival_state, ingest_arrivals, interval_batch_id
from skiff.data.landing import LandingZone
from skiff.exceptions import DataContractError

H = datetime(2026, 11, 25, 10, tzinfo=UTC)  # the interval [H, H + 1h)
HOUR = timedelta(hours=1)
H_MS = int(H.timestamp() * 1000)
RAW = ("browsing_train", "search_train", "sku_to_content")


@pytest.fixture
def zone_root(tmp_path: Path) -> Path:
    """Files of the hour before the interval, of the interval (two browsing files, one
    search, one catalogue) and of the hour after it."""
    root = tmp_path / "landing"
    write_file(root, "browsing_train", browsing(4, H_MS - HOUR // timedelta(milliseconds=1)),
               "a" * 16)
    write_file(root, "browsing_train", browsing(5, H_MS + 60_000), "b" * 16)
    write_file(root, "browsing_train", browsing(3, H_MS + 1_800_000, "t", late_ms=7_200_000),
               "c" * 16)
    write_file(root, "search_train", search(2, H_MS + 120_000), "d" * 16)
    write_file(root, "sku_to_content", catalogue(H_MS + 5_000), "e" * 16)
    write_file(root, "browsing_train", browsing(6, H_MS + 3_600_000 + 10_000), "f" * 16)
    return root


@pytest.fixture
def zone(zone_root: Path) -> LandingZone:
    return LandingZone.from_uri(zone_root)


@pytest.fixture
def duck(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "w.duckdb")


def _q(duck: DuckDBWarehouse, sql: str) -> list[tuple]:
    with duck.connect() as con:
        return con.execute(sql).fetchall()


def _counts(duck: DuckDBWarehouse) -> dict[str, int | None]:
    return duck.row_counts("raw", [*RAW, "ingest_ledger"])


def test_appends_the_files_that_arrived_in_the_interval(zone, duck) -> None:
    now = datetime(2026, 11, 25, 11, 7, tzinfo=UTC)
    summary = ingest_arrivals(duck, zone, H, H + HOUR, now=now)
    assert summary.batch_id == interval_batch_id(H, H + HOUR)
    assert summary.rows == {"browsing_train": 8, "search_train": 2, "sku_to_content": 3}
    assert [f["table"] for f in summary.files] == ["sku_to_content", "browsing_train",
                                                   "browsing_train", "search_train"]
    (rows, batches, stamp, first, last, late), = _q(duck, """
        select count(*), count(distinct batch_id), min(ingested_at), min(arrival_ts_ms),
               max(arrival_ts_ms), count_if(arrival_ts_ms - server_timestamp_epoch_ms > 3600000)
        from raw.browsing_train""")
    assert (rows, batches, stamp) == (8, 1, now.replace(tzinfo=None))
    assert H_MS <= first and last < H_MS + 3_600_000  # only the interval's arrivals
    assert late == 3  # events that happened two hours before they arrived are kept
    ledger = _q(duck, "select file, size, checksum, table_name, row_count, batch_id, loaded_at "
                      "from raw.ingest_ledger order by file")
    assert [r[0] for r in ledger] == sorted(f["file"] for f in summary.files)
    path = landing_path(zone.uri, "search_train", H_MS + 120_000, "d" * 16)
    data = path.read_bytes()
    assert ("search_train/2026/11/25/10/" + path.name, len(data), hashlib.sha256(data).hexdigest(),
            "search_train", 2, summary.batch_id, now.replace(tzinfo=None)) in ledger


def test_a_file_in_the_ledger_is_skipped_with_a_log_line(zone, duck, caplog) -> None:
    first = ingest_arrivals(duck, zone, H, H + HOUR)
    counts = _counts(duck)
    with caplog.at_level(logging.INFO, logger="skiff.data.ingest"):
        again = ingest_arrivals(duck, zone, H, H + HOUR)
    assert again.files == [] and not any(again.rows.values())
    assert {s["file"] for s in again.skipped} == {f["file"] for f in first.files}
    assert _counts(duck) == counts
    assert sum("is in the ingest ledger: skipped" in r.message for r in caplog.records) == 4


def test_the_same_content_under_another_name_is_skipped(zone, zone_root, duck, caplog) -> None:
    ingest_arrivals(duck, zone, H, H + HOUR)
    loaded = landing_path(zone_root, "browsing_train", H_MS + 60_000, "b" * 16)
    # re-delivered an hour later under another name; and twice within the next hour
    later = H_MS + 3_600_000 + 30_000
    for token in ("1" * 16, "2" * 16):
        copy = landing_path(zone_root, "browsing_train", later, token)
        shutil.copy(loaded, copy)
    fresh = landing_path(zone_root, "search_train", later, "3" * 16)
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_bytes(encode(search(2, later)))
    (fresh.parent / f"{fresh.name}.twin").write_bytes(b"not a landing name")
    with caplog.at_level(logging.INFO, logger="skiff.data.ingest"):
        summary = ingest_arrivals(duck, zone, H + HOUR, H + 2 * HOUR)
    assert summary.rows["browsing_train"] == 6 and summary.rows["search_train"] == 2
    reasons = [s["reason"] for s in summary.skipped]
    assert reasons == [f"same content as browsing_train/2026/11/25/10/{loaded.name}"] * 2
    assert sum("re-delivered, skipped" in r.message for r in caplog.records) == 2


def test_identical_files_within_one_interval_load_once(zone_root, tmp_path) -> None:
    root = tmp_path / "twins"
    rows = browsing(5, H_MS + 60_000)
    for token in ("a" * 16, "b" * 16):
        write_file(root, "browsing_train", rows, token)
    duck = DuckDBWarehouse(tmp_path / "twins.duckdb")
    summary = ingest_arrivals(duck, LandingZone.from_uri(root), H, H + HOUR)
    assert summary.rows["browsing_train"] == 5 and len(summary.skipped) == 1


BAD_LINES = [
    pytest.param({"unknown_field": 1}, "unknown_field", id="unexpected-field"),
    pytest.param({"server_timestamp_epoch_ms": "yesterday"}, "", id="text-for-epoch-ms"),
    pytest.param({"session_id_hash": None}, "session_id_hash", id="missing-session-id"),
    pytest.param({"arrival_ts_ms": None}, "arrival_ts_ms", id="missing-arrival"),
]


@pytest.mark.parametrize(("change", "named"), BAD_LINES)
def test_a_file_of_the_wrong_contract_fails_the_interval_naming_it(
        zone, zone_root, duck, change, named) -> None:
    rows = browsing(3, H_MS + 600_000, "u")
    rows[1] = {**rows[1], **change}
    bad = write_file(zone_root, "browsing_train", rows, "9" * 16)
    with pytest.raises(DataContractError) as raised:
        ingest_arrivals(duck, zone, H, H + HOUR)
    assert bad.name in str(raised.value) and named in str(raised.value)
    assert _counts(duck) == {t: 0 for t in (*RAW, "ingest_ledger")}  # nothing of the interval


def test_a_file_that_is_not_gzip_fails_naming_it(zone, zone_root, duck) -> None:
    bad = landing_path(zone_root, "search_train", H_MS + 900_000, "8" * 16)
    bad.write_bytes(json.dumps(search(1, H_MS + 900_000)[0]).encode())
    with pytest.raises(DataContractError, match=bad.name):
        ingest_arrivals(duck, zone, H, H + HOUR)
    assert _counts(duck)["search_train"] == 0


def test_a_half_written_temp_file_is_never_read(zone, zone_root, duck) -> None:
    final = landing_path(zone_root, "browsing_train", H_MS + 1_000_000, "7" * 16)
    temp = final.with_name(f".{final.name}.tmp")
    temp.write_bytes(gzip.compress(b'{"session_id_hash": "half')[:20])  # cut mid-write
    summary = ingest_arrivals(duck, zone, H, H + HOUR)
    assert summary.rows["browsing_train"] == 8
    assert temp.name not in json.dumps(summary.files + summary.skipped)


def test_an_empty_interval_appends_nothing(zone, duck) -> None:
    summary = ingest_arrivals(duck, zone, H + 5 * HOUR, H + 6 * HOUR)
    assert summary.files == [] and summary.skipped == []
    assert summary.rows == {t: 0 for t in RAW}
    assert _counts(duck) == {t: 0 for t in (*RAW, "ingest_ledger")}  # tables made, empty


def test_a_loaded_file_that_changed_is_not_loaded_again(zone, zone_root, duck, caplog) -> None:
    ingest_arrivals(duck, zone, H, H + HOUR)
    path = landing_path(zone_root, "browsing_train", H_MS + 60_000, "b" * 16)
    path.write_bytes(encode(browsing(9, H_MS + 60_000)))
    with caplog.at_level(logging.WARNING, logger="skiff.data.ingest"):
        summary = ingest_arrivals(duck, zone, H, H + HOUR)
    assert not any(summary.rows.values())
    assert any("is not loaded again" in r.message and path.name in r.message
               for r in caplog.records)


def test_a_multi_hour_interval_takes_every_hour(zone, duck) -> None:
    summary = ingest_arrivals(duck, zone, H - HOUR, H + 2 * HOUR)
    assert summary.rows["browsing_train"] == 4 + 8 + 6


def test_bad_interval(zone, duck) -> None:
    with pytest.raises(ValueError, match="must be after its start"):
        ingest_arrivals(duck, zone, H, H)


def test_arrival_state(zone) -> None:
    assert arrival_state(zone, H, H + HOUR) == {"files": 3, "moved_on": True}
    assert arrival_state(zone, H + HOUR, H + 2 * HOUR) == {"files": 1, "moved_on": False}
    assert arrival_state(zone, H + 3 * HOUR, H + 4 * HOUR) == {"files": 0, "moved_on": False}


def test_landing_uri_must_be_a_folder_or_s3() -> None:
    from skiff.exceptions import SkiffConfigError

    with pytest.raises(SkiffConfigError, match="SKIFF_LANDING_URI"):
        LandingZone.from_uri("gs://bucket/landing")
    with pytest.raises(SkiffConfigError, match="names no bucket"):
        LandingZone.from_uri("s3:///landing")


def test_a_raw_table_made_before_arrival_ts_ms_gets_it(tmp_path) -> None:
    duck = DuckDBWarehouse(tmp_path / "old.duckdb")
    with duck.connect() as con:  # the raw table as it was made before arrival_ts_ms
        con.execute("create schema raw")
        con.execute("create table raw.search_train (session_id_hash varchar, query_vector "
                    "varchar, clicked_skus_hash varchar, product_skus_hash varchar, "
                    "server_timestamp_epoch_ms bigint, batch_id varchar, ingested_at timestamp)")
        con.execute("insert into raw.search_train values ('s', '[1.0]', null, null, 1, 'old', "
                    "now())")
    root = tmp_path / "landing"
    write_file(root, "search_train", search(2, H_MS + 10), "a" * 16)
    ingest_arrivals(duck, LandingZone.from_uri(root), H, H + HOUR)
    assert _q(duck, "select batch_id, arrival_ts_ms is null from raw.search_train "
                    "order by batch_id desc") == [("old", True),
                                                  (interval_batch_id(H, H + HOUR), False),
                                                  (interval_batch_id(H, H + HOUR), False)]


# ------------------------------------------------------------------ sub-hour intervals
MINUTE = timedelta(minutes=1)


def test_a_file_goes_to_the_interval_of_its_first_arrival(tmp_path) -> None:
    """At a 5-minute boundary: a file whose first event arrived at 10:04:59.999 (and whose
    later events arrived after 10:05) is [10:00, 10:05)'s; one from 10:05:00.000 the next's."""
    root = tmp_path / "landing"
    before = write_file(root, "browsing_train", browsing(3, H_MS + 5 * 60_000 - 1), "a" * 16)
    after = write_file(root, "browsing_train", browsing(2, H_MS + 5 * 60_000), "b" * 16)
    zone = LandingZone.from_uri(root)
    assert [f.name for f in zone.list("browsing_train", H, H + 5 * MINUTE)] == [before.name]
    assert [f.name for f in zone.list("browsing_train", H + 5 * MINUTE, H + 10 * MINUTE)] == [
        after.name]
    assert [f.name for f in zone.list("browsing_train", H, H + HOUR)] == [before.name,
                                                                          after.name]
    duck = DuckDBWarehouse(tmp_path / "w.duckdb")
    first = ingest_arrivals(duck, zone, H, H + 5 * MINUTE)
    second = ingest_arrivals(duck, zone, H + 5 * MINUTE, H + 10 * MINUTE)
    assert (first.rows["browsing_train"], second.rows["browsing_train"]) == (3, 2)
    assert first.batch_id == interval_batch_id(H, H + 5 * MINUTE) != second.batch_id
    assert ingest_arrivals(duck, zone, H, H + HOUR).files == []  # the hour holds no more


def test_a_sub_hour_interval_not_on_the_hour(tmp_path) -> None:
    """[10:55, 11:05) takes the end of hour 10's folder and the start of hour 11's."""
    root = tmp_path / "landing"
    names = [write_file(root, "search_train", search(1, H_MS + m * 60_000), f"{m:016x}").name
             for m in (54, 55, 59, 60, 64, 65)]
    zone = LandingZone.from_uri(root)
    listed = zone.list("search_train", H + 55 * MINUTE, H + 65 * MINUTE)
    assert [f.name for f in listed] == names[1:5]
    assert [f.hour.hour for f in listed] == [10, 10, 11, 11]


@pytest.mark.parametrize(("name", "expected"), [
    pytest.param("skiff-collect-2026-11-25-10-04-59-aaaaaaaaaaaaaaaa.ndjson.gz",
                 H_MS + 299_000, id="collector"),
    pytest.param("skiff-emit-2026-11-25-10-30-00-0123456789abcdef.ndjson.gz",
                 H_MS + 1_800_000, id="emitter"),
    pytest.param("skiff-collect-1-2026-11-25-10-07-08-3f2a9c1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
                 ".ndjson.gz", H_MS + 428_000, id="firehose"),
    pytest.param("catalogue.ndjson.gz", H_MS, id="no-time-in-the-name"),
    pytest.param("skiff-collect-2026-11-25-11-00-00-aaaaaaaaaaaaaaaa.ndjson.gz", H_MS,
                 id="time-outside-its-folder"),
    pytest.param("skiff-collect-2026-13-45-10-00-00-aaaaaaaaaaaaaaaa.ndjson.gz", H_MS,
                 id="not-a-date"),
])
def test_first_arrival_from_the_name(name, expected) -> None:
    from skiff.data.landing import first_arrival_ms

    assert first_arrival_ms(name, H) == expected


def test_the_collector_moved_on_once_a_file_starts_at_or_after_the_end(tmp_path) -> None:
    root = tmp_path / "landing"
    zone = LandingZone.from_uri(root)
    end, end_ms = H + 5 * MINUTE, H_MS + 5 * 60_000
    write_file(root, "browsing_train", browsing(9, end_ms - 1_000), "a" * 16)  # runs past end
    assert arrival_state(zone, H, end) == {"files": 1, "moved_on": False}
    write_file(root, "search_train", search(1, end_ms), "b" * 16)  # first arrival at the end
    assert arrival_state(zone, H, end) == {"files": 1, "moved_on": True}
    # an interval ending at 10:55, quiet until the hour: the next file, from 11:00:30, is in
    # the next hour's folder
    assert arrival_state(zone, H + 50 * MINUTE, H + 55 * MINUTE)["moved_on"] is False
    write_file(root, "browsing_train", browsing(1, H_MS + 3_600_000 + 30_000), "c" * 16)
    assert arrival_state(zone, H + 50 * MINUTE, H + 55 * MINUTE) == {"files": 0,
                                                                     "moved_on": True}


def test_landed_predictions_reach_raw_predictions(zone_root, duck) -> None:
    """The model server's prediction log lands like the shoppers' events and is appended to
    raw.predictions in the same interval's transaction; the shoppers' counts are unchanged."""
    write_file(zone_root, "predictions", predictions(4, H_MS + 90_000), "p" * 16)
    summary = ingest_arrivals(duck, LandingZone.from_uri(zone_root), H, H + HOUR)
    assert summary.rows == {"browsing_train": 8, "search_train": 2, "sku_to_content": 3,
                            "predictions": 4}
    rows = _q(duck, "select request_id, model, output_items, latency_ms, batch_id, "
                    "arrival_ts_ms - served_at from raw.predictions order by request_id")
    assert [r[:4] for r in rows] == [(f"p-{i}", "rec", "['sku-c']", 4.5) for i in range(4)]
    assert {r[4] for r in rows} == {summary.batch_id} and {r[5] for r in rows} == {500}
