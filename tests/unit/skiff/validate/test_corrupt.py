"""The bad-batch builder: each defect is planted in the interval's good rows as documented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from skiff.data import DEFECTS, IntervalData, build_bad_batch
from skiff.exceptions import SkiffError
from skiff.data import generate

END = datetime(2026, 11, 18, 12, tzinfo=UTC)
START = END - timedelta(hours=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> IntervalData:
    out = tmp_path_factory.mktemp("source")
    generate(out, sessions=800, seed=5, end=END, span_hours=8)
    return IntervalData.from_source(out, START, END)


def _ts(table):
    return table.column("server_timestamp_epoch_ms")


def test_interval_data_is_the_interval(data: IntervalData) -> None:
    assert data.browsing.num_rows > 100
    assert pc.min(_ts(data.browsing)).as_py() >= data.start_ms
    assert pc.max(_ts(data.browsing)).as_py() < data.end_ms
    assert pc.max(_ts(data.history)).as_py() < data.start_ms
    assert data.catalogue.num_rows >= 500


@pytest.mark.parametrize("defect", [pytest.param(d, id=d) for d in DEFECTS])
def test_every_defect_builds_from_the_good_rows(defect: str, data: IntervalData) -> None:
    bad = build_bad_batch(defect, data, seed=1)
    assert bad.defect == defect and bad.note
    if defect == "empty_hour":
        assert bad.tables == {} and bad.rows == 0
        return
    browsing = bad.tables["browsing_train"]
    assert browsing.schema == data.browsing.schema
    assert browsing.num_rows >= data.browsing.num_rows
    assert build_bad_batch(defect, data, seed=1).tables == bad.tables  # deterministic


def test_row_defects_touch_a_share_of_the_rows(data: IntervalData) -> None:
    n = data.browsing.num_rows
    nulls = build_bad_batch("null_timestamps", data).tables["browsing_train"]
    assert _ts(nulls).null_count == round(n * 0.05)
    dupes = build_bad_batch("duplicate_events", data).tables["browsing_train"]
    assert dupes.num_rows == n + round(n * 0.10)
    future = build_bad_batch("future_timestamps", data).tables["browsing_train"]
    assert pc.max(_ts(future)).as_py() > data.end_ms * 100
    ancient = build_bad_batch("ancient_timestamps", data).tables["browsing_train"]
    assert pc.min(_ts(ancient)).as_py() < data.start_ms // 100
    spike = build_bad_batch("volume_spike", data).tables["browsing_train"]
    assert spike.num_rows == 10 * n


def test_mart_defects(data: IntervalData) -> None:
    labels = build_bad_batch("label_rate", data).tables["browsing_train"]
    sessions = set(data.browsing.column("session_id_hash").to_pylist())
    adding = {r["session_id_hash"] for r in labels.to_pylist() if r["product_action"] == "add"}
    assert adding == sessions
    prices = build_bad_batch("bad_prices", data).tables["sku_to_content"]
    assert set(prices.column("price_bucket").to_pylist()) <= {0.0, 11.0, 42.0, -1.0}
    reused = build_bad_batch("duplicate_session_ids", data).tables["browsing_train"]
    earlier = set(data.history.column("session_id_hash").to_pylist())
    assert set(reused.column("session_id_hash").to_pylist()) & earlier


def test_schema_defects_alter_the_raw_table(data: IntervalData) -> None:
    assert "rename column hashed_url" in build_bad_batch("missing_column", data).drift[0]
    assert "type varchar" in build_bad_batch("retyped_column", data).drift[0]


def test_unknown_defect_and_missing_source(data: IntervalData, tmp_path: Path) -> None:
    with pytest.raises(SkiffError, match="Unknown defect 'typo'"):
        build_bad_batch("typo", data)
    with pytest.raises(SkiffError):
        IntervalData.from_source(tmp_path, START, END)
