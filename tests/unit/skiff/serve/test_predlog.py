"""The prediction log: events reach a real collector through the sender process; a dead or
stuck collector never slows answers; the sender never outlives its server.

The collector runs in-process on 127.0.0.1 (uvicorn on a real socket, its own landing
folder: ``tests/collector_server.py``); the model server answers with the tiny bundles of
``serving_models``; the sender is the real child process. The "stuck collector" is a socket
that accepts connections into its backlog and never answers: each post waits its full
timeout while requests keep being answered.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from collect_events import hash64, landing_files
from collector_server import running_collector
from serving_models import SKUS
from skiff.config import ServingConfig
from skiff.data.landing import LocalLandingZone, decode_events
from skiff.serve import ModelServer
from skiff.serve.app import create_app
from skiff.serve.predlog import PredictionLog, RateLimitedWarning, parse_attributes
from starlette.testclient import TestClient

SESSION = hash64("shopper-1")


def _landed(root: Path) -> list[dict[str, Any]]:
    """The ``predictions`` rows a stopped :func:`running_collector` under ``root`` landed."""
    zone = LocalLandingZone(str(root / "landing"))
    rows: list[dict[str, Any]] = []
    for file in landing_files(zone, "predictions"):
        rows += decode_events("predictions", zone.read(file)).to_pylist()
    return rows


def _until(check: Callable[[], bool], predlog: PredictionLog, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, predlog.stats()
        time.sleep(0.05)


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


def test_a_repeated_warning_is_one_line_a_period(caplog) -> None:
    warn = RateLimitedWarning(logging.getLogger("skiff.test"), period_s=0.2)
    with caplog.at_level(logging.WARNING, logger="skiff.test"):
        for n in range(5):
            warn("post failed (%d)", n)
        time.sleep(0.25)
        warn("post failed (%d)", 5)
    assert [r.getMessage() for r in caplog.records] == ["post failed (0)", "post failed (5)"]


def test_every_answered_session_lands_in_the_collector(bundles: SimpleNamespace,
                                                       tmp_path: Path) -> None:
    with running_collector(tmp_path) as url:
        predlog = PredictionLog(url, flush_s=0.05)
        server = _server(bundles, predlog)
        try:
            ok = server.invoke("skiff-rec", _body([[SKUS[3], SKUS[4]], ["new-sku"]], k=3),
                               attributes=f"request_id=req-1;session_id={SESSION}")
            assert ok[0] == 200
            assert server.invoke("skiff-intent", _body([["view", "add"]]))[0] == 200
            assert server.invoke("skiff-rec", b"{not json")[0] == 400
            assert server.invoke("skiff-nope", _body([["x"]]))[0] == 404  # no kind: not logged
            _until(lambda: predlog.stats()["sent"] >= 4, predlog)
            health = TestClient(create_app(server, ServingConfig())).get("/health").json()
            assert health["prediction_log"]["sent"] == 4
            assert health["prediction_log"]["dropped"] == 0
            assert health["prediction_log"]["sender_running"] is True
        finally:
            server.close()
        assert predlog.stats()["sender_running"] is False
    rows = _landed(tmp_path)
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
    assert first["sender_id"] == predlog.sender_id
    assert fallback["request_id"] == "req-1" and fallback["session_index"] == 1
    assert fallback["fallback"] == 1 and fallback["ignored_count"] == 1
    assert fallback["session_id_hash"] is None  # one id given, for the first session
    assert intent["model"] == "intent" and 0 <= intent["output_probability"] <= 1
    assert intent["output_items"] is None and len(intent["request_id"]) == 32  # made here
    assert bad["status"] == 400 and bad["input_tokens"] is None
    assert bad["model_version"] == "RecFlow/1" and bad["dropped_before"] == 0


def test_events_the_contract_refuses_are_counted_not_retried(bundles: SimpleNamespace,
                                                             tmp_path: Path) -> None:
    with running_collector(tmp_path) as url:
        predlog = PredictionLog(url, flush_s=0.05)
        # the collector's checks window: an event "served" in 1999 is refused by the contract
        predlog.clock = lambda: 946_684_800.0
        server = _server(bundles, predlog)
        try:
            server.invoke("skiff-intent", _body([["view"]]))
            _until(lambda: predlog.stats()["rejected"] >= 1, predlog)
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
    (a request that did would take the post's 2 s timeout), the request path's p99 stays
    that of a server without a log (a margin for a shared machine's noise), and what does
    not fit the buffer is dropped and counted."""
    body = _body([[SKUS[1], SKUS[2], SKUS[5]]], k=5)
    plain = _server(bundles, None)
    predlog = PredictionLog(stuck_collector, buffer=50, flush_s=0.01, timeout_s=2.0)
    logged = _server(bundles, predlog)
    try:
        for server in (plain, logged):  # warm both
            for _ in range(20):
                server.invoke("skiff-rec", body)
        # the sender's first post is on the wire, waiting for its answer
        _until(lambda: predlog.stats()["queued"] > 0, predlog)
        timings: dict[str, list[float]] = {"plain": [], "logged": []}
        for _ in range(300):  # interleaved: the machine's noise hits both alike
            for name, server in (("plain", plain), ("logged", logged)):
                started = time.perf_counter()
                assert server.invoke("skiff-rec", body)[0] == 200
                timings[name].append((time.perf_counter() - started) * 1000)
        p99 = {name: _p99(values) for name, values in timings.items()}
        assert max(timings["logged"]) < 1000, p99
        assert p99["logged"] <= 2 * p99["plain"] + 10, p99
        # 20 warm-up + 300 answers: 50 held, a few in the stuck post, the rest dropped
        _until(lambda: predlog.stats()["queued"] == 50 and predlog.stats()["dropped"] >= 250,
               predlog)
        assert predlog.stats()["sent"] == 0, predlog.stats()
    finally:
        plain.close()
        started = time.monotonic()
        logged.close()  # the stuck post times out, one last post: the rest counted dropped
        assert time.monotonic() - started < 3 * 2.0 + 5
    stats = predlog.stats()
    assert stats["dropped"] == 320 and stats["queued"] == 0 and stats["sent"] == 0, stats


@contextmanager
def _flaky_receiver(target: str, failures: int) -> Iterator[tuple[str, dict[str, int]]]:
    """A real HTTP server on 127.0.0.1 answering 503 to the first ``failures`` posts and
    passing the others on to ``target``; yields its URL and the count of posts."""
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls["n"] += 1
            if calls["n"] <= failures:
                status, answer = 503, b'{"error": "unavailable"}'
            else:
                query = self.path.partition("?")[2]
                passed = httpx.post(f"{target}?{query}", content=body,
                                    headers={"Content-Type": self.headers["Content-Type"]})
                status, answer = passed.status_code, passed.content
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/collect" % server.server_address[1], calls
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_post_keeps_the_events_for_the_next_one(bundles: SimpleNamespace,
                                                          tmp_path: Path) -> None:
    """Down, then up: the events held in the buffer go once the collector is back."""
    with running_collector(tmp_path) as url, _flaky_receiver(url, 2) as (flaky, calls):
        predlog = PredictionLog(flaky, flush_s=0.05)
        server = _server(bundles, predlog)
        try:
            for _ in range(3):
                server.invoke("skiff-intent", _body([["view", "detail"]]))
            _until(lambda: predlog.stats()["sent"] >= 3, predlog)
            stats = predlog.stats()
            assert stats["posts_failed"] == 2 and stats["dropped"] == 0, stats
            assert calls["n"] == 3
        finally:
            server.close()
    assert len(_landed(tmp_path)) == 3


def test_a_gone_sender_means_dropped_answers_not_failed_requests(bundles: SimpleNamespace,
                                                                 stuck_collector: str) -> None:
    predlog = PredictionLog(stuck_collector, flush_s=0.05)
    server = _server(bundles, predlog)
    try:
        predlog._child.kill()
        predlog._child.wait(10)
        for _ in range(3):
            assert server.invoke("skiff-intent", _body([["view"]]))[0] == 200
        stats = predlog.stats()
        assert stats["dropped"] == 3 and stats["sender_running"] is False, stats
    finally:
        server.close()


_DIES = """
import sys, time
from skiff.serve.predlog import PredictionLog
log = PredictionLog(sys.argv[1], flush_s=0.05, timeout_s=1.0).start()
print(log._child.pid, flush=True)
time.sleep(60)
"""


def test_the_sender_exits_when_its_server_dies(stuck_collector: str) -> None:
    """A server killed outright (no close) leaves no sender behind: the socket's end of file
    stops it after one last post (here to a collector that never answers: its 1 s timeout)."""
    server = subprocess.Popen([sys.executable, "-c", _DIES, stuck_collector],
                              stdout=subprocess.PIPE, text=True)
    try:
        sender = int(server.stdout.readline())
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{sender}").exists() and \
                Path(f"/proc/{sender}/stat").read_text().split(")")[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the sender outlived its server"
            time.sleep(0.1)
    finally:
        server.kill()
        server.wait()


def test_token_lists_keep_only_contract_shaped_tokens() -> None:
    """The one-match fast path and the token-by-token check agree: a NUL inside a token, a
    space, a number or an over-long token is left out; ``keep`` keeps the latest."""
    from skiff.serve.predlog_sender import _tokens

    good = [SKUS[1], "view", "add_to-cart"]
    assert _tokens(good) == good and _tokens(good, 2) == good[1:]
    assert _tokens(["a\x00b", "ok"]) == ["ok"] and _tokens(["a\x00"]) is None
    assert _tokens(["a b", 3, None, "x" * 129, "y"]) == ["y"]
    assert _tokens(["a", "b", "c d"], 2) == ["a", "b"]  # the latest 2 of the good ones
    assert _tokens([]) is None and _tokens("view") is None
