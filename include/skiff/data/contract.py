"""The data contract: the Coveo SIGIR eCom 2021 files, the raw log tables, and one event's check.

Column names and order are those of the official files (``browsing_train.csv``,
``search_train.csv``, ``sku_to_content.csv``). The raw log adds three columns to every
row: ``batch_id`` (which load appended it), ``ingested_at`` (when, UTC) and ``arrival_ts_ms``
(epoch ms when the event reached Skiff: the collector's clock for collected events, the load
time for files a user loads, the event time for the replay source). Incremental models pick
the sessions to rebuild by ``arrival_ts_ms``, so events that arrive late are not missed.

:func:`check_event` checks one event (a JSON object) against its table's contract: the
collector, the ``/collect`` Lambda and the landing-file reader share it. This module
imports pyarrow only when a schema is asked for, so the Lambda can use it without pyarrow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BROWSING",
    "SEARCH",
    "CATALOGUE",
    "TABLES",
    "LOG_COLUMNS",  # noqa: F822  (built on first use by the module's __getattr__)
    "PRODUCT_ACTIONS",
    "EVENT_TYPES",
    "RULES",
    "Column",
    "TableContract",
    "contract_for_file",
    "contract_named",
    "check_event",
]

#: ``product_action`` values of the contract (empty on a pageview).
PRODUCT_ACTIONS = ("detail", "add", "remove", "purchase")
#: ``event_type`` values of the contract.
EVENT_TYPES = ("event_product", "pageview")

_HASH = re.compile(r"[0-9a-f]{64}")
_TYPES = ("string", "int64", "float64")
#: Value rules of string columns: what :func:`check_event` demands beyond the type.
RULES = {
    "hash": "a 64-character lowercase hex hash",
    "vector": 'a list of numbers, as a JSON array or its text "[0.1, -0.2]"',
    "skus": "a list of SKU hashes, as a JSON array or its text \"['a', 'b']\"",
    "": "",
}


@cache
def _log_columns() -> pa.Schema:
    """Columns the raw log adds to every contract table (``LOG_COLUMNS``); a table made before
    ``arrival_ts_ms`` existed gets it added by :meth:`~skiff.data.warehouse.Warehouse.ensure_raw_tables`."""
    import pyarrow as pa

    return pa.schema([("batch_id", pa.string()), ("ingested_at", pa.timestamp("us")),
                      ("arrival_ts_ms", pa.int64())])


def __getattr__(name: str) -> Any:
    if name == "LOG_COLUMNS":  # built on first use: pyarrow is not imported with this module
        return _log_columns()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    :param name: the column's name in the official files.
    :param type: ``string``, ``int64`` or ``float64``.
    :param required: an event without a value (missing, null, empty) breaks the contract.
    :param rule: a key of :data:`RULES`: what a string value must look like.
    """

    name: str
    type: str = "string"
    required: bool = False
    rule: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPES or self.rule not in RULES:
            raise ValueError(f"Column {self.name}: type {self.type!r} must be one of {_TYPES}, "
                             f"rule {self.rule!r} one of {sorted(RULES)}.")


@dataclass(frozen=True)
class TableContract:
    """One source file of the contract and the raw-log table it is appended to.

    :param name: file stem of the official dataset, also the raw table's name.
    :param fields: the file's columns, in the official order.
    :param time_column: epoch-millisecond column used for replay slicing, if any.
    """

    name: str
    fields: tuple[Column, ...]
    time_column: str | None = None

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.fields)

    @cached_property
    def _names(self) -> frozenset[str]:
        return frozenset(self.columns)

    @cached_property
    def schema(self) -> pa.Schema:
        """The columns with their raw-log (Arrow) types, in the official order."""
        import pyarrow as pa

        return pa.schema([(c.name, getattr(pa, c.type)()) for c in self.fields])

    @property
    def log_schema(self) -> pa.Schema:
        """Schema of the raw-log table: contract columns + ``batch_id`` + ``ingested_at``."""
        import pyarrow as pa

        return pa.schema(list(self.schema) + list(_log_columns()))


# product_action and product_sku_hash are required on an event_product, product_action is
# empty on a pageview: check_event applies these rules between columns.
BROWSING = TableContract(
    "browsing_train",
    (
        Column("session_id_hash", required=True, rule="hash"),
        Column("event_type", required=True),
        Column("product_action"),
        Column("product_sku_hash", rule="hash"),
        Column("server_timestamp_epoch_ms", "int64", required=True),
        Column("hashed_url", rule="hash"),
    ),
    time_column="server_timestamp_epoch_ms",
)

SEARCH = TableContract(
    "search_train",
    (
        Column("session_id_hash", required=True, rule="hash"),
        Column("query_vector", required=True, rule="vector"),
        Column("clicked_skus_hash", rule="skus"),
        Column("product_skus_hash", rule="skus"),
        Column("server_timestamp_epoch_ms", "int64", required=True),
    ),
    time_column="server_timestamp_epoch_ms",
)

CATALOGUE = TableContract(
    "sku_to_content",
    (
        Column("product_sku_hash", required=True, rule="hash"),
        Column("description_vector", rule="vector"),
        Column("category_hash"),
        Column("image_vector", rule="vector"),
        Column("price_bucket", "float64"),
    ),
)

#: Every contract table, in load order (catalogue first, so events can reference it).
TABLES: tuple[TableContract, ...] = (CATALOGUE, BROWSING, SEARCH)
_BY_NAME = {table.name: table for table in TABLES}


def contract_for_file(stem: str) -> TableContract | None:
    """Return the contract a file belongs to by its name, or ``None``.

    ``browsing_train.csv``, ``browsing_train.parquet`` and the official
    ``browsing_train_sample.csv`` all map to :data:`BROWSING`.

    :param stem: the file name without its extension(s).
    """
    for table in TABLES:
        if stem == table.name or stem.startswith(table.name + "_"):
            return table
    return None


def contract_named(name: str) -> TableContract:
    """The contract table called ``name``.

    :raises ValueError: no table has that name (the message lists them).
    """
    table = _BY_NAME.get(name)
    if table is not None:
        return table
    raise ValueError(f"{name!r} is not a contract table; use one of "
                     f"{', '.join(t.name for t in TABLES)}.")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _iso(ms: int) -> str:
    try:
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"epoch ms {ms}"


def _list_text(column: Column, value: list[Any]) -> str:
    """The official files' text of a list (``str`` of the Python list), checking its items."""
    for i, item in enumerate(value):
        if column.rule == "vector":
            ok = (isinstance(item, (int, float)) and not isinstance(item, bool)
                  and math.isfinite(item))
        else:
            ok = isinstance(item, str) and _HASH.fullmatch(item) is not None
        if not ok:
            raise ValueError(f"item {i} ({_show(item)}) is not {RULES[column.rule]}")
    return str([float(x) for x in value] if column.rule == "vector" else value)


def _value(column: Column, value: Any) -> Any:
    """``value`` as the contract's type; None for a missing one.

    :raises ValueError: the value has the wrong type or shape (the message says why).
    """
    if value is None or value == "":
        return None
    if type(value) is str and column.type == "string":  # the common case, checked first
        if column.rule == "":
            return value
        if column.rule == "hash" and _HASH.fullmatch(value):
            return value
    if column.type == "int64":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_show(value)} is not an integer")
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit in 64 bits")
        return value
    if column.type == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{_show(value)} is not a number")
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return float(value)
    if isinstance(value, list) and column.rule in ("vector", "skus"):
        return _list_text(column, value) if value else None
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a string")
    if column.rule == "hash" and not _HASH.fullmatch(value):
        raise ValueError(f"{_show(value)} is not {RULES['hash']}")
    if column.rule in ("vector", "skus") and not (value.startswith("[") and value.endswith("]")):
        raise ValueError(f"{_show(value)} is not {RULES[column.rule]}")
    return value


def _browsing_rules(row: dict[str, Any]) -> str | None:
    """The rules between browsing columns: event type, product action and SKU."""
    event_type, action = row["event_type"], row["product_action"]
    if event_type not in EVENT_TYPES:
        return f"event_type: {_show(event_type)} is not one of {', '.join(EVENT_TYPES)}"
    if event_type == "pageview":
        if action is not None:
            return f"product_action: must be empty on a pageview; got {_show(action)}"
        return None
    if action is None:
        return (f"product_action: required on an event_product (one of "
                f"{', '.join(PRODUCT_ACTIONS)})")
    if action not in PRODUCT_ACTIONS:
        return f"product_action: {_show(action)} is not one of {', '.join(PRODUCT_ACTIONS)}"
    if row["product_sku_hash"] is None:
        return "product_sku_hash: required on an event_product"
    return None


def check_event(table: str | TableContract, event: Any, *, earliest_ms: int | None = None,
                latest_ms: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Check one event against its table's contract.

    Values must have the contract's JSON types (an epoch time is an integer, not a string),
    required columns a value, hashes 64 lowercase hex characters, and a browsing event the
    contract's event type, product action and SKU rules. Empty strings count as missing
    (the official CSVs write nulls so); list columns also accept a JSON array, written as
    the official files' text. Unknown keys break the contract.

    :param table: the contract table, or its name.
    :param event: the event, decoded from JSON.
    :param earliest_ms: the event time must be at or after this epoch ms (None: unchecked).
    :param latest_ms: the event time must be before this epoch ms (None: unchecked).
    :return: ``(row, None)``, the row holding every contract column in order, or
        ``(None, reason)``, the reason naming the field and why.
    """
    contract = contract_named(table) if isinstance(table, str) else table
    if not isinstance(event, dict):
        kind = "a list" if isinstance(event, list) else type(event).__name__
        return None, f"event: not a JSON object (got {kind})"
    if not contract._names.issuperset(event):
        name = str(next(key for key in event if key not in contract._names))
        name = name if len(name) <= 40 else name[:37] + "..."
        return None, (f"{name}: not a field of {contract.name} (its fields: "
                      f"{', '.join(contract.columns)})")
    row: dict[str, Any] = {}
    for column in contract.fields:
        try:
            value = _value(column, event.get(column.name))
        except ValueError as exc:
            return None, f"{column.name}: {exc}"
        if value is None and column.required:
            return None, f"{column.name}: missing (required)"
        row[column.name] = value
    if contract.name == "browsing_train":
        reason = _browsing_rules(row)
        if reason:
            return None, reason
    ts_column = contract.time_column
    if ts_column is not None:
        ts = row[ts_column]
        if earliest_ms is not None and ts < earliest_ms:
            return None, (f"{ts_column}: {ts} is before {_iso(earliest_ms)}, the earliest "
                          "plausible event time (seconds instead of milliseconds?)")
        if latest_ms is not None and ts >= latest_ms:
            return None, (f"{ts_column}: {ts} ({_iso(ts)}) is in the future: at or after "
                          f"{_iso(latest_ms)}, the receiver's clock plus the allowed skew")
    return row, None
