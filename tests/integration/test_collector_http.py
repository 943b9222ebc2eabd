"""``skiff collect`` over a real socket: answers, and no acknowledged event lost by a kill -9.

The collector runs as ``skiff collect`` does, in its own process on 127.0.0.1 (uvicorn), and
clients post with httpx. The durability proof streams batches from several threads, kills
the process with SIGKILL mid-stream, restarts it, stops it gracefully, and finds every
acknowledged event in the landing files exactly once (and no event twice).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collect_events import browsing_event, counts, landed, session_of
from skiff.ops.local_airflow import free_port

pytestmark = pytest.mark.integration


class Collector:
    """``skiff collect`` in a subprocess, with its own SKIFF_HOME."""

    def __init__(self, home: Path, **settings: str) -> None:
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SKIFF_HOME": str(home), "SKIFF_COLLECT_PORT": str(self.port),
                    **settings}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Collector:
        self.proc = subprocess.Popen([sys.executable, "-m", "skiff.cli", "collect"],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.home / "collector.log", "ab"))
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, (self.home / "collector.log").read_text()
            assert time.monotonic() < deadline, "the collector did not start"
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait; SIGTERM must end in a graceful shutdown.

        :return: the exit status (uvicorn re-raises the signal it shut down on: -15).
        """
        assert self.proc is not None
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=30)
        if sig == signal.SIGTERM:
            log = (self.home / "collector.log").read_text()
            assert status in (0, -signal.SIGTERM) and log.rstrip().endswith(
                f"Finished server process [{self.proc.pid}]"), log[-2000:]
        return status

    def segments(self) -> list[Path]:
        return sorted((self.home / "collector").glob("segment-*.log"))


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    running = Collector(tmp_path).start()
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop(signal.SIGKILL)


def test_answers_over_a_real_socket(collector: Collector) -> None:
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        ok = client.post("/collect", json=[browsing_event(0), browsing_event(1, event_type="x")])
        assert ok.status_code == 200 and ok.json()["accepted"] == 1
        assert ok.json()["rejected"][0]["index"] == 1
        assert "server" not in ok.headers  # no server banner
        pixel = client.get("/collect", params={k: v for k, v in browsing_event(2).items()
                                               if v is not None})
        assert pixel.status_code == 204
        big = client.post("/collect", content=b"[" + b" " * (2 << 20) + b"]",
                          headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"] == "too_large"
        assert client.delete("/collect").json()["error"] == "method_not_allowed"
        # headers over the parser's cap are refused before the app, and it keeps serving
        try:
            huge = client.get("/health", headers={"x-junk": "j" * 300_000})
            assert huge.status_code == 431 and huge.json()["error"] == "headers_too_large"
        except httpx.TransportError:
            pass  # or the connection is closed while the client still writes
        assert client.get("/health").json()["accepted_events"] == 2
    collector.stop()  # SIGTERM: graceful, rolls what the log holds
    assert counts(landed(collector.home / "landing")) == {session_of(0): 1, session_of(2): 1}
    assert collector.segments() == []


def _start_post(port: int, body: bytes, sent: int) -> http.client.HTTPConnection:
    """A POST /collect whose headers and first ``sent`` bytes of body are on the wire."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/collect")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(message_body=body[:sent])
    return conn


def _until(probe: httpx.Client, done: object, timeout: float = 10.0) -> httpx.Response:
    """GET /health until ``done(answer)``; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe.get("/health")
        if done(answer):  # type: ignore[operator]
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)


def test_over_capacity_is_a_json_503_with_retry_after(tmp_path: Path) -> None:
    """Two requests in progress fill SKIFF_COLLECT_MAX_CONNECTIONS=2; idle connections don't."""
    collector = Collector(tmp_path, SKIFF_COLLECT_MAX_CONNECTIONS="2").start()
    bodies = [json.dumps(browsing_event(i)).encode() for i in range(2)]
    try:
        with httpx.Client(base_url=collector.url, timeout=10) as idle, \
                httpx.Client(base_url=collector.url, timeout=10) as probe:
            assert idle.get("/health").status_code == 200  # now an idle keep-alive connection
            first = _start_post(collector.port, bodies[0], 10)  # its body still coming
            # served with 3 connections open (uvicorn's limit_concurrency=2 would refuse)
            _until(probe, lambda a: a.status_code == 200
                   and a.json()["requests_in_progress"] == 2)  # the POST and this probe
            second = _start_post(collector.port, bodies[1], 10)
            busy = _until(probe, lambda a: a.status_code != 200)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.headers["content-type"] == "application/json"
            assert busy.json()["error"] == "busy" and "MAX_CONNECTIONS" in busy.json()["message"]
            refused = idle.post("/collect", json=browsing_event(9))  # refused before its body
            assert refused.status_code == 503 and refused.json()["error"] == "busy"
            for conn, body in ((first, bodies[0]), (second, bodies[1])):
                conn.send(body[10:])
                answer = conn.getresponse()
                assert answer.status == 200, answer.read()
                assert json.loads(answer.read()) == {"accepted": 1, "rejected": []}
                conn.close()
            health = _until(probe, lambda a: a.status_code == 200)
            assert health.json()["refused_busy"] >= 2 and health.json()["accepted_events"] == 2
    finally:
        collector.stop()
    assert counts(landed(tmp_path / "landing")) == {session_of(0): 1, session_of(1): 1}


def _raw(port: int, data: bytes, chunk: int = 4096) -> bytes:
    """Send ``data`` in ``chunk``-byte writes (as far as the server reads); all it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(data), chunk):
                sock.sendall(data[start:start + chunk])
        except OSError:
            pass  # closed by the server: its answer is still in the receive buffer
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
        return answer


def test_a_request_head_over_16_kib_gets_431_json(collector: Collector) -> None:
    """The cap the httptools parser lacks (h11 had one): counted across reads, any header."""
    def head(junk: int) -> bytes:
        return (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Junk: "
                + b"j" * junk + b"\r\n\r\n")

    fits = _raw(collector.port, head(15_000))
    assert fits.startswith(b"HTTP/1.1 200 "), fits[:200]
    over = _raw(collector.port, head(17_000))
    status, _, body = over.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431 ") and b"content-type: application/json" in status
    assert json.loads(body)["error"] == "headers_too_large"
    endless = _raw(collector.port, b"GET /health HTTP/1.1\r\nX-Junk: " + b"j" * 2_000_000)
    assert endless.startswith(b"HTTP/1.1 431 ")  # answered and closed long before 2 MB
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 50) for i in range(400))
    refused = _raw(collector.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 431 ")
    with httpx.Client(base_url=collector.url, timeout=10) as client:  # still serving
        assert client.post("/collect", json=browsing_event(0)).status_code == 200


def _stream_then_kill_9(home: Path) -> tuple[Collector, set[int], set[int]]:
    """Four clients stream batches to a collector in ``home``; SIGKILL while a segment is open.

    :returns: the dead collector, the events it acknowledged, the events sent.
    """
    # files are cut by size only (every ~100 events), so that at the kill the active segment
    # being appended to is nearly always there: the recovery path is exercised
    settings = {"SKIFF_COLLECT_ROLL_SECONDS": "60", "SKIFF_COLLECT_ROLL_BYTES": "30000"}
    collector = Collector(home, **settings).start()
    acknowledged: set[int] = set()
    sent: set[int] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def client(worker: int) -> None:
        number = worker * 1_000_000
        with httpx.Client(base_url=collector.url, timeout=5) as http:
            while not stop.is_set():
                batch = list(range(number, number + 20))
                number += 20
                with lock:
                    sent.update(batch)
                try:
                    answer = http.post("/collect", json=[browsing_event(i) for i in batch])
                except httpx.TransportError:
                    continue  # the collector is gone: these were never acknowledged
                if answer.status_code == 200:
                    assert answer.json() == {"accepted": 20, "rejected": []}
                    with lock:
                        acknowledged.update(batch)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(acknowledged) < 3000 or not list((home / "landing").rglob("*.gz")):
            assert time.monotonic() < deadline, f"only {len(acknowledged)} events acknowledged"
            time.sleep(0.05)
        # kill while a segment is open (between a roll and the next write there is none):
        # the window left between this check and the signal is a few hundred microseconds
        while not collector.segments():
            assert time.monotonic() < deadline + 10, "no segment open to kill the collector on"
            time.sleep(0.001)
        assert collector.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    # every 200 was sent by the live process, though a client may read it, and count it,
    # after the kill (it sat in the socket's buffer): all of them must land
    return collector, acknowledged, sent


def test_kill_9_mid_stream_loses_no_acknowledged_event_and_duplicates_none(
        tmp_path: Path) -> None:
    # a loaded machine may run a roll between the check and the signal (no segment left):
    # that kill proves nothing about recovery, so it is tried again, three times at most
    for attempt in range(3):
        home = tmp_path / f"try{attempt}"
        home.mkdir()
        collector, acknowledged, sent = _stream_then_kill_9(home)
        if left := collector.segments():
            break
    assert left, "three kills left no segment: the recovery path was not exercised"
    # a segment left may be empty, or rolled but not yet deleted (the crash window that
    # rolling again covers by rewriting the same file): what counts is that its lines land
    in_segments = {json.loads(line)["session_id_hash"] for path in left
                   for line in path.read_bytes().split(b"\n")[:-1]}

    collector.start()  # recovers the segments left
    collector.stop()
    assert collector.segments() == []
    landed_counts = counts(landed(home / "landing"))
    assert in_segments <= set(landed_counts)
    duplicated = {k: n for k, n in landed_counts.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events landed twice"
    missing = {i for i in acknowledged if session_of(i) not in landed_counts}
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events lost"
    # what landed is what was sent: unacknowledged events may land (written, not yet answered)
    assert set(landed_counts) <= {session_of(i) for i in sent}
