"""The monitoring marts on DuckDB over a planted raw log: known volumes, hit rate, calibration
and PSI shifts come out, and an hourly run rebuilds the hours of what arrived late.

The raw log is written directly (the contract's columns): 40 training sessions viewing the
same three popular SKUs before the champion's training end, then one served hour of
predictions whose shoppers' next events are planted (4 hits of 8 judged next-item answers;
intent answers at 0.8 of which 6 of 10 purchase), with the intent sessions and half of the
next-item SKUs moved away from the training data (a planted drift).
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dbt_models import SNOWFLAKE_ENV, Dbt, connect, query
from skiff.data import DuckDBWarehouse, SnowflakeWarehouse
from skiff.data.contract import BROWSING, CATALOGUE, PREDICTIONS, SEARCH

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
TRAINED_UNTIL = T0 + timedelta(hours=10)
HOUR = T0 + timedelta(hours=12)  # the served hour
MINUTE_MS = 60_000


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


POPULAR = [h(f"sku-{i}") for i in range(3)]


def _append(con: Any, contract: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    con.register("fixture_rows", _reader(contract, rows).read_all())
    con.execute(f"insert into raw.{contract.name} by name select * from fixture_rows")
    con.unregister("fixture_rows")


def _detail(session: str, at_ms: int, sku: str, action: str = "detail") -> dict[str, Any]:
    return {"session_id_hash": session, "event_type": "event_product", "product_action": action,
            "product_sku_hash": sku, "server_timestamp_epoch_ms": at_ms,
            "arrival_ts_ms": at_ms + 1000}


def _prediction(request: str, model: str, served_ms: int, **fields: Any) -> dict[str, Any]:
    row = {"request_id": request, "session_index": 0, "served_at": served_ms, "model": model,
           "model_version": f"{model.title()}Flow/7", "endpoint": f"skiff-{model}",
           "status": 200, "latency_ms": 5.0, "trained_until_ms": ms(TRAINED_UNTIL),
           "sender_id": "sender-a", "dropped_before": 0, "arrival_ts_ms": served_ms + 2000}
    row.update(fields)
    return row


def planted() -> tuple[list[dict], list[dict]]:
    """The browsing events and the predictions of the fixture."""
    events: list[dict[str, Any]] = []
    for i in range(40):  # the training data: three popular SKUs viewed, in every session
        start = ms(T0) + i * 10 * MINUTE_MS
        events += [_detail(h(f"train-{i}"), start + j * 1000, POPULAR[j]) for j in range(3)]
    predictions: list[dict[str, Any]] = []
    base = ms(HOUR)
    for k in range(10):  # next-item answers; 5..9 ask about SKUs the training never saw
        session, served = h(f"rec-{k}"), base + k * 2 * MINUTE_MS
        asked = POPULAR if k < 5 else [h(f"new-{k}-{j}") for j in range(3)]
        nxt = h(f"next-{k}")
        served_items = [nxt, POPULAR[0]] if k < 4 else [POPULAR[0], POPULAR[1]]
        if k < 8:  # 8 and 9: the shopper viewed nothing more (not judged)
            events.append(_detail(session, served + MINUTE_MS, nxt))
        events.append(_detail(session, served - MINUTE_MS, asked[-1]))
        predictions.append(_prediction(
            f"rec-req-{k}", "rec", served, session_id_hash=session, session_length=3,
            input_tokens=str(asked), output_items=str(served_items),
            fallback=int(k == 9), ignored_count=3 if k == 9 else 0,
            latency_ms=float(k + 1), dropped_before=0 if k < 5 else 5))
    predictions.append(_prediction("rec-req-500", "rec", base + 30 * MINUTE_MS, status=500,
                                   latency_ms=50.0, dropped_before=5))
    predictions.append(_prediction("rec-req-400", "rec", base + 31 * MINUTE_MS, status=400,
                                   latency_ms=1.0, dropped_before=5))
    for k in range(10):  # intent answers at 0.8 about purchase-only sessions; 6 buy
        session, served = h(f"intent-{k}"), base + k * 3 * MINUTE_MS
        if k < 6:
            events.append(_detail(session, served + 5 * MINUTE_MS, POPULAR[0], "purchase"))
        predictions.append(_prediction(
            f"intent-req-{k}", "intent", served, session_id_hash=session, session_length=2,
            input_tokens=str(["purchase", "purchase"]), output_probability=0.8,
            sender_id="sender-b"))
    return events, predictions


def _late_prediction() -> dict[str, Any]:
    """A next-item answer of the served hour's last minute that arrived in the next hour."""
    return _prediction("rec-req-late", "rec", ms(HOUR) + 59 * MINUTE_MS,
                       arrival_ts_ms=ms(HOUR) + 61 * MINUTE_MS, latency_ms=2.0,
                       dropped_before=5, session_length=3, input_tokens=str(POPULAR),
                       output_items=str(POPULAR))


def psi(current: dict[str, float], reference: dict[str, float]) -> float:
    """The marts' PSI: shares floored at 0.0001."""
    total = 0.0
    for bucket in set(current) | set(reference):
        c, r = max(current.get(bucket, 0.0), 1e-4), max(reference.get(bucket, 0.0), 1e-4)
        total += (c - r) * math.log(c / r)
    return total


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Dbt:
    work = tmp_path_factory.mktemp("monitoring")
    dbt = Dbt(work / "warehouse.duckdb", work)
    DuckDBWarehouse(dbt.db_path, raw_schema="raw").ensure_raw_tables()
    events, predictions = planted()
    with connect(dbt.db_path) as con:
        _append(con, CATALOGUE, [{"product_sku_hash": sku, "price_bucket": 3.0,
                                  "arrival_ts_ms": ms(T0)} for sku in POPULAR])
        _append(con, BROWSING, events)
        _append(con, SEARCH, [])
        _append(con, PREDICTIONS, predictions)
    dbt("run", "--exclude", "tag:monitoring")
    dbt("build", "--select", "tag:monitoring")
    return dbt


def _rows(dbt: Dbt, sql: str) -> list[dict[str, Any]]:
    with connect(dbt.db_path) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_serving_counts_rates_latency_and_drops(built: Dbt) -> None:
    rows = {r["model"]: r for r in _rows(built, "select * from marts.mon_serving_hourly")}
    rec, intent = rows["rec"], rows["intent"]
    assert rec["hour_start"] == HOUR.replace(tzinfo=None)
    assert rec["model_version"] == "RecFlow/7"
    assert (rec["requests"], rec["sessions"], rec["errors"], rec["bad_requests"]) == (12, 12, 1, 1)
    assert rec["error_rate"] == pytest.approx(1 / 12)
    assert rec["fallback_rate"] == pytest.approx(1 / 10)
    assert rec["unknown_sku_share"] == pytest.approx(3 / 30)
    latencies = sorted([float(k + 1) for k in range(10)] + [50.0, 1.0])
    assert rec["latency_p50_ms"] == pytest.approx((latencies[5] + latencies[6]) / 2)
    assert rec["latency_p99_ms"] > 40
    assert rec["dropped_events"] == 5  # sender-a: 0, then 5 dropped before its 6th event
    assert (intent["requests"], intent["errors"]) == (10, 0)
    assert intent["dropped_events"] == 5  # the hour's drops: the servers' buffers are shared
    assert intent["fallback_rate"] is None and intent["unknown_sku_share"] is None


def test_online_quality_from_what_the_shoppers_did_next(built: Dbt) -> None:
    rows = {r["metric"]: r for r in _rows(built, "select * from marts.mon_quality_hourly")}
    hit = rows["hit_rate_at_20"]
    assert (hit["model"], hit["scored"]) == ("rec", 8)
    assert hit["online_value"] == pytest.approx(4 / 8)
    calibration = rows["calibration_error"]
    assert (calibration["model"], calibration["scored"]) == ("intent", 10)
    assert calibration["mean_predicted"] == pytest.approx(0.8)
    assert calibration["observed_rate"] == pytest.approx(0.6)
    assert calibration["online_value"] == pytest.approx(0.2)


def test_planted_drift_against_the_training_sessions(built: Dbt) -> None:
    rows = {(r["model"], r["feature"]): r for r in
            _rows(built, "select * from marts.mon_drift_hourly")}
    assert set(rows) == {("rec", "session_length"), ("rec", "sku_popularity"),
                         ("intent", "session_length"), ("intent", "event_type_mix")}
    # the reference counts the prefixes shoppers are asked about: each training session of
    # 3 SKUs stands for sessions so far of 1, 2 and 3; every answer here was at the third
    prefixes = {"1": 1 / 3, "2": 1 / 3, "3-4": 1 / 3}
    assert rows["rec", "session_length"]["psi"] == pytest.approx(psi({"3-4": 1.0}, prefixes))
    # half the asked SKUs were never seen in training: 15 top_10, 15 unseen
    expected = psi({"top_10": 0.5, "unseen": 0.5}, {"top_10": 1.0})
    assert rows["rec", "sku_popularity"]["psi"] == pytest.approx(expected)
    assert rows["rec", "sku_popularity"]["psi"] > 0.25
    # intent: purchase-only sessions of 2 events against detail-only ones of 3
    assert rows["intent", "session_length"]["psi"] == pytest.approx(psi({"2": 1.0}, prefixes))
    assert rows["intent", "event_type_mix"]["psi"] == pytest.approx(
        psi({"purchase": 1.0}, {"detail": 1.0}))
    assert rows["rec", "sku_popularity"]["served_sessions"] == 10


def test_an_hourly_run_rebuilds_the_hours_of_late_arrivals(built: Dbt) -> None:
    """A prediction of the served hour arriving in the next one is counted in its hour by
    that hour's run; the quality of the served hour is rebuilt by the run after it."""
    dbt = built.copy("late")
    with connect(dbt.db_path) as con:
        _append(con, PREDICTIONS, [_late_prediction()])
    nxt = HOUR + timedelta(hours=1)
    dbt("build", "--select", "tag:monitoring",
        vars={"interval_start": nxt.isoformat(), "interval_end": (nxt + timedelta(hours=1))
              .isoformat()})
    requests = query(dbt.db_path, "select requests from marts.mon_serving_hourly "
                                  "where model = 'rec'")
    assert requests == [(13,)]
    # quality lags an hour: the run of [H+1, H+2) rebuilt the served hour, same values
    assert query(dbt.db_path, "select count(*), sum(scored) from marts.mon_quality_hourly") \
        == [(2, 18)]


#: The marts' columns compared across the warehouses, by mart, with the columns of a row's key.
_SAME_ON = {"mon_serving_hourly": ("model",), "mon_quality_hourly": ("metric",),
            "mon_drift_hourly": ("model", "feature")}


@pytest.mark.filterwarnings("ignore:::fakesnow")
def test_the_snowflake_sql_gives_the_same_figures_on_fakesnow(built: Dbt, tmp_path: Path) -> None:
    """The monitoring models' Snowflake SQL (the snowflake__ macros: percentiles, arrays,
    time arithmetic) over the same planted raw log, on fakesnow (Snowflake SQL run on
    DuckDB, no account needed): every column of every mart equals the DuckDB build's.

    fakesnow cannot run dbt-snowflake's incremental merge (its ``create temporary table``
    names a database and schema, which DuckDB refuses), so the next hour's incremental
    branch is compiled and its SQL checked: the serving hours of what arrived in the
    interval, the quality hours an hour behind, Snowflake's ``dateadd``
    (:func:`test_an_hourly_run_rebuilds_the_hours_of_late_arrivals` runs it on DuckDB)."""
    fakesnow = pytest.importorskip("fakesnow")
    import snowflake.connector

    def connect_snowflake() -> Any:
        return snowflake.connector.connect(database="SKIFF", schema="ANALYTICS")

    dbt = Dbt(tmp_path / "unused.duckdb", tmp_path)
    events, predictions = planted()
    rows = {CATALOGUE: [{"product_sku_hash": sku, "price_bucket": 3.0, "arrival_ts_ms": ms(T0)}
                        for sku in POPULAR],
            BROWSING: events, SEARCH: [], PREDICTIONS: predictions}
    marts: dict[str, list[dict[str, Any]]] = {}
    with fakesnow.patch():
        warehouse = SnowflakeWarehouse(connect_snowflake)
        warehouse.ensure_raw_tables()
        warehouse.append((contract, _reader(contract, table)) for contract, table in rows.items())
        # fakesnow's in-memory database does not take concurrent DDL: one thread
        dbt("run", "--threads", "1", target="snowflake", env=SNOWFLAKE_ENV)
        cur = connect_snowflake().cursor()
        for mart in _SAME_ON:
            cur.execute(f"select * from marts.{mart}")
            names = [d[0].lower() for d in cur.description]
            marts[mart] = [dict(zip(names, row)) for row in cur.fetchall()]
        nxt = HOUR + timedelta(hours=1)
        dbt("compile", "--threads", "1", "--select", "tag:monitoring", target="snowflake",
            env=SNOWFLAKE_ENV, vars={"interval_start": nxt.isoformat(),
                                     "interval_end": (nxt + timedelta(hours=1)).isoformat()})
    compiled = (tmp_path / "target" / "compiled" / "skiff" / "models" / "monitoring")
    serving = (compiled / "mon_serving_hourly.sql").read_text()
    start = ms(HOUR + timedelta(hours=1))
    assert "percentile_cont(0.99) within group (order by latency_ms)" in serving
    assert f"arrival_ts_ms >= {start} - 0" in serving and "dateadd(" in serving
    quality = (compiled / "mon_quality_hourly.sql").read_text()
    assert f"arrival_ts_ms >= {start} - 3600000" in quality
    for mart, key in _SAME_ON.items():
        expected = {tuple(r[k] for k in key): r for r in _rows(built, f"select * from marts.{mart}")}
        got = {tuple(r[k] for k in key): r for r in marts[mart]}
        assert expected and got.keys() == expected.keys(), mart
        for k, row in expected.items():
            for column, value in row.items():
                other = got[k][column]
                if isinstance(value, float) or isinstance(other, float):
                    assert other == pytest.approx(value, abs=1e-9), (mart, k, column)
                else:
                    assert other == value, (mart, k, column, other, value)


def _reader(contract: Any, rows: list[dict[str, Any]]) -> pa.RecordBatchReader:
    """``rows`` as the raw log's batch (:func:`_append`'s columns) for a warehouse's append."""
    stamp = datetime(2026, 11, 26, tzinfo=UTC).replace(tzinfo=None)
    full = [{**{c: r.get(c) for c in contract.columns}, "batch_id": "fixture",
             "ingested_at": stamp, "arrival_ts_ms": r.get("arrival_ts_ms")} for r in rows]
    table = pa.Table.from_pylist(full, schema=contract.log_schema)
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
