"""The collector: answers of /collect, the durable log (group commit, recovery), the roller.

The app runs in-process through Starlette's TestClient (its lifespan included: the log is
opened and recovered, the roller runs, shutdown rolls what is left). The real-socket and
kill -9 proofs are in tests/integration/test_collector_http.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from collect_events import browsing_event, counts, hash64, landed, search_event, session_of
from skiff.config import CollectConfig, ValidationConfig
from skiff.data import collector_log
from skiff.data.collector import create_app
from skiff.data.collector_log import HOUR_MS, CollectorLog
from skiff.data.landing import LocalLandingZone
from skiff.exceptions import SkiffConfigError
from starlette.testclient import TestClient

NOW = datetime(2026, 11, 25, 10, 59, 59, 500_000, tzinfo=UTC).timestamp()


class Clock:
    """A settable clock (seconds since the epoch)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _config(tmp_path: Path, **overrides: Any) -> CollectConfig:
    return CollectConfig(landing_uri=str(tmp_path / "landing"), log_dir=tmp_path / "log",
                         **overrides)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_config(tmp_path))) as test_client:
        yield test_client


def _health(client: TestClient) -> dict[str, Any]:
    return client.get("/health").json()


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _segments(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("segment-*.log"))


# --------------------------------------------------------------------------- answers

def test_a_good_event_is_durable_before_the_answer_and_lands_with_its_arrival(
        tmp_path: Path) -> None:
    with TestClient(create_app(_config(tmp_path))) as client:
        before = int(time.time() * 1000)
        answer = client.post("/collect", json=browsing_event(0))
        after = int(time.time() * 1000)
        assert answer.status_code == 200
        assert answer.json() == {"accepted": 1, "rejected": []}
        assert answer.headers["content-type"] == "application/json"
        # acknowledged = already in the append log on disk, before any roll
        (segment,) = _segments(tmp_path / "log")
        assert segment.name.startswith("segment-000000000001-browsing_train-")
        logged = json.loads(segment.read_bytes())  # the landing line, as it will land
        arrival = logged["arrival_ts_ms"]
        assert before <= arrival <= after and logged["session_id_hash"] == session_of(0)
        assert landed(tmp_path / "landing") == []
    (row,) = landed(tmp_path / "landing")  # shutdown rolled it
    assert row == logged
    assert _segments(tmp_path / "log") == []


def test_a_bad_event_gets_400_naming_the_field_and_nothing_lands(tmp_path: Path) -> None:
    with TestClient(create_app(_config(tmp_path))) as client:
        answer = client.post("/collect", json=browsing_event(0, event_type="click"))
        assert answer.status_code == 400
        assert answer.json() == {
            "error": "invalid_events",
            "message": "The event breaks the contract: event_type: 'click' is not one of "
                       "event_product, pageview.",
            "accepted": 0,
            "rejected": [{"index": 0, "reason": "event_type: 'click' is not one of "
                                                "event_product, pageview"}]}
        ahead = int(time.time() * 1000) + 3_600_000
        future = client.post("/collect", json=browsing_event(1, ahead))
        assert future.status_code == 400 and "is in the future" in future.json()["message"]
        assert _health(client)["accepted_events"] == 0
    assert landed(tmp_path / "landing") == []


def test_a_mixed_batch_accepts_the_good_and_reports_each_bad_by_index(tmp_path: Path) -> None:
    batch = [browsing_event(0), browsing_event(1, session_id_hash="x"), "oops",
             browsing_event(3), browsing_event(4, product_action="view")]
    with TestClient(create_app(_config(tmp_path))) as client:
        answer = client.post("/collect", json=batch)
        assert answer.status_code == 200
        assert answer.json() == {"accepted": 2, "rejected": [
            {"index": 1, "reason": "session_id_hash: 'x' is not a 64-character lowercase hex hash"},
            {"index": 2, "reason": "event: not a JSON object (got str)"},
            {"index": 4, "reason": "product_action: 'view' is not one of detail, add, remove, "
                                   "purchase"}]}
        all_bad = client.post("/collect", json=[{}, {"event_type": "pageview"}])
        assert all_bad.status_code == 400
        assert all_bad.json()["message"] == ("None of the 2 events was accepted; the reasons "
                                             "are listed by index.")
        assert [r["index"] for r in all_bad.json()["rejected"]] == [0, 1]
    assert counts(landed(tmp_path / "landing")) == {session_of(0): 1, session_of(3): 1}


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "text/plain", None])
def test_ndjson_by_content_type_or_sniffed(tmp_path: Path, content_type: str | None) -> None:
    lines = [json.dumps(browsing_event(i)) for i in range(3)] + ["{not json", "",
                                                                  json.dumps(browsing_event(4))]
    headers = {"content-type": content_type} if content_type else {}
    with TestClient(create_app(_config(tmp_path))) as client:
        answer = client.post("/collect", content="\n".join(lines) + "\n", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 4
        (bad,) = answer.json()["rejected"]
        assert bad["index"] == 3 and bad["reason"].startswith("event: the line is not JSON")
        # sniffing also takes a JSON array or object sent as text/plain (sendBeacon)
        beacon = client.post("/collect", content=json.dumps([browsing_event(5)]),
                             headers={"content-type": "text/plain;charset=UTF-8"})
        assert beacon.json() == {"accepted": 1, "rejected": []}
    assert len(landed(tmp_path / "landing")) == 5


def test_search_events_by_their_fields_or_by_table(tmp_path: Path) -> None:
    with TestClient(create_app(_config(tmp_path))) as client:
        mixed = client.post("/collect", json=[search_event(0), browsing_event(1)])
        assert mixed.json() == {"accepted": 2, "rejected": []}
        named = client.post("/collect?table=search_train", json=[search_event(2),
                                                                browsing_event(3)])
        assert named.json()["accepted"] == 1
        assert named.json()["rejected"][0]["reason"].startswith(
            "event_type: not a field of search_train")
        bad = client.post("/collect?table=clicks", json=search_event(4))
        assert bad.status_code == 400 and bad.json()["error"] == "bad_table"
    searches = landed(tmp_path / "landing", "search_train")
    assert counts(searches) == {session_of(0): 1, session_of(2): 1}
    assert searches[0]["query_vector"].startswith("[0.25, -0.5, 1e-05, 0.0, ")
    assert counts(landed(tmp_path / "landing")) == {session_of(1): 1}


def test_prediction_events_are_checked_by_their_contract(tmp_path: Path) -> None:
    """The model server's prediction log: accepted as the contract says, each bad event
    refused with its field named, and landed under predictions/."""
    now = int(time.time() * 1000)
    good = {"request_id": "req-1", "session_index": 0, "served_at": now - 100, "model": "rec",
            "model_version": "RecFlow/3", "endpoint": "skiff-rec",
            "session_id_hash": session_of(0), "session_length": 2,
            "input_tokens": [hash64("sku-1"), "new-sku"], "output_items": [hash64("sku-2")],
            "status": 200, "latency_ms": 3.5, "fallback": 0, "ignored_count": 1,
            "sender_id": "s1", "dropped_before": 0}
    bad = [
        {**good, "request_id": "req-2", "model": "ranker"},
        {**good, "request_id": "req-3", "input_tokens": ["two words"]},
        {**good, "request_id": "req-4", "output_probability": 0.4},  # a rec answers items
        {**good, "request_id": "req-5", "served_at": (now + 3_600_000) * 1000},
        {key: value for key, value in good.items() if key != "dropped_before"},
    ]
    with TestClient(create_app(_config(tmp_path))) as client:
        answer = client.post("/collect?table=predictions", json=[good, *bad])
        assert answer.status_code == 200
        doc = answer.json()
        assert doc["accepted"] == 1
        reasons = [r["reason"] for r in doc["rejected"]]
        assert reasons[0].startswith("model: 'ranker' is not one of intent, rec")
        assert reasons[1].startswith("input_tokens: item 0 ('two words') is not a token")
        assert reasons[2].startswith("output_probability: must be empty when model is rec")
        assert reasons[3].startswith("served_at: ")
        assert reasons[4] == "dropped_before: missing (required)"
        # without ?table=, a request_id says it is a prediction
        inferred = client.post("/collect", json={**good, "request_id": "req-6"})
        assert inferred.json() == {"accepted": 1, "rejected": []}
    rows = landed(tmp_path / "landing", "predictions")
    assert sorted(r["request_id"] for r in rows) == ["req-1", "req-6"]
    assert rows[0]["input_tokens"] == f"['{hash64('sku-1')}', 'new-sku']"


def test_the_pixel(tmp_path: Path) -> None:
    event = browsing_event(0)
    with TestClient(create_app(_config(tmp_path))) as client:
        answer = client.get("/collect", params={**event, "product_action": "detail", "cb": "7"})
        assert answer.status_code == 204 and answer.content == b""
        assert answer.headers["cache-control"] == "no-store"
        pageview = browsing_event(1)
        answer = client.get("/collect", params={k: "" if v is None else v
                                                for k, v in pageview.items()})
        assert answer.status_code == 204
        bad = client.get("/collect", params={**event, "server_timestamp_epoch_ms": "soon"})
        assert bad.status_code == 400
        assert bad.json()["rejected"] == [{"index": 0, "reason": "server_timestamp_epoch_ms: "
                                                                 "'soon' is not an integer"}]
        twice = client.get("/collect?event_type=pageview&event_type=pageview")
        assert twice.status_code == 400 and "Give 'event_type' once" in twice.json()["message"]
        assert client.get("/collect").status_code == 400
        head = client.head("/collect", params=event)  # HEAD must not record an event
        assert head.status_code == 405 and head.headers["allow"] == "GET, POST"
    rows = landed(tmp_path / "landing")
    assert counts(rows) == {session_of(0): 1, session_of(1): 1}
    assert {r["server_timestamp_epoch_ms"] for r in rows} == {event["server_timestamp_epoch_ms"],
                                                              pageview["server_timestamp_epoch_ms"]}


@pytest.fixture
def default_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit for one test, restored after it.

    json's C parser refuses nesting deeper than this limit, which some libraries raise for the
    whole process: pinned, a 1,020-deep body is "too deep" whatever ran before the test.
    """
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.usefixtures("default_recursion_limit")
def test_request_errors_are_json(tmp_path: Path) -> None:
    with TestClient(create_app(_config(tmp_path, max_body_bytes=2048))) as client:
        big = [browsing_event(i) for i in range(20)]
        too_large = client.post("/collect", json=big)
        assert too_large.status_code == 413 and too_large.json()["error"] == "too_large"
        assert "at most 2,048" in too_large.json()["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b"["
            for event in big:
                yield json.dumps(event).encode() + b","
            yield b"{}]"

        streamed = client.post("/collect", content=chunks())
        assert streamed.status_code == 413 and "exceeds 2,048" in streamed.json()["message"]
        for method in ("put", "delete", "patch"):
            answer = client.request(method.upper(), "/collect")
            assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"
            assert answer.json()["error"] == "method_not_allowed"
        assert client.post("/health").status_code == 405
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        cases = [(b"[1, 2", "application/json", 400, "bad_json"),
                 (b"NaN", "application/json", 400, "bad_json"),
                 (b"[" * 1020 + b"]" * 1020, "application/json", 400, "bad_json"),  # too deep
                 (b"", "application/json", 400, "no_events"),
                 (b"[]", "application/json", 400, "no_events"),
                 (b'"event"', "application/json", 400, "bad_json"),
                 (b"<event/>", "application/xml", 415, "unsupported_media_type")]
        for body, content_type, status, error in cases:
            answer = client.post("/collect", content=body, headers={"content-type": content_type})
            assert (answer.status_code, answer.json()["error"]) == (status, error), body[:20]
        assert _health(client)["accepted_events"] == 0


# --------------------------------------------------------------------------- the log

def test_concurrent_requests_share_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    syncs: list[int] = []

    def slow_sync(fd: int) -> None:  # a slow disk: requests pile up behind each sync
        syncs.append(fd)
        time.sleep(0.02)

    monkeypatch.setattr(collector_log, "_sync", slow_sync)

    async def run() -> CollectorLog:
        log = CollectorLog(tmp_path / "log", LocalLandingZone(tmp_path / "landing"),
                           roll_seconds=60, roll_bytes=1 << 20)
        log.open()
        await asyncio.gather(*(log.append([("browsing_train", json.dumps(
            {"session_id_hash": session_of(i)}).encode())]) for i in range(50)))
        return log

    log = asyncio.run(run())
    assert log.stats["accepted_events"] == 50
    assert len(syncs) == log.stats["commits"] <= 3  # 50 requests, a handful of fsyncs
    lines = [json.loads(line) for line in _segments(tmp_path / "log")[0].read_bytes().splitlines()]
    assert len(lines) == 50 and len({line["arrival_ts_ms"] for line in lines}) <= 3


def test_roll_by_size(tmp_path: Path) -> None:
    with TestClient(create_app(_config(tmp_path, roll_bytes=1500))) as client:
        for i in range(12):
            assert client.post("/collect", json=browsing_event(i)).status_code == 200
        # each sealed segment is rolled at once, not at the next time roll
        _wait(lambda: len(landed(tmp_path / "landing")) >= 9)
    files = sorted((tmp_path / "landing").rglob("*.ndjson.gz"))
    sizes = [len(gzip.decompress(f.read_bytes()).splitlines()) for f in files]
    assert len(files) >= 3 and sum(sizes) == 12 and max(sizes) <= 5  # 300-450 bytes an event
    assert counts(landed(tmp_path / "landing")) == {session_of(i): 1 for i in range(12)}


def test_roll_by_time(tmp_path: Path) -> None:
    with TestClient(create_app(_config(tmp_path, roll_seconds=0.3))) as client:
        client.post("/collect", json=browsing_event(0))
        started = time.monotonic()
        _wait(lambda: len(landed(tmp_path / "landing")) == 1, timeout=3)
        assert time.monotonic() - started < 1.5
        client.post("/collect", json=browsing_event(1))
        _wait(lambda: len(landed(tmp_path / "landing")) == 2, timeout=3)
        assert len(list((tmp_path / "landing").rglob("*.ndjson.gz"))) == 2
        _wait(lambda: _health(client)["sealed_segments"] == 0)  # the file shows before the pop


def test_files_never_span_two_arrival_hours(tmp_path: Path) -> None:
    clock = Clock(NOW)  # 10:59:59.5
    validation = ValidationConfig(max_future_skew_minutes=10)
    app = create_app(_config(tmp_path, roll_seconds=3600), validation=validation, clock=clock)
    event_ms = int(NOW * 1000) - 60_000
    with TestClient(app) as client:
        client.post("/collect", json=[browsing_event(0, event_ms), browsing_event(1, event_ms)])
        clock.now = NOW + 0.6  # 11:00:00.1: the next write starts the 11:00 file
        client.post("/collect", json=browsing_event(2, event_ms))
        _wait(lambda: len(landed(tmp_path / "landing")) == 2)  # 10:00 rolled at once
        clock.now = NOW + 3600  # 11:59:59.5 and nothing arrives: the roller cuts at 12:00
        client.post("/collect", json=browsing_event(3, event_ms))
        clock.now = NOW + 3601
        _wait(lambda: len(landed(tmp_path / "landing")) == 4, timeout=3)
        assert _health(client)["active_segment_bytes"] == 0
    hours = {}
    for path in (tmp_path / "landing/browsing_train").rglob("*.ndjson.gz"):
        rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        folder = datetime(*(int(x) for x in path.parent.parts[-4:]), tzinfo=UTC)
        assert {r["arrival_ts_ms"] // HOUR_MS for r in rows} == {folder.timestamp() * 1000 //
                                                                 HOUR_MS}
        assert path.name.startswith(f"skiff-collect-{folder:%Y-%m-%d-%H}-")
        hours[f"{folder:%H}"] = sorted(r["session_id_hash"] for r in rows)
    assert hours == {"10": sorted([session_of(0), session_of(1)]),
                     "11": sorted([session_of(2), session_of(3)])}


def test_recovery_lands_each_acknowledged_event_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    zone = LocalLandingZone(tmp_path / "landing")

    async def acknowledge(log: CollectorLog, numbers: range) -> None:
        for i in numbers:
            await log.append([("browsing_train", json.dumps(browsing_event(i)).encode())])

    first = CollectorLog(tmp_path / "log", zone, roll_seconds=60, roll_bytes=900)
    first.open()
    asyncio.run(acknowledge(first, range(5)))  # 5 acknowledged, then "killed": never closed
    with _segments(tmp_path / "log")[-1].open("ab") as segment:
        segment.write(b'{"session_id_h')  # a write cut short by the kill
    assert len(_segments(tmp_path / "log")) >= 2
    second = CollectorLog(tmp_path / "log", zone, roll_seconds=60, roll_bytes=900)
    with pytest.raises(SkiffConfigError, match=f"in use by another collector \\(pid {os.getpid()}"):
        second.open()  # one collector per folder
    os.close(first._lock_fd)  # what the kernel does when the killed process goes

    # the restart rolls them; a crash between a landing write and the segment's delete ...
    found = second.open()
    assert found == [int(p.stem.split("-")[1]) for p in _segments(tmp_path / "log")]
    assert second.collector_id == first.collector_id and second._next_seq == first._next_seq
    real_unlink = Path.unlink
    calls = []

    def crash_once(path: Path, missing_ok: bool = False) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise OSError("killed before the delete")
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", crash_once)
    assert asyncio.run(second.land_sealed()) == 0
    assert second.stats["last_landing_error"] == "OSError: killed before the delete"
    assert asyncio.run(second.land_sealed()) == len(found)  # ... rewrites the same file
    monkeypatch.undo()
    assert counts(landed(zone)) == {session_of(i): 1 for i in range(5)}
    assert _segments(tmp_path / "log") == []
    # a segment number is never reused, so no later file can take an earlier one's name
    os.close(second._lock_fd)
    third = CollectorLog(tmp_path / "log", zone, roll_seconds=60, roll_bytes=900)
    assert third.open() == [] and third._next_seq == second._next_seq


def test_a_failed_write_refuses_the_request_and_leaves_no_trace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_sync = collector_log._sync
    failing = threading.Event()

    def sync(fd: int) -> None:
        if failing.is_set():
            raise OSError(28, "No space left on device")
        real_sync(fd)

    monkeypatch.setattr(collector_log, "_sync", sync)
    with TestClient(create_app(_config(tmp_path))) as client:
        assert client.post("/collect", json=browsing_event(0)).status_code == 200
        failing.set()
        refused = client.post("/collect", json=[browsing_event(1), browsing_event(2)])
        assert refused.status_code == 503
        assert refused.json() == {"error": "unavailable", "message": "The events could not be "
                                  "stored; none was accepted. Send them again."}
        failing.clear()
        assert client.post("/collect", json=browsing_event(3)).status_code == 200
    assert counts(landed(tmp_path / "landing")) == {session_of(0): 1, session_of(3): 1}


def test_a_landing_outage_keeps_the_segments_until_it_ends(tmp_path: Path) -> None:
    class Flaky(LocalLandingZone):
        down = True

        def write(self, *args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionError("S3 unreachable")
            return super().write(*args, **kwargs)

    zone = Flaky(tmp_path / "landing")
    app = create_app(_config(tmp_path, roll_seconds=0.1), landing=zone)
    with TestClient(app) as client:
        client.post("/collect", json=browsing_event(0))
        _wait(lambda: _health(client)["status"] == "degraded")
        health = _health(client)
        assert health["last_landing_error"] == "ConnectionError: S3 unreachable"
        assert health["sealed_segments"] == 1 and len(_segments(tmp_path / "log")) == 1
        assert client.post("/collect", json=browsing_event(1)).status_code == 200
        zone.down = False
        _wait(lambda: len(landed(zone)) == 2, timeout=40)
        assert _health(client)["status"] == "ok"
    assert counts(landed(zone)) == {session_of(0): 1, session_of(1): 1}
