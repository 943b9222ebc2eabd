"""The landing zone: layout by arrival hour, atomic files, listing, the NDJSON.gz format; S3."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from collect_events import T0_MS, browsing_event, search_event
from skiff.data.contract import BROWSING, check_event
from skiff.data.landing import (
    LandingZone,
    LocalLandingZone,
    S3LandingZone,
    decode_events,
    encode_events,
    encode_lines,
    is_landing_name,
    landing_name,
)
from skiff.exceptions import DataContractError, SkiffConfigError

H10 = datetime(2026, 11, 25, 10, tzinfo=UTC)


def _file_bytes(events: list[dict], arrival_ms: int = T0_MS) -> bytes:
    lines = []
    for event in events:
        row, reason = check_event(BROWSING, event)
        assert reason is None
        lines.append(json.dumps({**row, "arrival_ts_ms": arrival_ms}).encode())
    return encode_lines(lines)


def test_names_follow_the_firehose_layout() -> None:
    name = landing_name(T0_MS + 61_500, "0123456789abcdef")
    assert name == "skiff-collect-2026-11-25-10-01-01-0123456789abcdef.ndjson.gz"
    assert len(landing_name(T0_MS)) == len(name) and landing_name(T0_MS) != landing_name(T0_MS)
    with pytest.raises(ValueError, match="16 lowercase hex"):
        landing_name(T0_MS, "XYZ")
    assert is_landing_name(name)
    assert not is_landing_name(f".{name}.tmp") and not is_landing_name("x.ndjson")
    # what Firehose writes with FileExtension .ndjson.gz is taken too
    assert is_landing_name("skiff-browsing-train-1-2026-11-25-10-00-00-4f1e.ndjson.gz")


def test_local_write_list_read(tmp_path: Path) -> None:
    zone = LandingZone.from_uri(tmp_path / "landing")
    assert isinstance(zone, LocalLandingZone)
    data = _file_bytes([browsing_event(i, T0_MS) for i in range(3)])
    name = landing_name(T0_MS, "a" * 16)
    file = zone.write("browsing_train", H10 + timedelta(minutes=59, seconds=59), name, data)
    assert file.hour == H10 and file.size == len(data)
    assert Path(file.uri) == tmp_path / "landing/browsing_train/2026/11/25/10" / name
    assert file.key == f"browsing_train/2026/11/25/10/{name}"
    later = zone.write("browsing_train", H10 + timedelta(hours=1), landing_name(T0_MS + 3_600_000),
                       data)
    # [start, end) takes the hours starting in it, oldest first
    assert zone.list("browsing_train", H10, H10 + timedelta(hours=2)) == [file, later]
    assert zone.list("browsing_train", H10, H10 + timedelta(hours=1)) == [file]
    assert zone.list("browsing_train", H10 + timedelta(minutes=1), H10 + timedelta(hours=2)) == [
        later]
    assert zone.list("search_train", H10, H10 + timedelta(hours=2)) == []
    naive = datetime(2026, 11, 25, 10)  # naive means UTC
    assert zone.list("browsing_train", naive, naive + timedelta(hours=1)) == [file]
    assert zone.read(file) == data
    # the same name again replaces the file (a re-rolled segment), never adds one
    zone.write("browsing_train", H10, name, data)
    assert len(zone.list("browsing_train", H10, H10 + timedelta(hours=1))) == 1


def test_readers_never_see_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    zone = LocalLandingZone(tmp_path)
    data = _file_bytes([browsing_event(0, T0_MS)])
    folder = tmp_path / "browsing_train/2026/11/25/10"
    folder.mkdir(parents=True)
    # what a writer leaves mid-way (temp name) and stray files are not listed
    (folder / ".skiff-collect-x.ndjson.gz.tmp").write_bytes(data[:10])
    (folder / "notes.txt").write_text("x")

    def crash(src: object, dst: object) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        zone.write("browsing_train", H10, landing_name(T0_MS), data)
    monkeypatch.undo()
    assert zone.list("browsing_train", H10, H10 + timedelta(hours=1)) == []
    zone.write("browsing_train", H10, landing_name(T0_MS), data)
    assert len(zone.list("browsing_train", H10, H10 + timedelta(hours=1))) == 1


def test_bad_uris_and_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SkiffConfigError, match="names no bucket"):
        LandingZone.from_uri("s3://")
    with pytest.raises(SkiffConfigError, match="use a folder or s3://"):
        LandingZone.from_uri("gs://bucket/x")
    zone = LocalLandingZone(tmp_path)
    with pytest.raises(ValueError, match="not a landing file name"):
        zone.write("browsing_train", H10, ".hidden.ndjson.gz", b"")
    with pytest.raises(ValueError, match="not a contract table"):
        zone.write("clicks", H10, landing_name(T0_MS), b"")


def test_decode_gives_the_contract_columns_and_arrival() -> None:
    table = decode_events("browsing_train", _file_bytes([browsing_event(i, T0_MS + i)
                                                          for i in range(4)], T0_MS + 99))
    assert table.schema.names == [*BROWSING.columns, "arrival_ts_ms"]
    assert table.schema.field("server_timestamp_epoch_ms").type == pa.int64()
    assert table.num_rows == 4 and table.column("arrival_ts_ms").to_pylist() == [T0_MS + 99] * 4
    assert table.column("product_action").to_pylist() == ["detail", None, "detail", None]
    search = json.dumps({**check_event("search_train", search_event(0, T0_MS))[0],
                         "arrival_ts_ms": T0_MS}).encode()
    assert decode_events("search_train", encode_lines([search])).num_rows == 1
    assert decode_events("browsing_train", encode_lines([])).num_rows == 0
    rows = table.to_pylist()
    assert decode_events("browsing_train", encode_events(rows)).to_pylist() == rows


@pytest.mark.parametrize("data, message", [
    pytest.param(b"not gzip", "f.ndjson.gz: not a complete gzip file", id="not-gzip"),
    pytest.param(gzip.compress(b'{"a": 1')[:-4], "not a complete gzip file", id="truncated"),
    pytest.param(gzip.compress(b"{}\n{oops\n"), "f.ndjson.gz line 1: arrival_ts_ms: missing",
                 id="no-arrival"),
    pytest.param(gzip.compress(b'{"arrival_ts_ms": 1}\n{oops\n'),
                 "f.ndjson.gz line 1: session_id_hash: missing (required)", id="contract"),
    pytest.param(gzip.compress(json.dumps({**browsing_event(0, T0_MS), "arrival_ts_ms": 1})
                               .encode() + b"\n{oops\n"), "f.ndjson.gz line 2: not JSON",
                 id="bad-line"),
    pytest.param(gzip.compress(json.dumps({**search_event(0, T0_MS), "arrival_ts_ms": 1})
                               .encode()), "line 1: query_vector: not a field of browsing_train",
                 id="wrong-table"),
])
def test_decode_names_the_file_line_and_field(data: bytes, message: str) -> None:
    with pytest.raises(DataContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_events("browsing_train", data, name="f.ndjson.gz")


# --------------------------------------------------------------------------- S3 (moto server)

@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """A moto server on 127.0.0.1 with a ``landing`` bucket; its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_DEFAULT_REGION", "us-east-1")):
            mp.setenv(var, value)
        import boto3

        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="landing")
        yield url
    server.stop()


@pytest.mark.integration
def test_s3_write_list_read(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)  # the standard variable boto3 honours
    zone = LandingZone.from_uri("s3://landing/zone/")
    assert isinstance(zone, S3LandingZone) and zone.uri == "s3://landing/zone"
    data = _file_bytes([browsing_event(i, T0_MS) for i in range(5)])
    name = landing_name(T0_MS, "b" * 16)
    file = zone.write("browsing_train", H10 + timedelta(minutes=30), name, data)
    assert file.uri == f"s3://landing/zone/browsing_train/2026/11/25/10/{name}"
    later = zone.write("browsing_train", H10 + timedelta(hours=1), landing_name(T0_MS), data)
    client = zone.client
    # objects that are not landing files, and other hours' files, are not listed
    client.put_object(Bucket="landing", Key="zone/browsing_train/2026/11/25/10/.tmp.ndjson.gz",
                      Body=b"")
    client.put_object(Bucket="landing", Key="zone/browsing_train/2026/11/25/10/x/y.ndjson.gz",
                      Body=b"")
    assert zone.list("browsing_train", H10, H10 + timedelta(hours=1)) == [file]
    assert zone.list("browsing_train", H10, H10 + timedelta(hours=2)) == [file, later]
    assert zone.read(file) == data
    assert decode_events("browsing_train", zone.read(file)).num_rows == 5
    # an explicit endpoint works without the variable
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    other = LandingZone.from_uri("s3://landing", endpoint_url=moto_s3)
    assert other.list("browsing_train", H10, H10 + timedelta(hours=1)) == []
    relisted = LandingZone.from_uri("s3://landing/zone", endpoint_url=moto_s3)
    assert relisted.list("browsing_train", H10, H10 + timedelta(hours=1)) == [file]
