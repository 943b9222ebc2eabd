"""The prediction log: events reach a real collector; a dead or stuck one never slows answers.

The collector runs in-process on 127.0.0.1 (uvicorn on a real socket, its own landing
folder); the model server answers with the tiny bundles of ``serving_models``. The "stuck
collector" is a socket that accepts connections into its backlog and never answers: each
post waits its full timeout while requests keep being answered.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from collect_events import hash64, landing_files
from serving_models import SKUS
from skiff.config import CollectConfig, ServingConfig
from skiff.data.collector import make_server
from skiff.data.landing import LocalLandingZone, decode_events
from skiff.serve import ModelServer
from skiff.serve.app import create_app
from skiff.serve.predlog import PredictionLog, parse_attributes
from starlette.testclient import TestClient

SESSION = hash64("shopper-1")


class Collector:
    """``skiff collect``'s server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.config = CollectConfig(landing_uri=str(root / "landing"), log_dir=root / "log",
                                    port=0, roll_seconds=3600)
        self.server, self.sock = make_server(self.config)
        self.url = "http://127.0.0.1:%d/collect" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> Collector:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the collector did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True  # graceful: the log is rolled into the landing zone
        self.thread.join(15)

    def landed(self) -> list[dict[str, Any]]:
        zone = LocalLandingZone(self.config.landing_uri)
        rows: list[dict[str, Any]] = []
        for file in landing_files(zone, "predictions"):
            rows += decode_events("predictions", zone.read(file)).to_pylist()
        return rows


def _server(bundles: SimpleNamespace, predlog: PredictionLog | None) -> ModelServer:
    server = ModelServer(max_batch=1, predlog=predlog)
    server.deploy("skiff-rec", bundles.rec)
    server.deploy("skiff-intent", bundles.intent)
    return server


def _body(sessions: list[list[str]], **extra: Any) -> bytes:
    return json.dumps({"sessions": sessions, **extra}).encode()


def test_parse_attributes_reads_key_value_pairs() -> None:
    assert parse_attributes("request_id=abc; session_id=x,y;junk") == {
        "request_id": "abc", "session_id": "x,y"}
    assert parse_attributes(None) == {}


def test_every_answered_session_lands_in_the_collector(bundles: SimpleNamespace,
                                                       tmp_path: Path) -> None:
    with Collector(tmp_path) as collector:
        predlog = PredictionLog(collector.url, flush_s=0.05)
        server = _server(bundles, predlog)
        try:
            ok = server.invoke("skiff-rec", _body([[SKUS[3], SKUS[4]], ["new-sku"]], k=3),
                               attributes=f"request_id=req-1;session_id={SESSION}")
            assert ok[0] == 200
            assert server.invoke("skiff-intent", _body([["view", "add"]]))[0] == 200
            assert server.invoke("skiff-rec", b"{not json")[0] == 400
            assert server.invoke("skiff-nope", _body([["x"]]))[0] == 404  # no kind: not logged
            deadline = time.monotonic() + 10
            while predlog.sent < 4:
                assert time.monotonic() < deadline, predlog.stats()
                time.sleep(0.05)
            health = TestClient(create_app(server, ServingConfig())).get("/health").json()
            assert health["prediction_log"]["sent"] == 4
            assert health["prediction_log"]["dropped"] == 0
        finally:
            server.close()
    rows = collector.landed()
    assert len(rows) == 4
    first, fallback = sorted((r for r in rows if r["request_id"] == "req-1"),
                             key=lambda r: r["session_index"])
    intent = next(r for r in rows if r["model"] == "intent")
    bad = next(r for r in rows if r["status"] == 400)
    assert first["request_id"] == "req-1" and first["session_index"] == 0
    assert first["session_id_hash"] == SESSION and first["model"] == "rec"
    assert first["model_version"] == "RecFlow/1" and first["endpoint"] == "skiff-rec"
    assert first["input_tokens"] == str([SKUS[3], SKUS[4]]) and first["session_length"] == 2
    assert len(json.loads(first["output_items"].replace("'", '"'))) == 3
    assert first["status"] == 200 and first["fallback"] == 0 and first["latency_ms"] > 0
    assert fallback["request_id"] == "req-1" and fallback["session_index"] == 1
    assert fallback["fallback"] == 1 and fallback["ignored_count"] == 1
    assert fallback["session_id_hash"] is None  # one id given, for the first session
    assert intent["model"] == "intent" and 0 <= intent["output_probability"] <= 1
    assert intent["output_items"] is None and len(intent["request_id"]) == 32  # made here
    assert bad["status"] == 400 and bad["input_tokens"] is None
    assert bad["model_version"] == "RecFlow/1" and bad["dropped_before"] == 0


def test_events_the_contract_refuses_are_counted_not_retried(bundles: SimpleNamespace,
                                                             tmp_path: Path) -> None:
    with Collector(tmp_path) as collector:
        predlog = PredictionLog(collector.url, flush_s=0.05)
        # the collector's checks window: an event "served" in 1999 is refused by the contract
        predlog.clock = lambda: 946_684_800.0
        server = _server(bundles, predlog)
        try:
            server.invoke("skiff-intent", _body([["view"]]))
            deadline = time.monotonic() + 10
            while predlog.rejected < 1:
                assert time.monotonic() < deadline, predlog.stats()
                time.sleep(0.05)
            assert predlog.stats()["sent"] == 0 and predlog.stats()["queued"] == 0
        finally:
            server.close()


@pytest.fixture
def stuck_collector() -> Iterator[str]:
    """A URL whose socket accepts connections (kernel backlog) and never answers."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield "http://127.0.0.1:%d/collect" % sock.getsockname()[1]
    finally:
        sock.close()


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_a_stuck_collector_never_slows_the_answers(bundles: SimpleNamespace,
                                                   stuck_collector: str) -> None:
    """With the sender blocked on a collector that never answers, no answer waits for it
    (a request that did would take the post's 5 s timeout), the request path's p99 stays
    that of a server without a log (a margin for a shared machine's noise), and what does
    not fit the buffer is dropped and counted."""
    body = _body([[SKUS[1], SKUS[2], SKUS[5]]], k=5)
    plain = _server(bundles, None)
    predlog = PredictionLog(stuck_collector, buffer=50, flush_s=0.01, timeout_s=5.0)
    logged = _server(bundles, predlog)
    try:
        for server in (plain, logged):  # warm both
            for _ in range(20):
                server.invoke("skiff-rec", body)
        time.sleep(0.2)  # the sender's first post is on the wire, waiting for its answer
        timings: dict[str, list[float]] = {"plain": [], "logged": []}
        for _ in range(300):  # interleaved: the machine's noise hits both alike
            for name, server in (("plain", plain), ("logged", logged)):
                started = time.perf_counter()
                assert server.invoke("skiff-rec", body)[0] == 200
                timings[name].append((time.perf_counter() - started) * 1000)
        stats = predlog.stats()
        assert stats["posts_failed"] == 0, stats  # the first post was still stuck throughout
        p99 = {name: _p99(values) for name, values in timings.items()}
        assert max(timings["logged"]) < 1000, p99
        assert p99["logged"] <= 2 * p99["plain"] + 10, p99
        assert stats["sent"] == 0 and stats["queued"] == 50, stats
        # 20 warm-up + 300 answers: 50 held, a few in the stuck post, the rest dropped
        assert stats["dropped"] >= 300 - 50, stats
    finally:
        plain.close()
        started = time.monotonic()
        logged.close()  # the stuck post times out, one last post: the rest counted dropped
        assert time.monotonic() - started < 3 * 5.0 + 2
    assert predlog.stats()["dropped"] == 320 and predlog.stats()["queued"] == 0


def test_a_refused_post_keeps_the_events_for_the_next_one(bundles: SimpleNamespace,
                                                          tmp_path: Path) -> None:
    """Down, then up: the events held in the buffer go once the collector is back."""
    with Collector(tmp_path) as collector:
        url = collector.url
        predlog = PredictionLog(url, flush_s=0.05)
        calls = {"n": 0}  # the first two posts get 503, the next ones reach the collector

        def flaky(request: httpx.Request) -> httpx.Response:
            calls["n"] += 1
            if calls["n"] <= 2:
                return httpx.Response(503, json={"error": "unavailable"})
            with httpx.Client() as client:
                return client.post(url, params=dict(request.url.params),
                                   content=request.content, headers=dict(request.headers))

        predlog._transport = httpx.MockTransport(flaky)
        server = _server(bundles, predlog)
        try:
            for _ in range(3):
                server.invoke("skiff-intent", _body([["view", "detail"]]))
            deadline = time.monotonic() + 15
            while predlog.sent < 3:
                assert time.monotonic() < deadline, predlog.stats()
                time.sleep(0.05)
            assert predlog.stats()["posts_failed"] == 2 and predlog.dropped == 0
        finally:
            server.close()
    assert len(collector.landed()) == 3


def test_token_lists_keep_only_contract_shaped_tokens() -> None:
    """The one-match fast path and the token-by-token check agree: a NUL inside a token, a
    space, a number or an over-long token is left out; ``keep`` keeps the latest."""
    from skiff.serve.predlog import _tokens

    good = [SKUS[1], "view", "add_to-cart"]
    assert _tokens(good) == good and _tokens(good, 2) == good[1:]
    assert _tokens(["a\x00b", "ok"]) == ["ok"] and _tokens(["a\x00"]) is None
    assert _tokens(["a b", 3, None, "x" * 129, "y"]) == ["y"]
    assert _tokens(["a", "b", "c d"], 2) == ["a", "b"]  # the latest 2 of the good ones
    assert _tokens([]) is None and _tokens("view") is None
