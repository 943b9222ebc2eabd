"""Deliberately bad batches: one per defect the validate stage must catch.

A bad batch is the delivery of one data interval with a defect planted in it, built from
that interval's good rows (:class:`IntervalData`, read from a source that
:func:`skiff.data.generator.generate` wrote). It is appended to an otherwise good raw log *instead
of* the interval's good delivery, as a broken upstream would deliver it; the next run of
the interval must then fail at the validate task of :attr:`Defect.task_id`, naming
:attr:`Defect.expect` (the first to catch it; the suites in parentheses, after dbt, catch it
too: :attr:`Defect.also`). The tests build every defect with :func:`build_bad_batch`, and so
does ``skiff corrupt --defect NAME`` (``make run-bad DEFECT=NAME``) for a demonstration.

=========================== ======================== ================================
defect                      caught by (task)         what the batch does
=========================== ======================== ================================
``duplicate_events``        validate_raw_events      10% of the events sent twice
``null_session_ids``        validate_raw_events      5% of the events lose their session id
``malformed_session_ids``   validate_raw_events      5% of the events have session id ``undefined``
``null_timestamps``         validate_raw_events      5% of the events lose their timestamp
``bad_event_types``         validate_raw_events      5% of the events are of type ``click``
``bad_actions``             validate_raw_events      5% of the product events are ``wishlist``
``future_timestamps``       validate_raw_events      5% logged in microseconds (far future)
``ancient_timestamps``      validate_raw_events      5% logged in seconds (1970)
``missing_column``          validate_raw_schema      ``hashed_url`` renamed in the raw table
``retyped_column``          validate_raw_schema      event time stored as text
``empty_hour``              validate_volume          nothing delivered
``volume_spike``            validate_volume          the hour's sessions sent 10 times
``unknown_skus``            validate_event_mix       30% of the SKUs not in the catalogue
                            (validate_session_events)
``duplicate_session_ids``   validate_session_events  20% of the sessions reuse the id of a
                                                     session hours earlier
``out_of_order_events``     validate_event_mix       sessions purchase before they add
                            (validate_sessions)
``label_rate``              validate_event_mix       every session adds to cart
                            (validate_sessions)
``bad_prices``              validate_products        catalogue re-sent with buckets 0, 11, 42
=========================== ======================== ================================

The schema defects change the raw table itself (DuckDB only); every other defect only
appends rows, so the log's good history stays untouched.
"""

# Longer than ~400 lines: one short function per planted defect (the table DEFECTS), kept
# together so the list of defects reads as one catalogue.

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from skiff.exceptions import SkiffError
from skiff.data.contract import BROWSING, CATALOGUE, TableContract
from skiff.times import to_epoch_ms

__all__ = [
    "DEFECTS",
    "BadBatch",
    "Defect",
    "IntervalData",
    "append_bad_batch",
    "build_bad_batch",
]

_SHARE = 0.05  # rows a row-level defect touches
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class IntervalData:
    """The good rows a bad batch is made from.

    :param start: the data interval's start (aware UTC).
    :param end: its end (exclusive).
    :param browsing: the interval's good browsing events (contract schema).
    :param history: browsing events of the day before the interval (for earlier sessions).
    :param catalogue: the catalogue (``sku_to_content``).
    """

    start: datetime
    end: datetime
    browsing: pa.Table
    history: pa.Table
    catalogue: pa.Table

    @property
    def start_ms(self) -> int:
        return to_epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_epoch_ms(self.end)

    @classmethod
    def from_source(cls, source_dir: Path, start: datetime, end: datetime,
                    history_hours: int = 24) -> IntervalData:
        """Read the interval, the hours before it and the catalogue from a source folder.

        :param source_dir: contract files (what ``skiff generate`` writes).
        :param start: interval start (aware).
        :param end: interval end (aware, exclusive).
        :param history_hours: hours of events read before the interval.
        """
        from skiff.data.loader import discover, read_batches

        sources = {s.contract.name: s for s in discover(source_dir)}
        for name in (BROWSING.name, CATALOGUE.name):
            if name not in sources:
                raise SkiffError(f"{source_dir} has no {name} file to build a bad batch from.")
        start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)

        def read(contract: TableContract, **slice_: int) -> pa.Table:
            tables = list(read_batches(sources[contract.name], **slice_))
            return pa.concat_tables(tables) if tables else contract.schema.empty_table()

        return cls(
            start=start,
            end=end,
            browsing=read(BROWSING, since_ms=start_ms, until_ms=end_ms),
            history=read(BROWSING, since_ms=start_ms - history_hours * _HOUR_MS, until_ms=start_ms),
            catalogue=read(CATALOGUE),
        )


@dataclass(frozen=True)
class BadBatch:
    """A bad delivery of one interval.

    :param defect: the defect planted.
    :param tables: rows to append, by contract table name (contract schema); empty for an
        empty hour.
    :param drift: SQL run on the warehouse after the append (schema defects), with
        ``{raw_schema}`` to fill in.
    :param note: what was done, in words.
    """

    defect: str
    tables: dict[str, pa.Table] = field(default_factory=dict)
    drift: tuple[str, ...] = ()
    note: str = ""

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


@dataclass(frozen=True)
class Defect:
    """A defect the validate stage must catch.

    :param name: its name (``skiff corrupt --defect NAME``).
    :param task_id: the validate task that must fail.
    :param expect: the defect name the failure message must contain (``meta.defect`` of the
        suite's expectation).
    :param description: what the bad batch does.
    :param build: makes the batch from the good rows and a random generator.
    :param also: ``(task_id, defect)`` of later suites that catch it too (the run stops at
        ``task_id`` first; the tests check these on the marts all the same).
    """

    name: str
    task_id: str
    expect: str
    description: str
    build: Callable[[IntervalData, np.random.Generator], BadBatch]
    also: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- helpers


def _pick(rng: np.random.Generator, candidates: np.ndarray | int, share: float) -> np.ndarray:
    """Indices of ``share`` of ``candidates`` (row indices, or range(n)), at least one."""
    pool = np.arange(candidates) if isinstance(candidates, int) else np.asarray(candidates)
    if len(pool) == 0:
        raise SkiffError("the interval has no rows to plant this defect in")
    size = max(1, int(round(len(pool) * share)))
    return np.sort(rng.choice(pool, size=min(size, len(pool)), replace=False))


def _replace(table: pa.Table, column: str, rows: np.ndarray, values: pa.Array | list) -> pa.Table:
    """``table`` with ``column`` set to ``values`` at ``rows``."""
    col = table.column(column).combine_chunks()
    mask = np.zeros(table.num_rows, bool)
    mask[rows] = True
    replacement = values if isinstance(values, pa.Array) else pa.array(values, col.type)
    new = pc.replace_with_mask(col, pa.array(mask), replacement.cast(col.type))
    return table.set_column(table.schema.get_field_index(column), column, new)


def _hashes(rng: np.random.Generator, n: int) -> list[str]:
    return [rng.bytes(32).hex() for _ in range(n)]


def _product_rows(table: pa.Table) -> np.ndarray:
    valid = pc.is_valid(table.column("product_sku_hash"))
    return np.flatnonzero(valid.to_numpy(zero_copy_only=False))


def _rename_sessions(table: pa.Table, mapping: dict[str, str]) -> pa.Table:
    ids = table.column("session_id_hash").to_pylist()
    return table.set_column(0, "session_id_hash",
                            pa.array([mapping.get(i, i) for i in ids], pa.string()))


# --------------------------------------------------------------------------- builders


def _duplicate_events(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    rows = _pick(rng, d.browsing.num_rows, 0.10)
    return BadBatch("duplicate_events", {BROWSING.name: pa.concat_tables(
        [d.browsing, d.browsing.take(pa.array(rows))])}, note=f"{len(rows)} events sent twice")


def _set_values(column: str, defect: str, value: object | None = None,
                 what: str = "") -> Callable[[IntervalData, np.random.Generator], BadBatch]:
    def build(d: IntervalData, rng: np.random.Generator) -> BadBatch:
        rows = _pick(rng, d.browsing.num_rows, _SHARE)
        table = _replace(d.browsing, column, rows, [value] * len(rows))
        return BadBatch(defect, {BROWSING.name: table}, note=f"{len(rows)} events {what}")
    return build


def _bad_actions(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    rows = _pick(rng, _product_rows(d.browsing), _SHARE)
    table = _replace(d.browsing, "product_action", rows, ["wishlist"] * len(rows))
    return BadBatch("bad_actions", {BROWSING.name: table},
                    note=f"{len(rows)} product events with action 'wishlist'")


def _scaled_timestamps(defect: str, scale: Callable[[pa.Array], pa.Array],
                       what: str) -> Callable[[IntervalData, np.random.Generator], BadBatch]:
    def build(d: IntervalData, rng: np.random.Generator) -> BadBatch:
        rows = _pick(rng, d.browsing.num_rows, _SHARE)
        ts = d.browsing.column("server_timestamp_epoch_ms").combine_chunks().take(pa.array(rows))
        table = _replace(d.browsing, "server_timestamp_epoch_ms", rows, scale(ts))
        return BadBatch(defect, {BROWSING.name: table}, note=f"{len(rows)} events {what}")
    return build


def _schema_drift(defect: str, sql: str,
                  what: str) -> Callable[[IntervalData, np.random.Generator], BadBatch]:
    def build(d: IntervalData, rng: np.random.Generator) -> BadBatch:
        return BadBatch(defect, {BROWSING.name: d.browsing}, drift=(sql,), note=what)
    return build


def _empty_hour(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    return BadBatch("empty_hour", {}, note="nothing delivered for the hour")


def _volume_spike(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    sessions = pc.unique(d.browsing.column("session_id_hash")).to_pylist()
    copies = [d.browsing]
    for _ in range(9):
        renamed = dict(zip(sessions, _hashes(rng, len(sessions))))
        copies.append(_rename_sessions(d.browsing, renamed))
    return BadBatch("volume_spike", {BROWSING.name: pa.concat_tables(copies)},
                    note=f"the hour's {len(sessions)} sessions sent 10 times under new ids")


def _unknown_skus(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    rows = _pick(rng, _product_rows(d.browsing), 0.30)
    table = _replace(d.browsing, "product_sku_hash", rows, _hashes(rng, len(rows)))
    return BadBatch("unknown_skus", {BROWSING.name: table},
                    note=f"{len(rows)} product events with SKUs missing from the catalogue")


def _duplicate_session_ids(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    earlier = d.history.group_by("session_id_hash").aggregate(
        [("server_timestamp_epoch_ms", "min"), ("server_timestamp_epoch_ms", "max")])
    ended = earlier.column("server_timestamp_epoch_ms_max").to_numpy()
    started = earlier.column("server_timestamp_epoch_ms_min").to_numpy()
    old = earlier.column("session_id_hash").to_numpy(zero_copy_only=False)[
        (ended < d.start_ms - 4 * _HOUR_MS) & (started >= d.start_ms - 20 * _HOUR_MS)]
    sessions = np.array(pc.unique(d.browsing.column("session_id_hash")).to_pylist(), object)
    chosen = sessions[_pick(rng, len(sessions), 0.20)]
    if len(old) < len(chosen):
        raise SkiffError(
            f"duplicate_session_ids needs {len(chosen)} sessions that ended 4-20 hours before "
            f"the interval; the history has {len(old)}."
        )
    mapping = dict(zip(chosen, rng.choice(old, size=len(chosen), replace=False)))
    return BadBatch("duplicate_session_ids", {BROWSING.name: _rename_sessions(d.browsing, mapping)},
                    note=f"{len(chosen)} sessions reuse the id of a session 4-20 hours earlier")


def _session_rows(d: IntervalData) -> dict[str, list[dict]]:
    by_session: dict[str, list[dict]] = {}
    for row in d.browsing.to_pylist():
        by_session.setdefault(row["session_id_hash"], []).append(row)
    return by_session


def _label_rate(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    added = []
    for rows in _session_rows(d).values():
        if any(r["product_action"] == "add" for r in rows):
            continue
        last = max(rows, key=lambda r: r["server_timestamp_epoch_ms"])
        products = [r for r in rows if r["product_sku_hash"]]
        sku_row = products[-1] if products else None
        sku = sku_row["product_sku_hash"] if sku_row else d.catalogue.column(0)[0].as_py()
        added.append({**last, "event_type": "event_product", "product_action": "add",
                      "product_sku_hash": sku,
                      "hashed_url": sku_row["hashed_url"] if sku_row else last["hashed_url"]})
    extra = pa.Table.from_pylist(added, schema=BROWSING.schema)
    return BadBatch("label_rate", {BROWSING.name: pa.concat_tables([d.browsing, extra])},
                    note=f"{len(added)} sessions given an add to cart (all of them now add)")


def _out_of_order_events(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    purchases = []
    for rows in _session_rows(d).values():
        adds = [r for r in rows if r["product_action"] == "add"]
        if not adds:
            continue
        first = min(adds, key=lambda r: r["server_timestamp_epoch_ms"])
        if first["server_timestamp_epoch_ms"] <= d.start_ms:
            continue
        ts = max(d.start_ms, first["server_timestamp_epoch_ms"] - 60_000)
        purchases.append({**first, "product_action": "purchase", "server_timestamp_epoch_ms": ts})
    if not purchases:
        raise SkiffError("out_of_order_events needs sessions adding to cart in the interval")
    extra = pa.Table.from_pylist(purchases, schema=BROWSING.schema)
    return BadBatch("out_of_order_events", {BROWSING.name: pa.concat_tables([d.browsing, extra])},
                    note=f"{len(purchases)} sessions purchase a minute before their first add")


def _bad_prices(d: IntervalData, rng: np.random.Generator) -> BadBatch:
    rows = _pick(rng, d.catalogue.num_rows, _SHARE)
    prices = pa.array(rng.choice([0.0, 11.0, 42.0, -1.0], size=len(rows)))
    resent = _replace(d.catalogue.take(pa.array(rows)), "price_bucket",
                      np.arange(len(rows)), prices)
    return BadBatch("bad_prices", {BROWSING.name: d.browsing, CATALOGUE.name: resent},
                    note=f"{len(rows)} SKUs re-sent with price buckets outside 1-10")


def _defects() -> dict[str, Defect]:
    raw, schema, volume = "validate_raw_events", "validate_raw_schema", "validate_volume"
    mix = "validate_event_mix"
    ts = "server_timestamp_epoch_ms"
    table = [
        ("duplicate_events", raw, "duplicate_events", "10% of the events sent twice",
         _duplicate_events),
        ("null_session_ids", raw, "missing_session_id_hash", "5% of the events lose their session id",
         _set_values("session_id_hash", "null_session_ids", None, "without a session id")),
        ("malformed_session_ids", raw, "malformed_session_id_hash",
         "5% of the events have session id 'undefined' (a collector bug)",
         _set_values("session_id_hash", "malformed_session_ids", "undefined",
                     "with session id 'undefined'")),
        ("null_timestamps", raw, "missing_server_timestamp_epoch_ms", "5% of the events lose their timestamp",
         _set_values(ts, "null_timestamps", None, "without a timestamp")),
        ("bad_event_types", raw, "unknown_event_type", "5% of the events are of type 'click'",
         _set_values("event_type", "bad_event_types", "click", "of type 'click'")),
        ("bad_actions", raw, "unknown_product_action", "5% of the product events have action 'wishlist'",
         _bad_actions),
        ("future_timestamps", raw, "future_timestamps",
         "5% of the events logged in microseconds (far in the future)",
         _scaled_timestamps("future_timestamps", lambda t: pc.multiply(t, 1000),
                            "timestamped in microseconds")),
        ("ancient_timestamps", raw, "ancient_timestamps",
         "5% of the events logged in seconds (January 1970)",
         _scaled_timestamps("ancient_timestamps", lambda t: pc.divide(t, 1000),
                            "timestamped in seconds")),
        ("missing_column", schema, "schema_drift",
         "the raw table's hashed_url column renamed to page_url_hash",
         _schema_drift("missing_column",
                       "alter table {raw_schema}.browsing_train "
                       "rename column hashed_url to page_url_hash",
                       "raw.browsing_train: hashed_url renamed to page_url_hash")),
        ("retyped_column", schema, "schema_drift",
         "the raw table's event time stored as text",
         _schema_drift("retyped_column",
                       f"alter table {{raw_schema}}.browsing_train alter column {ts} type varchar",
                       f"raw.browsing_train: {ts} retyped to VARCHAR")),
        ("empty_hour", volume, "empty_hour", "nothing delivered for the hour", _empty_hour),
        ("volume_spike", volume, "volume_spike", "the hour's sessions sent 10 times under new ids",
         _volume_spike),
        ("unknown_skus", mix, "unknown_skus",
         "30% of the product events have SKUs missing from the catalogue", _unknown_skus,
         (("validate_session_events", "unknown_skus"),)),
        ("duplicate_session_ids", "validate_session_events", "duplicate_session_ids",
         "20% of the sessions reuse the id of a session 4-20 hours earlier",
         _duplicate_session_ids),
        ("out_of_order_events", mix, "mix_shift",
         "sessions purchase a minute before their first add to cart", _out_of_order_events,
         (("validate_sessions", "out_of_order_events"),)),
        ("label_rate", mix, "mix_shift",
         "every session of the hour adds to cart (label rate ~100%)", _label_rate,
         (("validate_sessions", "label_rate"),)),
        ("bad_prices", "validate_products", "bad_prices",
         "5% of the catalogue re-sent with price buckets 0, 11, 42 or -1", _bad_prices),
    ]
    return {row[0]: Defect(*row) for row in table}


#: Every defect, by name.
DEFECTS: dict[str, Defect] = _defects()


def build_bad_batch(defect: str, data: IntervalData, seed: int = 0) -> BadBatch:
    """The bad delivery of ``data``'s interval with ``defect`` planted.

    :param defect: a name of :data:`DEFECTS`.
    :param data: the interval's good rows.
    :param seed: random seed (which rows are touched).
    :raises SkiffError: unknown defect, or the data cannot carry it (e.g. no history).
    """
    if defect not in DEFECTS:
        raise SkiffError(f"Unknown defect {defect!r}; choose one of {sorted(DEFECTS)}.")
    return DEFECTS[defect].build(data, np.random.default_rng(seed))


def append_bad_batch(bad: BadBatch, warehouse, batch_id: str) -> dict[str, int]:
    """Append a bad batch to the raw log (and apply its schema drift), like a load.

    :param bad: the batch.
    :param warehouse: the warehouse (:class:`skiff.data.warehouse.DuckDBWarehouse` for drift).
    :param batch_id: stamped on the rows.
    :return: rows appended per raw table.
    """
    from skiff.data.loader import load_dir
    from skiff.data.warehouse import DuckDBWarehouse

    if bad.drift and not isinstance(warehouse, DuckDBWarehouse):
        raise SkiffError(f"{bad.defect} changes the raw table's schema: DuckDB only.")
    rows: dict[str, int] = {}
    if bad.tables:
        with tempfile.TemporaryDirectory(prefix="skiff-bad-") as tmp:
            for name, table in bad.tables.items():
                pq.write_table(table, Path(tmp) / f"{name}.parquet")
            # arrival = each event's time, as the replay batch it stands in for: the interval's
            # raw checks and dbt models take the rows that arrived in it
            rows = load_dir(Path(tmp), warehouse, batch_id=batch_id, arrival="event").rows
    for sql in bad.drift:
        with warehouse.connect() as con:
            con.execute(sql.format(raw_schema=warehouse.raw_schema))
    return rows


