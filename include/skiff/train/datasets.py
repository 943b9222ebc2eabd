"""Training data from the warehouse marts: Arrow tables, a split by time, a data version.

The flows read the three marts dbt builds (``fct_sessions``, ``fct_session_sequences``,
``dim_products``) through the warehouse (:class:`skiff.data.warehouse.Warehouse`: DuckDB,
the embedded default, or Snowflake), which owns the SQL. Held-out sessions are always the
*latest* ones by ``session_start_at``, never a random sample, so evaluation looks like
tomorrow's traffic. :func:`data_version` fingerprints what was read, for lineage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skiff.exceptions import DataContractError, SkiffConfigError

if TYPE_CHECKING:
    from skiff.data.warehouse import Warehouse

__all__ = [
    "MARTS",
    "Marts",
    "TimeSplit",
    "DataVersion",
    "read_marts",
    "intent_table",
    "first_item_price",
    "time_cutoff",
    "split_by_time",
    "data_version",
]

#: Columns read from each mart, by table name.
MARTS: dict[str, tuple[str, ...]] = {
    "fct_sessions": (
        "session_id", "session_start_at", "session_end_at", "duration_seconds",
        "count_events", "count_pageviews", "count_details", "count_adds", "count_removes",
        "count_purchases", "count_distinct_skus", "count_searches", "has_add", "first_add_at",
        "first_add_event_index", "has_purchase", "first_purchase_at", "is_cart_abandoned",
    ),
    "fct_session_sequences": (
        "session_id", "session_start_at", "sku_sequence", "event_tokens", "count_items",
    ),
    "dim_products": ("product_sku_hash", "category_hash", "top_category_hash", "price_bucket"),
}


@dataclass(frozen=True)
class Marts:
    """The marts one training run reads, as Arrow tables (lower-case column names).

    :param sessions: ``fct_sessions``, ordered by ``session_start_at, session_id``.
    :param sequences: ``fct_session_sequences``, same order.
    :param products: ``dim_products``.
    """

    sessions: pa.Table
    sequences: pa.Table
    products: pa.Table

    def row_counts(self) -> dict[str, int]:
        """Rows of each mart, by table name.

        :return: ``{"fct_sessions": n, "fct_session_sequences": n, "dim_products": n}``.
        """
        return {
            "fct_sessions": self.sessions.num_rows,
            "fct_session_sequences": self.sequences.num_rows,
            "dim_products": self.products.num_rows,
        }


@dataclass(frozen=True)
class TimeSplit:
    """Row indices of the training and held-out sessions of one table.

    :param train: rows whose session started before ``cutoff``, in input order.
    :param held_out: rows whose session started at or after ``cutoff``, in input order.
    :param cutoff: the first held-out start time.
    """

    train: np.ndarray
    held_out: np.ndarray
    cutoff: np.datetime64


@dataclass(frozen=True)
class DataVersion:
    """A fingerprint of the data a model was trained on, recorded as a run artifact.

    :param id: ``<12 hex digits>``, a hash of the other fields; equal data, equal id.
    :param row_counts: rows of each mart.
    :param max_session_end_at: latest ``session_end_at`` in ``fct_sessions`` (ISO 8601).
    :param interval_start: start of the DAG's data interval (ISO 8601), if given.
    :param interval_end: end of the DAG's data interval (ISO 8601), if given.
    """

    id: str
    row_counts: dict[str, int]
    max_session_end_at: str | None
    interval_start: str | None = None
    interval_end: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (for Metaflow artifacts and W&B config).

        :return: every field by name.
        """
        return {
            "id": self.id,
            "row_counts": dict(self.row_counts),
            "max_session_end_at": self.max_session_end_at,
            "interval_start": self.interval_start,
            "interval_end": self.interval_end,
        }


def read_marts(
    warehouse: Warehouse,
    *,
    schema: str = "marts",
    since: datetime | None = None,
    until: datetime | None = None,
) -> Marts:
    """Read the three marts, optionally only the sessions that started in ``[since, until)``.

    :param warehouse: the warehouse the marts live in.
    :param schema: schema of the marts (``WarehouseConfig.marts_schema``).
    :param since: first session start included (naive UTC), default no lower bound.
    :param until: first session start excluded (naive UTC), default no upper bound.
    :return: the marts, sessions and sequences ordered by ``session_start_at, session_id``.
    :raises SkiffConfigError: ``schema`` is not a plain identifier, or ``since >= until``.
    :raises MissingInputError: a mart does not exist (dbt has not built it).
    :raises DataContractError: a mart lacks a column, or ``fct_sessions`` is empty.
    """
    if since is not None and until is not None and since >= until:
        raise SkiffConfigError(
            f"since={since.isoformat()} must be before until={until.isoformat()}.")
    tables = {name: _decode_json_lists(table, ("sku_sequence", "event_tokens"))
              for name, table in warehouse.read_marts(schema, MARTS, since=since,
                                                      until=until).items()}
    if tables["fct_sessions"].num_rows == 0:
        started = " and ".join(f"{word} {ts.isoformat(sep=' ')}" for word, ts in
                               (("at or after", since), ("before", until)) if ts is not None)
        raise DataContractError(f"{schema}.fct_sessions has no sessions"
                                f"{' started ' + started if started else ''}; nothing to train on.")
    return Marts(tables["fct_sessions"], tables["fct_session_sequences"], tables["dim_products"])


def _decode_json_lists(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """Snowflake returns ARRAY columns as JSON text; turn them into ``list<string>``."""
    for name in columns:
        if name in table.column_names and pa.types.is_string(table[name].type):
            try:
                rows = [None if v is None else json.loads(v) for v in table[name].to_pylist()]
            except ValueError as exc:
                raise DataContractError(f"Column {name} is text but not a JSON array: {exc}") \
                    from exc
            index = table.column_names.index(name)
            table = table.set_column(index, name, pa.array(rows, pa.list_(pa.string())))
    return table


def intent_table(marts: Marts) -> pa.Table:
    """The sessions with an add-to-cart: their event tokens, first add and purchase label.

    :param marts: the marts read by :func:`read_marts`.
    :return: columns ``session_id, session_start_at, event_tokens, sku_sequence,
        first_add_event_index, seconds_to_first_add, has_purchase``, ordered by
        ``session_start_at, session_id``. ``seconds_to_first_add`` (session start to
        the first add) is known when the add happens, so it is safe as a feature.
    :raises DataContractError: a ``first_add_event_index`` falls outside its session's tokens.
    """
    s = marts.sessions.filter(pc.fill_null(marts.sessions["has_add"], False))
    seconds = pc.divide(
        pc.cast(pc.milliseconds_between(s["session_start_at"], s["first_add_at"]), pa.float64()),
        1000.0)
    seqs = marts.sequences
    row = pc.index_in(s["session_id"], value_set=seqs["session_id"].combine_chunks())
    found = pc.is_valid(row)
    row = row.filter(found)
    joined = pa.table({
        "session_id": s["session_id"].filter(found),
        "session_start_at": seqs["session_start_at"].take(row),
        "event_tokens": seqs["event_tokens"].take(row),
        "sku_sequence": seqs["sku_sequence"].take(row),
        "first_add_event_index": s["first_add_event_index"].filter(found),
        "seconds_to_first_add": seconds.filter(found),
        "has_purchase": pc.fill_null(s["has_purchase"], False).filter(found),
    })
    joined = joined.sort_by([("session_start_at", "ascending"), ("session_id", "ascending")])
    lengths = pc.fill_null(pc.list_value_length(joined["event_tokens"]), 0)
    index = joined["first_add_event_index"]
    bad = pc.sum(pc.or_kleene(pc.less(index, 1), pc.greater(index, lengths))).as_py() or 0
    if bad:
        raise DataContractError(
            f"{bad} session(s) have first_add_event_index outside 1..len(event_tokens); "
            "fct_sessions and fct_session_sequences disagree.")
    return joined.select(["session_id", "session_start_at", "event_tokens", "sku_sequence",
                          "first_add_event_index", "seconds_to_first_add", "has_purchase"])


def first_item_price(sku_sequence: pa.Array | pa.ChunkedArray, products: pa.Table) -> np.ndarray:
    """Price bucket of each session's first product, from ``dim_products``.

    :param sku_sequence: the sessions' ``sku_sequence`` lists.
    :param products: ``dim_products`` (``product_sku_hash``, ``price_bucket``).
    :return: float64 ``(n,)``; NaN when the session has no product or its price is unknown.
    """
    if isinstance(sku_sequence, pa.ChunkedArray):
        sku_sequence = sku_sequence.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(sku_sequence), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(sku_sequence)  # null rows contribute nothing
    if len(flat) == 0:
        return np.full(len(lengths), np.nan)
    starts = np.minimum(np.cumsum(lengths) - lengths, len(flat) - 1)
    first = pc.if_else(pa.array(lengths > 0), flat.take(pa.array(starts)),
                       pa.scalar(None, flat.type))
    row = pc.index_in(first, value_set=products["product_sku_hash"].combine_chunks())
    price = pc.take(products["price_bucket"].combine_chunks(), row)
    return pc.cast(price, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _as_datetime64(start_at: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    if isinstance(start_at, pa.ChunkedArray | pa.Array):
        if start_at.null_count:
            raise DataContractError(f"{start_at.null_count} session(s) have no session_start_at.")
        start_at = start_at.to_numpy()
    values = np.asarray(start_at)
    if not np.issubdtype(values.dtype, np.datetime64):
        raise DataContractError(f"session_start_at must be timestamps, got dtype {values.dtype}.")
    return values.astype("datetime64[us]")


def time_cutoff(start_at: pa.Array | pa.ChunkedArray | np.ndarray,
                holdout_fraction: float = 0.2) -> np.datetime64:
    """The start time from which sessions are held out: the latest ``holdout_fraction``.

    Sessions that start at exactly the cutoff are all held out, so the held-out share can
    exceed ``holdout_fraction`` slightly when start times tie.

    :param start_at: ``session_start_at`` of every session.
    :param holdout_fraction: share of the (latest) sessions to hold out, in ``(0, 1)``.
    :return: the first held-out start time.
    :raises SkiffConfigError: ``holdout_fraction`` is not in ``(0, 1)``.
    :raises DataContractError: fewer than two sessions, or a null start time.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise SkiffConfigError(f"holdout_fraction={holdout_fraction} must be in (0, 1).")
    values = np.sort(_as_datetime64(start_at))
    if len(values) < 2:
        raise DataContractError(f"Need at least 2 sessions to split by time, got {len(values)}.")
    first_held = min(len(values) - 1, max(1, int(np.floor(len(values) * (1 - holdout_fraction)))))
    return values[first_held]


def split_by_time(start_at: pa.Array | pa.ChunkedArray | np.ndarray,
                  cutoff: np.datetime64) -> TimeSplit:
    """Split rows by session start: before ``cutoff`` is training, from it on is held out.

    Compute ``cutoff`` once (:func:`time_cutoff` on ``fct_sessions``) and split every
    table with it, so both models hold out the same period.

    :param start_at: ``session_start_at`` of each row.
    :param cutoff: the first held-out start time.
    :return: the row indices of each side.
    :raises DataContractError: one side is empty (the cutoff is outside the data).
    """
    values = _as_datetime64(start_at)
    cutoff = np.datetime64(cutoff, "us")
    held = values >= cutoff
    split = TimeSplit(np.flatnonzero(~held), np.flatnonzero(held), cutoff)
    if len(split.train) == 0 or len(split.held_out) == 0:
        raise DataContractError(
            f"Split at {cutoff} leaves {len(split.train)} training and {len(split.held_out)} "
            f"held-out rows (starts {values.min() if len(values) else None} .. "
            f"{values.max() if len(values) else None}); both need rows.")
    return split


def data_version(
    marts: Marts,
    *,
    interval_start: datetime | str | None = None,
    interval_end: datetime | str | None = None,
) -> DataVersion:
    """Fingerprint the marts read for a run: row counts, latest session end, data interval.

    :param marts: what :func:`read_marts` returned.
    :param interval_start: start of the DAG's data interval, if the run has one.
    :param interval_end: end of the DAG's data interval, if the run has one.
    :return: the fingerprint; its ``id`` changes when any of these change.
    """
    latest = pc.max(marts.sessions["session_end_at"]).as_py()
    fields: Mapping[str, Any] = {
        "row_counts": marts.row_counts(),
        "max_session_end_at": latest.isoformat() if latest is not None else None,
        "interval_start": _iso(interval_start),
        "interval_end": _iso(interval_end),
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return DataVersion(id=digest, **fields)


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value
