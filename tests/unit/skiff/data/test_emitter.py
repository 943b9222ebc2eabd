"""The emitter: deterministic hours, delivery realism, the contract, what models learn."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from skiff.data.contract import BROWSING, CATALOGUE, EVENT_TYPES, PRODUCT_ACTIONS, SEARCH
from skiff.data.emitter import ARRIVAL, LOOKBACK_HOURS, Emitter, Events
from skiff.data.generator import generate
from skiff.exceptions import SkiffConfigError

DAY = datetime(2025, 3, 1, tzinfo=UTC)
HOUR_MS = 3_600_000
H14 = int(DAY.timestamp()) // 3600 + 14  # 14:00 UTC, the daily peak
HASH = re.compile(r"^[0-9a-f]{64}$")


def _hour_ms(hour: int) -> int:
    return hour * HOUR_MS


@pytest.fixture(scope="module")
def emitter() -> Emitter:
    """Busy shoppers on a small catalogue: enough events for shares and structure to show."""
    return Emitter(seed=7, sessions_per_hour=2_000, products=1_000)


def _key(table: pa.Table) -> list[tuple]:
    """Rows of ``table`` (contract columns) as sortable tuples."""
    columns = [c for c in table.column_names if c != ARRIVAL]
    return sorted(zip(*(table[c].to_pylist() for c in columns)), key=repr)


# ---------------------------------------------------------------- determinism and time


def test_same_seed_and_hour_same_events() -> None:
    first, again = Emitter(seed=3), Emitter(seed=3)
    for a, b in ((first.events(H14), again.events(H14)),
                 (first.delivered(H14), again.delivered(H14))):
        assert len(a) > 1_000
        assert a.browsing.equals(b.browsing) and a.search.equals(b.search)


def test_other_hours_and_seeds_differ(emitter: Emitter) -> None:
    other_seed = Emitter(seed=8, sessions_per_hour=2_000, products=1_000)
    hour = emitter.events(H14).browsing
    assert not hour.equals(emitter.events(H14 + 1).browsing)
    assert not hour.equals(emitter.events(H14 - 24).browsing)  # the same time a day before
    assert not hour.equals(other_seed.events(H14).browsing)
    day_before = emitter.events(H14 - 24).browsing
    assert not (set(hour["session_id_hash"].to_pylist())
                & set(day_before["session_id_hash"].to_pylist()))


def test_an_hour_alone_equals_the_hour_in_a_range() -> None:
    kwargs = dict(seed=5, sessions_per_hour=600)
    walked = Emitter(**kwargs)
    in_range = list(walked.deliveries(_hour_ms(H14 - 3), _hour_ms(H14 + 3)))[3]
    alone = Emitter(**kwargs).delivered(H14)
    assert in_range.browsing.equals(alone.browsing) and in_range.search.equals(alone.search)
    assert Emitter(**kwargs).events(H14).browsing.equals(walked.events(H14).browsing)


def test_a_partial_range_is_cut_by_arrival(emitter: Emitter) -> None:
    since = DAY + timedelta(hours=14, minutes=20)
    parts = list(emitter.deliveries(since, since + timedelta(minutes=30)))
    assert len(parts) == 1
    arrival = parts[0].browsing[ARRIVAL].to_numpy()
    assert arrival.min() >= since.timestamp() * 1000
    assert arrival.max() < (since + timedelta(minutes=30)).timestamp() * 1000
    whole = emitter.delivered(H14).browsing[ARRIVAL].to_numpy()
    assert len(arrival) == np.sum((whole >= arrival.min()) & (whole <= arrival.max()))


def test_every_event_is_delivered_once_and_duplicates_are_extra(emitter: Emitter) -> None:
    first, last = H14, H14 + 2  # event hours checked; deliveries reach spread_hours later
    delivered = [emitter.delivered(h) for h in range(first, last + emitter.spread_hours + 1)]
    sent = pa.concat_tables([d.browsing for d in delivered])
    ts = sent[BROWSING.time_column].to_numpy()
    assert (sent[ARRIVAL].to_numpy() >= ts).all()
    sent = sent.filter(pa.array((ts >= _hour_ms(first)) & (ts < _hour_ms(last))))
    happened = pa.concat_tables([emitter.events(h).browsing for h in range(first, last)])
    assert set(_key(sent)) == set(_key(happened))
    extra = sent.num_rows - happened.num_rows
    assert 0 < extra < 0.02 * happened.num_rows  # the duplicates, ~0.5%


def test_sessions_cross_hour_boundaries(emitter: Emitter) -> None:
    ids = [set(emitter.events(h).browsing["session_id_hash"].to_pylist())
           for h in (H14, H14 + 1)]
    crossing = ids[0] & ids[1]
    assert len(crossing) > 0.02 * len(ids[0])
    # the sessions started at 14:00 are exactly their events of 14:00 .. 16:59
    started = emitter.sessions(H14).browsing
    mine = pa.array(list(set(started["session_id_hash"].to_pylist())))
    spread = pa.concat_tables([emitter.events(h).browsing
                               for h in range(H14, H14 + LOOKBACK_HOURS + 1)])
    assert _key(spread.filter(pc.is_in(spread["session_id_hash"], mine))) == _key(started)
    assert pc.min(started[BROWSING.time_column]).as_py() >= _hour_ms(H14)
    assert pc.max(started[BROWSING.time_column]).as_py() < _hour_ms(H14 + 1 + LOOKBACK_HOURS)


def test_daily_traffic_curve() -> None:
    shoppers = Emitter(seed=1, sessions_per_hour=450)

    def sessions(hour: int) -> int:
        return len(set(shoppers.sessions(hour).browsing["session_id_hash"].to_pylist()))

    night, afternoon = sessions(H14 - 12), sessions(H14)  # 02:00 and 14:00 UTC
    assert 350 < afternoon < 550
    assert night < 0.45 * afternoon


# ---------------------------------------------------------------- delivery realism


@pytest.mark.parametrize("duplicate_share, late_share", [
    pytest.param(0.002, 0.01, id="defaults"),
    pytest.param(0.03, 0.08, id="more"),
])
def test_duplicate_and_late_shares_near_the_settings(duplicate_share: float,
                                                     late_share: float) -> None:
    shoppers = Emitter(seed=2, sessions_per_hour=3_000, duplicate_share=duplicate_share,
                       late_share=late_share, max_lateness_minutes=75)
    sent = pa.concat_tables([shoppers.delivered(h).browsing for h in range(H14, H14 + 3)])
    ts, arrival = sent[BROWSING.time_column].to_numpy(), sent[ARRIVAL].to_numpy()
    n = sent.num_rows
    distinct = sent.drop_columns([ARRIVAL]).group_by(BROWSING.columns).aggregate([]).num_rows
    assert (n - distinct) / n == pytest.approx(duplicate_share, rel=0.25)
    lag = arrival - ts
    late = lag >= 120_000
    assert late.mean() == pytest.approx(late_share, rel=0.2)
    assert lag[late].max() <= 75 * 60_000 + 50_000  # plus network delay and a retry
    later_hour = arrival // HOUR_MS > ts // HOUR_MS
    assert 0.4 * late_share < later_hour.mean() < late_share + 0.005  # most late ones cross

    # slightly out of order within a session: in arrival order, a session's time goes back
    session = sent["session_id_hash"].to_numpy(zero_copy_only=False)
    order = np.lexsort((arrival, session))
    same = session[order][1:] == session[order][:-1]
    back = np.diff(ts[order])[same] < 0
    assert 0.002 < back.mean() < 0.02 + late_share  # late events come back out of order


# ---------------------------------------------------------------- contract


def test_events_follow_the_contract(emitter: Emitter) -> None:
    delivered = emitter.delivered(H14)
    hour = (_hour_ms(H14), _hour_ms(H14 + 1))
    for contract, table in ((BROWSING, delivered.browsing), (SEARCH, delivered.search)):
        assert table.schema == contract.schema.append(pa.field(ARRIVAL, pa.int64()))
        assert table.num_rows and all(table[c].null_count == 0
                                      for c in ("session_id_hash", contract.time_column, ARRIVAL))
        arrival = table[ARRIVAL].to_numpy()
        assert hour[0] <= arrival.min() and arrival.max() < hour[1]
        assert (np.diff(arrival) >= 0).all()
        assert all(HASH.match(h) for h in set(table["session_id_hash"].to_pylist()))
    rows = delivered.browsing.to_pylist()
    skus = set(emitter.catalogue_table["product_sku_hash"].to_pylist())
    for row in rows:
        assert row["event_type"] in EVENT_TYPES and HASH.match(row["hashed_url"])
        if row["event_type"] == "pageview":
            assert row["product_action"] is None and row["product_sku_hash"] is None
        else:
            assert row["product_action"] in PRODUCT_ACTIONS and row["product_sku_hash"] in skus
    assert {r["product_action"] for r in rows} == {None, *PRODUCT_ACTIONS}
    for row in delivered.search.to_pylist():
        assert len(json.loads(row["query_vector"])) == 50
        shown = json.loads((row["product_skus_hash"] or "[]").replace("'", '"'))
        clicked = json.loads((row["clicked_skus_hash"] or "[]").replace("'", '"'))
        assert set(clicked) <= set(shown) <= skus


def test_rows_merge_both_tables_in_arrival_order(emitter: Emitter) -> None:
    delivered = emitter.delivered(H14)
    rows = delivered.rows(arrival=True)
    assert len(rows) == len(delivered)
    assert [r[ARRIVAL] for r in rows] == sorted(r[ARRIVAL] for r in rows)
    assert {tuple(r) for r in rows} == {(*BROWSING.columns, ARRIVAL), (*SEARCH.columns, ARRIVAL)}
    assert all(ARRIVAL not in r for r in delivered.rows())


def test_the_catalogue_is_the_generators(tmp_path: Path) -> None:
    summary = generate(tmp_path, sessions=100, seed=9, n_products=800, end=DAY)
    generated = pq.read_table(summary.files[CATALOGUE.name])
    assert Emitter(seed=9, products=800).catalogue_table.equals(generated)


# ---------------------------------------------------------------- planted structure


def _detail_transitions(events: Events) -> tuple[np.ndarray, np.ndarray]:
    """(current, next) product codes of consecutive detail views within sessions."""
    detail = events.browsing.filter(pc.equal(events.browsing["product_action"], "detail"))
    session = detail["session_id_hash"].to_numpy(zero_copy_only=False)
    order = np.lexsort((detail[BROWSING.time_column].to_numpy(), session))
    product = detail["product_sku_hash"].to_numpy(zero_copy_only=False)[order]
    same = session[order][1:] == session[order][:-1]
    return product[:-1][same], product[1:][same]


def test_item_to_item_beats_popularity_on_two_emitted_hours(emitter: Emitter) -> None:
    learn = _detail_transitions(emitter.events(H14))  # learn on 14:00
    test = _detail_transitions(emitter.events(H14 + 1))  # test on 15:00
    _, codes = np.unique(np.concatenate(learn + test), return_inverse=True)
    current, following, test_current, test_following = np.split(
        codes, np.cumsum([len(a) for a in learn + test])[:-1])
    pairs, counts = np.unique(np.c_[current, following], axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))  # per current product, most frequent first
    pairs = pairs[order]
    best = dict(pairs[np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]])
    item_to_item = np.mean([best.get(c) == f for c, f in zip(test_current, test_following)])
    products, views = np.unique(following, return_counts=True)
    popular = np.mean(test_following == products[views.argmax()])
    assert len(test_current) > 2_000
    assert item_to_item > 3 * popular


def test_cart_intent_follows_the_shoppers_model(emitter: Emitter) -> None:
    browsing = emitter.sessions(H14).browsing  # whole sessions
    session = browsing["session_id_hash"].to_numpy(zero_copy_only=False)
    action = browsing["product_action"].to_numpy(zero_copy_only=False)
    sessions = set(session)
    added, bought = set(session[action == "add"]), set(session[action == "purchase"])
    assert 0.08 < len(added) / len(sessions) < 0.25
    assert bought <= added and 0.25 < len(bought) / len(added) < 0.6


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs", [
    pytest.param({"seed": -1}, id="negative-seed"),
    pytest.param({"sessions_per_hour": 0}, id="no-sessions"),
    pytest.param({"products": 5}, id="tiny-catalogue"),
    pytest.param({"duplicate_share": 0.9}, id="mostly-duplicates"),
    pytest.param({"late_share": float("nan")}, id="nan-late-share"),
    pytest.param({"max_lateness_minutes": 1}, id="lateness-below-2-minutes"),
])
def test_bad_settings_raise_config_error(kwargs: dict) -> None:
    name = next(iter(kwargs))
    with pytest.raises(SkiffConfigError, match=name):
        Emitter(**kwargs)


def test_bad_hours_and_ranges_name_the_problem(emitter: Emitter) -> None:
    with pytest.raises(SkiffConfigError, match="not on the hour"):
        emitter.events(DAY + timedelta(minutes=5))
    with pytest.raises(SkiffConfigError, match="before 1970"):
        emitter.events(-1)
    with pytest.raises(SkiffConfigError, match="empty"):
        next(emitter.deliveries(DAY, DAY))


# ---------------------------------------------------------------- drift


def _popularity_rank(emitter: Emitter) -> dict[str, int]:
    """Each SKU's popularity rank in the catalogue (0: the most popular)."""
    weight = np.diff(emitter.catalogue.pop.edges)
    skus = emitter.catalogue.skus.to_pylist()
    return {skus[p]: rank for rank, p in enumerate(np.argsort(-weight, kind="stable"))}


def _details(events: Events) -> pa.Table:
    return events.browsing.filter(pc.equal(events.browsing["product_action"], "detail"))


def test_drift_changes_the_sessions_from_its_time_on_deterministically() -> None:
    plain = Emitter(seed=7, sessions_per_hour=2_000, products=1_000)
    start = _hour_ms(H14) + 30 * 60_000  # the sessions of the hour's second half drift
    short = Emitter(seed=7, sessions_per_hour=2_000, products=1_000, drift="short",
                    drift_from=start)
    before, after = plain.sessions(H14).browsing, short.sessions(H14).browsing
    ts = "server_timestamp_epoch_ms"
    ids_before = pc.unique(before.filter(pc.less(before[ts], start))["session_id_hash"])
    first_half = pc.is_in(after["session_id_hash"], ids_before)
    # sessions started before the drift are untouched
    assert after.filter(first_half).equals(before.filter(
        pc.is_in(before["session_id_hash"], ids_before)))
    # the later ones are about a quarter as long (same ids: the same sessions, changed)
    late_before = before.filter(pc.invert(pc.is_in(before["session_id_hash"], ids_before)))
    late_after = after.filter(pc.invert(first_half))
    assert 0 < late_after.num_rows < 0.45 * late_before.num_rows
    assert short.sessions(H14).browsing.equals(after)  # a pure function of seed and hour

    tail = Emitter(seed=7, sessions_per_hour=2_000, products=1_000, drift="tail")
    rank = _popularity_rank(plain)
    plain_ranks = np.array([rank[s] for s in _details(plain.events(H14))["product_sku_hash"]
                            .to_pylist()])
    tail_ranks = np.array([rank[s] for s in _details(tail.events(H14))["product_sku_hash"]
                           .to_pylist()])
    assert np.median(plain_ranks) < 100 and np.median(tail_ranks) > 900  # of 1,000
    assert (tail_ranks < 10).mean() < 0.01 < (plain_ranks < 10).mean()


def test_an_unknown_drift_is_refused() -> None:
    with pytest.raises(SkiffConfigError, match="drift='longer' is not one of short, tail"):
        Emitter(drift="longer")
