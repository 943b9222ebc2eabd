"""check_event: one event against its table's contract, with the field and the reason."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from collect_events import T0_MS, browsing_event, hash64, search_event
from skiff.data.contract import BROWSING, CATALOGUE, SEARCH, TABLES, check_event

H = hash64("x")
EARLIEST = 1_514_764_800_000  # 2018-01-01


def test_valid_events_come_back_as_rows_in_contract_order() -> None:
    row, reason = check_event("browsing_train", browsing_event(0, T0_MS))
    assert reason is None and list(row) == list(BROWSING.columns)
    row, reason = check_event("browsing_train", browsing_event(1, T0_MS, product_action=""))
    assert reason is None and row["product_action"] is None and row["hashed_url"]
    # a search's lists may come as JSON arrays: they become the official files' text
    row, reason = check_event(SEARCH, search_event(2, T0_MS))
    assert reason is None and list(row) == list(SEARCH.columns)
    assert row["query_vector"].startswith("[0.25, -0.5, 1e-05, 0.0, ")
    assert row["product_skus_hash"] == f"['{hash64('sku-1')}', '{hash64('sku-2')}']"
    assert row["clicked_skus_hash"] is None


@pytest.mark.parametrize("table, event, reason", [
    pytest.param("browsing_train", ["not", "an", "object"], "event: not a JSON object (got a list)",
                 id="not-object"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, session_id_hash=None),
                 "session_id_hash: missing (required)", id="null-session"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, session_id_hash="undefined"),
                 "session_id_hash: 'undefined' is not a 64-character lowercase hex hash",
                 id="malformed-session"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, event_type="click"),
                 "event_type: 'click' is not one of event_product, pageview", id="event-type"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, product_action="view"),
                 "product_action: 'view' is not one of detail, add, remove, purchase",
                 id="action"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, product_action=None),
                 "product_action: required when event_type is event_product", id="no-action"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, product_sku_hash=""),
                 "product_sku_hash: required when event_type is event_product", id="no-sku"),
    pytest.param("browsing_train", browsing_event(1, T0_MS, product_action="add"),
                 "product_action: must be empty when event_type is pageview; got 'add'", id="pageview-action"),
    pytest.param("browsing_train", browsing_event(0, str(T0_MS)),
                 f"server_timestamp_epoch_ms: '{T0_MS}' is not an integer", id="ts-string"),
    pytest.param("browsing_train", browsing_event(0, True),
                 "server_timestamp_epoch_ms: True is not an integer", id="ts-bool"),
    pytest.param("browsing_train", browsing_event(0, 1.5e12),
                 "server_timestamp_epoch_ms: 1500000000000.0 is not an integer", id="ts-float"),
    pytest.param("browsing_train", browsing_event(0, 2**70),
                 f"server_timestamp_epoch_ms: {2**70} does not fit in 64 bits", id="ts-huge"),
    pytest.param("browsing_train", browsing_event(0, T0_MS, hashed_url=7),
                 "hashed_url: 7 is not a string", id="url-type"),
    pytest.param("browsing_train", {**browsing_event(0, T0_MS), "arrival_ts_ms": 1},
                 "arrival_ts_ms: not a field of browsing_train", id="unknown-field"),
    pytest.param("search_train", {**search_event(0, T0_MS), "query_vector": "0.1, 0.2"},
                 "query_vector: '0.1, 0.2' is not a list of 50 numbers", id="vector-text"),
    pytest.param("search_train", {**search_event(0, T0_MS), "query_vector": [0.1, "x"]},
                 "query_vector: item 1 ('x') is not a finite number", id="vector-item"),
    pytest.param("search_train", {**search_event(0, T0_MS), "product_skus_hash": ["abc"]},
                 "product_skus_hash: item 0 ('abc') is not a 64-character lowercase hex hash", id="skus"),
    pytest.param("search_train", {**search_event(0, T0_MS), "query_vector": None},
                 "query_vector: missing (required)", id="no-query"),
    pytest.param("sku_to_content", {"product_sku_hash": H, "price_bucket": "cheap"},
                 "price_bucket: 'cheap' is not a number", id="price"),
])
def test_bad_events_name_the_field_and_why(table: str, event: object, reason: str) -> None:
    row, got = check_event(table, event)
    assert row is None
    assert got.startswith(reason), got


def test_event_times_are_checked_against_the_window_given() -> None:
    seconds = browsing_event(0, T0_MS // 1000)
    row, reason = check_event("browsing_train", seconds, earliest_ms=EARLIEST)
    assert row is None and reason.startswith(
        f"server_timestamp_epoch_ms: {T0_MS // 1000} is before 2018-01-01T00:00:00.000Z")
    assert "seconds instead of milliseconds" in reason
    row, reason = check_event("browsing_train", browsing_event(0, T0_MS), latest_ms=T0_MS)
    assert row is None and "is in the future" in reason and "2026-11-25T10:00:00.000Z" in reason
    assert check_event("browsing_train", browsing_event(0, T0_MS), earliest_ms=T0_MS,
                       latest_ms=T0_MS + 1)[1] is None
    with pytest.raises(ValueError, match="'clicks' is not a contract table"):
        check_event("clicks", {})


def test_the_official_sample_and_the_generator_pass(coveo_sample: Path, tmp_path: Path) -> None:
    """The contract the collector enforces is the one the real files and the generator follow."""
    from skiff.data import generate

    for contract in TABLES:
        with open(coveo_sample / f"{contract.name}_sample.csv", newline="") as fh:
            for line in csv.DictReader(fh):
                event = {k: (int(v) if k == "server_timestamp_epoch_ms" else
                             float(v) if k == "price_bucket" and v else v)
                         for k, v in line.items()}
                assert check_event(contract, event, earliest_ms=EARLIEST) == (
                    check_event(contract, event)[0], None), event
    summary = generate(tmp_path, sessions=200, seed=3, span_hours=2, progress=False)
    for contract in (BROWSING, SEARCH, CATALOGUE):
        rows = pq.read_table(summary.files[contract.name]).to_pylist()
        assert rows and all(check_event(contract, r)[1] is None for r in rows)


def test_contract_imports_without_pyarrow() -> None:
    """The /collect Lambda carries contract.py without pyarrow: only a schema needs it."""
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from skiff.data.contract import check_event, BROWSING\n"
            "from skiff.data import intake\n"
            "print(check_event(BROWSING, {})[1])\n"
            "try:\n    BROWSING.schema\nexcept ImportError:\n    print('schema needs pyarrow')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["session_id_hash: missing (required)", "schema needs pyarrow"]
