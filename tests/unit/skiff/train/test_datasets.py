"""Reading the marts, the split by time (never random), and the data version."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from skiff.data import DuckDBWarehouse
from skiff.exceptions import DataContractError, MissingInputError, SkiffConfigError
from skiff.train import datasets as D

T0 = datetime(2024, 5, 1, 10, 0, 0)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    """Tiny marts: four sessions, two with an add, one bought; rows out of time order."""
    path = tmp_path / "warehouse.duckdb"
    c = duckdb.connect(str(path))
    c.execute("create schema marts")
    c.execute("""
        create table marts.fct_sessions as select * from (values
            ('s3', timestamp '2024-05-01 12:00:00', timestamp '2024-05-01 12:05:00', 300.0,
             3, 1, 1, 1, 0, 0, 1, 0, true, timestamp '2024-05-01 12:01:30', 3, false,
             null::timestamp, true),
            ('s1', timestamp '2024-05-01 10:00:00', timestamp '2024-05-01 10:02:00', 120.0,
             2, 1, 1, 0, 0, 0, 1, 0, false, null::timestamp, null::bigint, false,
             null::timestamp, false),
            ('s2', timestamp '2024-05-01 11:00:00', timestamp '2024-05-01 11:09:00', 540.0,
             4, 0, 2, 1, 0, 1, 2, 1, true, timestamp '2024-05-01 11:00:10', 3, true,
             timestamp '2024-05-01 11:09:00', false),
            ('s4', timestamp '2024-05-01 13:00:00', timestamp '2024-05-01 13:00:05', 5.0,
             1, 0, 1, 0, 0, 0, 1, 0, false, null::timestamp, null::bigint, false,
             null::timestamp, false)
        ) t(session_id, session_start_at, session_end_at, duration_seconds, count_events,
            count_pageviews, count_details, count_adds, count_removes, count_purchases,
            count_distinct_skus, count_searches, has_add, first_add_at, first_add_event_index,
            has_purchase, first_purchase_at, is_cart_abandoned)
    """)
    c.execute("""
        create table marts.fct_session_sequences as select * from (values
            ('s2', timestamp '2024-05-01 11:00:00', ['p1', 'p2'],
             ['detail', 'detail', 'add', 'purchase'], 2, 4),
            ('s3', timestamp '2024-05-01 12:00:00', ['p9'], ['view', 'detail', 'add'], 1, 3),
            ('s1', timestamp '2024-05-01 10:00:00', ['p1'], ['view', 'detail'], 1, 2),
            ('s4', timestamp '2024-05-01 13:00:00', ['p2'], ['detail'], 1, 1)
        ) t(session_id, session_start_at, sku_sequence, event_tokens, count_items, count_events)
    """)
    c.execute("""
        create table marts.dim_products as select * from (values
            ('p1', 'c1', 't1', 3, true, true), ('p2', 'c1', 't1', 7, true, true)
        ) t(product_sku_hash, category_hash, top_category_hash, price_bucket,
            has_description_vector, has_image_vector)
    """)
    c.close()
    return DuckDBWarehouse(path)


def test_read_marts_orders_by_start_and_lowercases(warehouse: DuckDBWarehouse) -> None:
    marts = D.read_marts(warehouse)
    assert marts.sessions["session_id"].to_pylist() == ["s1", "s2", "s3", "s4"]
    assert marts.sequences["session_id"].to_pylist() == ["s1", "s2", "s3", "s4"]
    assert marts.row_counts() == {"fct_sessions": 4, "fct_session_sequences": 4,
                                  "dim_products": 2}
    assert set(D.MARTS["fct_sessions"]) <= set(marts.sessions.column_names)


def test_read_marts_time_window(warehouse: DuckDBWarehouse) -> None:
    marts = D.read_marts(warehouse, since=datetime(2024, 5, 1, 11), until=datetime(2024, 5, 1, 13))
    assert marts.sessions["session_id"].to_pylist() == ["s2", "s3"]
    assert marts.sequences.num_rows == 2 and marts.products.num_rows == 2


def test_read_marts_errors_name_the_problem(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(SkiffConfigError, match="SKIFF_MARTS_SCHEMA"):
        D.read_marts(warehouse, schema="marts; drop table x")
    with pytest.raises(SkiffConfigError, match="must be before"):
        D.read_marts(warehouse, since=T0, until=T0)
    with warehouse.connect() as con:
        con.execute("create schema empty")
    with pytest.raises(MissingInputError, match=r"empty\.fct_sessions does not exist"):
        D.read_marts(warehouse, schema="empty")
    with pytest.raises(DataContractError, match="no sessions started at or after 2030-01-01"):
        D.read_marts(warehouse, since=datetime(2030, 1, 1))


def test_json_array_columns_become_lists(warehouse: DuckDBWarehouse) -> None:
    """Snowflake hands ARRAY columns over as JSON text."""
    with warehouse.connect() as con:
        con.execute("""
            create or replace table marts.fct_session_sequences as
            select session_id, session_start_at, to_json(sku_sequence)::varchar as sku_sequence,
                   to_json(event_tokens)::varchar as event_tokens, count_items
            from (values ('s1', timestamp '2024-05-01 10:00:00', ['p1', 'p2'], ['detail'], 2))
                 t(session_id, session_start_at, sku_sequence, event_tokens, count_items)
        """)
    seqs = D.read_marts(warehouse).sequences
    assert seqs["sku_sequence"].to_pylist() == [["p1", "p2"]]
    assert seqs["event_tokens"].type == seqs["sku_sequence"].type


def test_intent_table_joins_labels_and_time_to_add(warehouse: DuckDBWarehouse) -> None:
    table = D.intent_table(D.read_marts(warehouse))
    assert table["session_id"].to_pylist() == ["s2", "s3"]
    assert table["has_purchase"].to_pylist() == [True, False]
    assert table["first_add_event_index"].to_pylist() == [3, 3]
    assert table["seconds_to_first_add"].to_pylist() == [10.0, 90.0]
    prices = D.first_item_price(table["sku_sequence"], D.read_marts(warehouse).products)
    assert prices[0] == 3.0 and np.isnan(prices[1])  # p9 is not in dim_products


def test_intent_session_features_reach_the_model_and_the_baseline(
        warehouse: DuckDBWarehouse) -> None:
    from skiff.train import features as F
    from skiff.train import intent

    marts = D.read_marts(warehouse)
    cutoff = np.datetime64("2024-05-01T11:30:00")  # s2 trains, s3 is held out
    plain = intent.prepare(marts, cutoff)
    assert plain.n_features == 0 and set(plain.tokens("held")) == {"tokens"}
    data = intent.prepare(marts, cutoff, session_features=True)
    assert data.n_features == len(F.SESSION_FEATURES)
    # s2: 10 s to the add, 2 details, first product p1 (price 3) seen once before the add
    np.testing.assert_allclose(data.train_features[0], [np.log1p(10), np.log1p(5), 3, 0, 1],
                               rtol=1e-6)
    # s3: 90 s, 1 detail, p9 has no price
    np.testing.assert_allclose(data.held_features[0], [np.log1p(90), np.log1p(90), 0, 1, 1],
                               rtol=1e-6)
    assert data.tokens("held")["features"].shape == (1, len(F.SESSION_FEATURES))
    assert data.counts("held").shape[1] == plain.counts("held").shape[1] + data.n_features
    assert data.counts("held", with_features=False).shape == plain.counts("held").shape


def test_intent_table_rejects_an_add_index_past_the_tokens(
        warehouse: DuckDBWarehouse) -> None:
    with warehouse.connect() as con:
        con.execute("update marts.fct_sessions set first_add_event_index = 9 "
                    "where session_id = 's3'")
    with pytest.raises(DataContractError, match="outside 1..len"):
        D.intent_table(D.read_marts(warehouse))


# --------------------------------------------------------------------- split by time

def test_split_holds_out_the_latest_sessions_not_a_random_sample() -> None:
    starts = np.array(["2024-05-01T10:00", "2024-05-01T14:00", "2024-05-01T11:00",
                       "2024-05-01T13:00", "2024-05-01T12:00"], dtype="datetime64[us]")
    cutoff = D.time_cutoff(starts, holdout_fraction=0.4)
    assert cutoff == np.datetime64("2024-05-01T13:00")
    split = D.split_by_time(starts, cutoff)
    assert split.held_out.tolist() == [1, 3]  # the two latest, in input order
    assert split.train.tolist() == [0, 2, 4]
    assert starts[split.train].max() < starts[split.held_out].min()
    again = D.split_by_time(starts, D.time_cutoff(starts, 0.4))
    assert again.held_out.tolist() == split.held_out.tolist()  # deterministic


def test_split_ties_at_the_cutoff_are_all_held_out() -> None:
    starts = np.array(["2024-05-01T10:00", "2024-05-01T12:00", "2024-05-01T12:00",
                       "2024-05-01T12:00"], dtype="datetime64[us]")
    split = D.split_by_time(starts, D.time_cutoff(starts, 0.5))
    assert split.train.tolist() == [0] and split.held_out.tolist() == [1, 2, 3]


def test_split_errors(warehouse: DuckDBWarehouse) -> None:
    starts = D.read_marts(warehouse).sessions["session_start_at"]
    with pytest.raises(SkiffConfigError, match="holdout_fraction"):
        D.time_cutoff(starts, 1.0)
    with pytest.raises(DataContractError, match="both need rows"):
        D.split_by_time(starts, np.datetime64("2030-01-01"))
    with pytest.raises(DataContractError, match="at least 2"):
        D.time_cutoff(np.array(["2024-05-01"], dtype="datetime64[us]"))
    with pytest.raises(DataContractError, match="timestamps"):
        D.time_cutoff(np.array([1, 2]))


def test_data_version_is_stable_and_changes_with_data_and_interval(
        warehouse: DuckDBWarehouse) -> None:
    marts = D.read_marts(warehouse)
    v1 = D.data_version(marts, interval_start=T0, interval_end="2024-05-01T11:00:00")
    assert v1 == D.data_version(D.read_marts(warehouse), interval_start=T0,
                                interval_end="2024-05-01T11:00:00")
    assert v1.max_session_end_at == "2024-05-01T13:00:05"
    assert v1.as_dict()["interval_start"] == "2024-05-01T10:00:00"
    assert len(v1.id) == 12
    assert D.data_version(marts).id != v1.id
    assert D.data_version(D.read_marts(warehouse, until=datetime(2024, 5, 1, 13))).id != \
        D.data_version(marts).id
