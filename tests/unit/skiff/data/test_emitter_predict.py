"""The live shoppers asking ``GET /predict`` as they browse: who asks, with what, and faults.

A small Starlette app on a real socket on 127.0.0.1 stands in for the ``/predict`` API and
the collector: it records every ``/predict`` query and answers 200 (or a set status); the
emitter runs live at high speed on an injected clock.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from skiff.data.emitter import Emitter
from skiff.data.emitter_http import CollectorClient, run_live
from skiff.data.emitter_predict import ShopperPredictions, event_token, session_asks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOUR_MS = 3_600_000
H14 = int(datetime(2025, 3, 1, 14, tzinfo=UTC).timestamp()) // 3600


class Shop:
    """``POST /collect`` (accepts all) and ``GET /predict`` (records, answers ``status``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.asked: list[dict[str, str]] = []
        self.events = 0
        self.app = Starlette(routes=[Route("/collect", self.collect, methods=["POST"]),
                                     Route("/predict", self.predict, methods=["GET"])])

    async def collect(self, request: Request) -> Response:
        events = await request.json()
        self.events += len(events)
        return JSONResponse({"accepted": len(events), "rejected": []})

    async def predict(self, request: Request) -> Response:
        self.asked.append(dict(request.query_params))
        return JSONResponse({"model": "intent"}, self.status)


@pytest.fixture
def serve(serve_app: Callable[[object], str]) -> Callable[[Shop], str]:
    """Serve a :class:`Shop` with uvicorn on 127.0.0.1; returns its base URL."""
    return lambda shop: serve_app(shop.app)


@pytest.fixture(scope="module")
def quiet() -> Emitter:
    return Emitter(seed=4, sessions_per_hour=300)


def _run(emitter: Emitter, url: str, predictions: ShopperPredictions, start: int,
         until: int) -> None:
    with CollectorClient(url + "/collect", give_up_s=None) as client:
        run_live(emitter, client, start=start, until=until, speed=3_600, tick_s=0.05,
                 predictions=predictions)
    predictions.close(timeout_s=60)


def test_sampled_shoppers_ask_with_their_tokens_so_far(serve, quiet: Emitter) -> None:
    shop = Shop()
    url = serve(shop)
    start, until = H14 * HOUR_MS + 50 * 60_000, H14 * HOUR_MS + 55 * 60_000
    predictions = ShopperPredictions(url + "/predict", share=0.3, queue_size=100_000)
    _run(quiet, url, predictions, start, until)

    # what each sampled session had done by each of its events in [start, until)
    events = [r for h in (H14 - 2, H14 - 1, H14) for r in quiet.events(h).browsing.to_pylist()]
    expected, rec, so_far, skus = [], [], {}, {}
    for row in events:
        sid, ts = row["session_id_hash"], row["server_timestamp_epoch_ms"]
        if ts >= until or not session_asks(sid, 0.3):
            continue
        so_far.setdefault(sid, []).append(event_token(row))
        if event_token(row) == "detail":
            skus.setdefault(sid, []).append(row["product_sku_hash"])
        if ts >= start:
            expected.append((sid, ",".join(so_far[sid])))
            if event_token(row) == "detail":
                rec.append((sid, ",".join(skus[sid])))
    asked_intent = [(q["session_id"], q["session"]) for q in shop.asked if "model" not in q]
    asked_rec = [(q["session_id"], q["session"]) for q in shop.asked if q.get("model") == "rec"]
    assert sorted(asked_intent) == sorted(expected) and len(expected) > 30
    assert sorted(asked_rec) == sorted(rec) and rec
    assert any(s.count(",") >= 3 for _, s in asked_intent)  # sessions begun before the start
    assert not any("k" in q for q in shop.asked)  # the API's default list length
    stats = predictions.stats()
    assert stats["answered"] == len(shop.asked) == stats["asked"]
    assert stats["failed"] == stats["dropped"] == stats["refused"] == 0
    ids = {q["session_id"] for q in shop.asked}
    assert all(session_asks(i, 0.3) for i in ids)
    assert not any(session_asks(r["session_id_hash"], 0.3) is False and r["session_id_hash"] in ids
                   for r in events)


def test_a_missing_or_refusing_server_is_counted_never_stops_the_emitter(serve,
                                                                         quiet: Emitter) -> None:
    shop = Shop()
    url = serve(shop)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    start, until = H14 * HOUR_MS, H14 * HOUR_MS + 3 * 60_000
    down = ShopperPredictions(f"http://127.0.0.1:{closed.getsockname()[1]}/predict", share=0.3,
                              timeout_s=0.5)
    _run(quiet, url, down, start, until)
    closed.close()
    posted = shop.events
    assert posted == sum(len(d) for d in quiet.deliveries(start, until))
    stats = down.stats()
    assert stats["failed"] > 0 and stats["answered"] == 0
    assert stats["failed"] + stats["dropped"] == stats["asked"] + stats["dropped"]

    refusing = Shop(status=400)
    url = serve(refusing)
    predictions = ShopperPredictions(url + "/predict", share=0.3)
    _run(quiet, url, predictions, start, until)
    stats = predictions.stats()
    assert stats["refused"] == len(refusing.asked) > 0 and stats["answered"] == 0


def test_a_full_queue_drops_and_counts() -> None:
    class Stuck:
        def get(self, *args, **kwargs):
            time.sleep(0.5)
            raise httpx.ConnectTimeout("stuck")

        def close(self) -> None:
            pass

    predictions = ShopperPredictions("http://127.0.0.1:9/predict", share=1.0, queue_size=2,
                                     client=Stuck())  # type: ignore[arg-type]
    sid = "0" * 64
    rows = [{"session_id_hash": sid, "event_type": "pageview", "product_action": None,
             "product_sku_hash": None, "server_timestamp_epoch_ms": i} for i in range(10)]
    predictions.observe(rows)
    assert predictions.stats()["dropped"] >= 7
    assert session_asks(sid, 0.01) and not session_asks("f" * 64, 0.99)


def test_a_shopper_asks_only_the_models_named(serve, quiet: Emitter) -> None:
    shop = Shop()
    url = serve(shop)
    start, until = H14 * HOUR_MS, H14 * HOUR_MS + 3 * 60_000
    _run(quiet, url, ShopperPredictions(url + "/predict", share=0.3, models=("rec",)), start,
         until)
    assert shop.asked and all(q["model"] == "rec" for q in shop.asked)
    with pytest.raises(ValueError, match="use some of intent, rec"):
        ShopperPredictions(url + "/predict", share=0.3, models=("price",))
