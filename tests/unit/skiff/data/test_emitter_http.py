"""The emitter over HTTP: fast-forward and live posting, retries, splits, rejections.

The tests post to a small Starlette receiver served by uvicorn on a real socket on 127.0.0.1
(not the collector): it can answer 503 first, refuse large batches with 413 or reject
events, so the client's retries, splits and reports are checked for real.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from skiff.cli import main
from skiff.data.emitter import Emitter
from skiff.data.emitter_http import CollectorClient, post_range, run_live
from skiff.exceptions import DeliveryError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DAY = datetime(2025, 3, 1, tzinfo=UTC)
HOUR_MS = 3_600_000
H14 = int(DAY.timestamp()) // 3600 + 14


def _hour_ms(hour: int) -> int:
    return hour * HOUR_MS


class Receiver:
    """A stand-in collector: records the events of each accepted ``POST /collect``.

    :param down: answer this many requests 503 first.
    :param max_batch: answer 413 to larger batches.
    :param reject: reject each batch's first event with this reason.
    :param reject_all: reject every event of every batch (the collector's 400).
    :param status: answer every request with this status instead.
    """

    def __init__(self, *, down: int = 0, max_batch: int | None = None,
                 reject: str | None = None, reject_all: bool = False,
                 status: int | None = None) -> None:
        self.down, self.max_batch, self.reject, self.status = down, max_batch, reject, status
        self.reject_all = reject_all
        self.events: list[dict] = []
        self.batches: list[int] = []
        self.requests = 0
        self.app = Starlette(routes=[Route("/collect", self.collect, methods=["POST"])])

    async def collect(self, request: Request) -> Response:
        self.requests += 1
        if self.status:
            return JSONResponse({"error": "session_id_hash: missing (required)"}, self.status)
        if self.down:
            self.down -= 1
            return JSONResponse({"error": "unavailable"}, 503)
        events = await request.json()
        if self.max_batch and len(events) > self.max_batch:
            return JSONResponse({"error": "too large"}, 413)
        if self.reject_all:
            self.batches.append(0)
            return JSONResponse({"error": "invalid_events", "accepted": 0, "rejected": [
                {"index": i, "reason": "server_timestamp_epoch_ms: in the future"}
                for i in range(len(events))]}, 400)
        rejected = [{"index": 0, "reason": self.reject}] if self.reject else []
        self.events += events[len(rejected):]
        self.batches.append(len(events))
        return JSONResponse({"accepted": len(events) - len(rejected), "rejected": rejected})


@pytest.fixture
def serve(serve_app: Callable[[object], str]) -> Callable[[Receiver], str]:
    """Serve a :class:`Receiver` with uvicorn on 127.0.0.1; returns its ``/collect`` URL."""
    return lambda receiver: serve_app(receiver.app) + "/collect"


@pytest.fixture(scope="module")
def quiet() -> Emitter:
    """Few shoppers: the HTTP tests post a few thousand events."""
    return Emitter(seed=4, sessions_per_hour=300)


def _expected(shoppers: Emitter, since: int, until: int) -> list[dict]:
    return [row for d in shoppers.deliveries(since, until) for row in d.rows()]


def test_fast_forward_posts_in_arrival_order_and_retries_a_down_collector(
        serve, quiet: Emitter) -> None:
    receiver = Receiver(down=2)
    since, until = _hour_ms(H14), _hour_ms(H14 + 1)
    with CollectorClient(serve(receiver)) as client:
        summary = post_range(quiet, client, since, until, batch_size=400)
    expected = _expected(quiet, since, until)
    assert receiver.events == expected
    assert (summary.events, summary.accepted, summary.rejected) == (len(expected),) * 2 + (0,)
    assert summary.retries == 2 and receiver.requests == summary.requests
    assert max(receiver.batches) == 400 and summary.until_ms == until


def test_a_too_large_batch_is_split(serve, quiet: Emitter) -> None:
    receiver = Receiver(max_batch=150)
    since, until = _hour_ms(H14), _hour_ms(H14) + 20 * 60_000
    with CollectorClient(serve(receiver)) as client:
        summary = post_range(quiet, client, since, until, batch_size=500)
    assert receiver.events == _expected(quiet, since, until)
    assert max(receiver.batches) <= 150 and summary.accepted == len(receiver.events)


def test_rejected_events_are_reported_with_their_index(serve, quiet: Emitter) -> None:
    receiver = Receiver(reject="event_type: 'click' is not one of event_product, pageview")
    since = _hour_ms(H14)
    with CollectorClient(serve(receiver)) as client:
        summary = post_range(quiet, client, since, since + 10 * 60_000, batch_size=100)
    batches = len(receiver.batches)
    assert summary.rejected == batches > 1
    assert summary.accepted == summary.events - batches
    assert summary.reasons[0] == "0: event_type: 'click' is not one of event_product, pageview"


def test_a_batch_rejected_whole_is_counted_not_fatal(serve, quiet: Emitter) -> None:
    receiver = Receiver(reject_all=True)
    since = _hour_ms(H14)
    with CollectorClient(serve(receiver)) as client:
        summary = post_range(quiet, client, since, since + 10 * 60_000, batch_size=100)
    assert summary.events > 100 and summary.rejected == summary.events
    assert summary.accepted == 0 and len(receiver.batches) > 1
    assert summary.reasons == [f"{i}: server_timestamp_epoch_ms: in the future" for i in range(5)]


def test_a_refused_batch_raises_naming_the_answer(serve, quiet: Emitter) -> None:
    url = serve(Receiver(status=400))
    with CollectorClient(url) as client, pytest.raises(DeliveryError, match="HTTP 400.*missing"):
        post_range(quiet, client, _hour_ms(H14), _hour_ms(H14 + 1))


def test_fast_forward_gives_up_on_a_collector_that_stays_down(quiet: Emitter) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/collect"  # bound, never listening
        began = time.monotonic()
        with CollectorClient(url, give_up_s=0.5) as client, pytest.raises(
                DeliveryError, match=f"{url} is unavailable.*gave up"):
            post_range(quiet, client, _hour_ms(H14), _hour_ms(H14 + 1))
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("down", [pytest.param(0, id="up"), pytest.param(3, id="down-first")])
def test_live_posts_what_comes_due_in_order(serve, quiet: Emitter, down: int) -> None:
    receiver = Receiver(down=down)
    start, until = _hour_ms(H14) + 50 * 60_000, _hour_ms(H14 + 1) + 10 * 60_000
    with CollectorClient(serve(receiver), give_up_s=None) as client:
        summary = run_live(quiet, client, start=start, until=until, speed=1_800, tick_s=0.1)
    assert receiver.events == _expected(quiet, start, until)  # across the 15:00 boundary
    assert summary.retries == down and summary.until_ms == until
    assert summary.seconds > 20 * 60 / 1_800  # 20 simulated minutes at 1800x
    if not down:
        assert len(receiver.batches) >= 4  # a batch a tick


def test_live_clock_never_runs_ahead_of_real_time(serve, quiet: Emitter) -> None:
    receiver = Receiver()
    start = int(time.time() * 1000) - 60_000
    with CollectorClient(serve(receiver), give_up_s=None) as client:
        threading.Timer(1.5, client.stop.set).start()
        summary = run_live(quiet, client, start=start, speed=1_000_000, tick_s=0.1)
    assert summary.until_ms <= time.time() * 1000
    assert summary.until_ms > start + 60_000  # caught up with now, then kept to it
    assert receiver.events == _expected(quiet, start, summary.until_ms)


def test_cli_fast_forward_posts_to_the_url(serve, capsys: pytest.CaptureFixture[str]) -> None:
    receiver = Receiver(down=1)
    since = DAY + timedelta(hours=3)
    code = main(["emit", "--seed", "4", "--sessions-per-hour", "300", "--url", serve(receiver),
                 "--from", since.isoformat(), "--to", (since + timedelta(hours=1)).isoformat()])
    assert code == 0
    assert receiver.events == _expected(Emitter(seed=4, sessions_per_hour=300),
                                        int(since.timestamp() * 1000),
                                        int(since.timestamp() * 1000) + HOUR_MS)
    assert f"posted {len(receiver.events):,} events" in capsys.readouterr().out
