"""The whole loop on real sockets: ``GET /predict`` -> model server -> prediction log ->
``/collect`` -> landing zone -> hourly ingest -> ``raw.predictions`` -> monitoring marts.

``skiff serve``'s stack (:class:`skiff_api.local_stack.LocalStack`) and ``skiff collect``'s
server both run on 127.0.0.1 with the tiny serving bundles; the shopper's next detail view is
collected too, so the hour's online hit rate is known (1.0: the shopper viewed the first
recommended SKU).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from collector_server import running_collector
from dbt_models import Dbt, query
from serving_models import intent_bundle
from skiff.config import ServingConfig
from skiff.data import DuckDBWarehouse
from skiff.data.ingest import ingest_arrivals
from skiff.data.landing import LandingZone
from skiff.serve import EndpointStore
from skiff_api.local_stack import LocalStack

pytestmark = pytest.mark.integration

SESSION = hashlib.sha256(b"chain-shopper").hexdigest()
#: The next-item model's SKUs: hashes, as the collected browsing events carry them.
SKUS = [hashlib.sha256(f"chain-sku-{i}".encode()).hexdigest() for i in range(12)]


def rec_bundle(path: Path) -> Path:
    """An untrained next-item bundle over :data:`SKUS` (window 4, top 5)."""
    import keras
    from skiff.serve import write_bundle
    from skiff.train import features, models

    keras.utils.set_random_seed(0)
    vocab = features.Vocabulary((features.PAD_TOKEN, features.OOV_TOKEN, *SKUS))
    model = models.build_next_item_model(len(vocab), embedding_dim=8, units=8, max_position=4)
    return write_bundle(model, path, kind="rec", vocabulary=vocab, version="RecFlow/5",
                        max_len=4, k=5)


def test_served_answers_reach_the_monitoring_marts(tmp_path: Path) -> None:
    with running_collector(tmp_path) as collect_url:
        started = datetime.now(UTC)
        config = ServingConfig(token_file=tmp_path / "token", predlog_url=collect_url,
                               predlog_flush_s=0.1)
        bundles = {"skiff-rec": rec_bundle(tmp_path / "rec"),
                   "skiff-intent": intent_bundle(tmp_path / "intent", "IntentFlow/5")}
        stack = LocalStack.build(config, bundles=bundles, store=EndpointStore(tmp_path / "s"),
                                 port=0, api_port=0, control_port=0).start()
        try:
            with httpx.Client(base_url=stack.urls["api"], timeout=10) as client:
                rec = client.get("/predict", params={"session": f"{SKUS[1]},{SKUS[2]}",
                                                     "k": 3, "session_id": SESSION})
                assert rec.status_code == 200, rec.text
                for _ in range(3):
                    assert client.get("/predict", params={"session": "view,add"}).status_code \
                        == 200
                # no SKU known: the popular items (a fallback, logged)
                assert client.get("/predict", params={"session": "new-sku"}).status_code == 200
                # refused by the handler: the endpoint never sees it, nothing is logged
                assert client.get("/predict", params={"session": "view,,add"}).status_code \
                    == 400
            health = httpx.get(stack.urls["models"] + "/health").json()["prediction_log"]
            assert health["dropped"] == 0
        finally:
            stack.close()  # the prediction log posts what it holds
        assert stack.models.predlog.stats()["sent"] == 5
        # the shopper then views the first recommended SKU (a second later, collected)
        first = rec.json()["items"][0]["sku"]
        event = {"session_id_hash": SESSION, "event_type": "event_product",
                 "product_action": "detail", "product_sku_hash": first,
                 "server_timestamp_epoch_ms": int(time.time() * 1000) + 1000}
        assert httpx.post(collect_url, json=event).json()["accepted"] == 1

    hour = started.replace(minute=0, second=0, microsecond=0)
    dbt = Dbt(tmp_path / "warehouse.duckdb", tmp_path)
    zone = LandingZone.from_uri(str(tmp_path / "landing"))
    rows = {}
    for start in (hour, hour + timedelta(hours=1)):  # the test may straddle an hour
        summary = ingest_arrivals(DuckDBWarehouse(dbt.db_path), zone, start,
                                  start + timedelta(hours=1))
        for table, n in summary.rows.items():
            rows[table] = rows.get(table, 0) + n
    assert rows["predictions"] == 5 and rows["browsing_train"] == 1
    dbt("run", "--exclude", "tag:monitoring")
    dbt("build", "--select", "tag:monitoring")
    serving = query(dbt.db_path, "select model, model_version, sum(requests), sum(errors), "
                                 "max(fallback_rate) from marts.mon_serving_hourly "
                                 "group by 1, 2 order by 1")
    assert serving == [("intent", "IntentFlow/5", 3, 0, None), ("rec", "RecFlow/5", 2, 0, 0.5)]
    quality = query(dbt.db_path, "select model, metric, scored, online_value "
                                 "from marts.mon_quality_hourly")
    assert quality == [("rec", "hit_rate_at_20", 1, 1.0)]
