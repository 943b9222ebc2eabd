"""The data contract: its tables and fields, read from ``contract.toml``, and one event's check.

``contract.toml`` (beside this module) describes every field of the Coveo SIGIR eCom 2021
files: type, whether a row must carry it (always, or on some event types), the format of
every hashed id and list, the allowed values, plausible ranges, and which fields an event type
must not carry. Everything that checks data derives from it: :func:`check_event` here (the
collector, the ``/collect`` Lambda and the landing-file reader share it), the loader's column
and type checks, and the raw Great Expectations suites and the docs table that
``skiff contract --write`` generates (:mod:`skiff.validate.from_contract`).

Column names and order are those of the official files (``browsing_train.csv``,
``search_train.csv``, ``sku_to_content.csv``). The raw log adds three columns to every
row: ``batch_id`` (which load appended it), ``ingested_at`` (when, UTC) and ``arrival_ts_ms``
(epoch ms when the event reached Skiff: the collector's clock for collected events, the load
time for files a user loads, the event time for the replay source). Incremental models pick
the sessions to rebuild by ``arrival_ts_ms``, so events that arrive late are not missed.

This module needs only the standard library (``tomllib``) until an Arrow schema is asked for,
so the Lambda can carry it (with ``contract.toml``) without pyarrow.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# A little over ~400 lines: the contract's model (formats, columns, tables) and the one check
# of an event against it belong together; the Lambda carries this module whole.

__all__ = [
    "BROWSING",
    "SEARCH",
    "CATALOGUE",
    "PREDICTIONS",
    "TABLES",
    "LANDING_TABLES",
    "LOG_COLUMNS",  # noqa: F822  (built on first use by the module's __getattr__)
    "PRODUCT_ACTIONS",
    "EVENT_TYPES",
    "FORMATS",
    "CONTRACT_FILE",
    "Column",
    "Format",
    "TableContract",
    "contract_for_file",
    "contract_named",
    "check_event",
]

#: The contract's description, read once at import.
CONTRACT_FILE = Path(__file__).with_name("contract.toml")
_TYPES = ("string", "int64", "float64")
_LIST_FORMATS = ("vector", "sku_list", "token_list")


@dataclass(frozen=True)
class Format:
    """What a string value looks like (``[formats.<name>]`` of ``contract.toml``).

    :param name: the format's key.
    :param pattern: regular expression a value matches whole (``{more}`` stands for the
        repetition of a list's items after the first: ``{49}`` for 50 items).
    :param means: the format in words (``{items}``: the item count).
    :param length: every value has this many characters, if set.
    :param item: a list format's item, as a regular expression (a JSON array's items are
        checked against it before the list is written as text).
    :param item_means: that item in words.
    """

    name: str
    pattern: str
    means: str
    length: int | None = None
    item: str = ""
    item_means: str = ""


@dataclass(frozen=True)
class Column:
    """One field of a contract table (a ``[[tables.<t>.fields]]`` of ``contract.toml``).

    :param name: the column's name in the official files.
    :param type: ``string``, ``int64`` or ``float64``.
    :param required: every row carries a value (missing, null and empty are no value).
    :param format: a key of :data:`FORMATS`: what a string value looks like.
    :param items: a list format's item count.
    :param values: the allowed values (empty: any).
    :param min: the smallest plausible value of a number.
    :param max: the largest.
    :param integral: a number must be whole.
    :param time: the event time (epoch ms, checked against the receiver's window).
    :param required_if: ``(column, values)`` pairs: a row whose ``column`` holds one of
        ``values`` must carry this field.
    :param absent_if: the same, for rows that must not carry it.
    :param means: what the field holds, in words.
    """

    name: str
    type: str = "string"
    required: bool = False
    format: str = ""
    items: int | None = None
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    integral: bool = False
    time: bool = False
    required_if: tuple[tuple[str, tuple[str, ...]], ...] = ()
    absent_if: tuple[tuple[str, tuple[str, ...]], ...] = ()
    means: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.type not in _TYPES:
            problems.append(f"type {self.type!r} is not one of {', '.join(_TYPES)}")
        if self.format and self.format not in FORMATS:
            problems.append(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        if (self.format == "vector") != (self.items is not None):
            problems.append("a vector needs items, and only a vector has them")
        if self.time and self.type != "int64":
            problems.append("the event time is an int64 (epoch ms)")
        if (self.values or self.format) and self.type != "string":
            problems.append("only a string has values or a format")
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(f"min {self.min} is above max {self.max}")
        if problems:
            raise ValueError(f"{CONTRACT_FILE.name}: field {self.name}: {'; '.join(problems)}.")

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """The regular expression of the field's format (None without one)."""
        if not self.format:
            return None
        more = "{%d}" % ((self.items or 1) - 1)
        return re.compile(FORMATS[self.format].pattern.replace("{more}", more))

    @property
    def format_means(self) -> str:
        """The field's format in words ("" without one)."""
        return FORMATS[self.format].means.replace("{items}", str(self.items)) if self.format else ""

    @cached_property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.values)


@dataclass(frozen=True)
class TableContract:
    """One source file of the contract and the raw-log table it is appended to.

    :param name: file stem of the official dataset, also the raw table's name.
    :param fields: the file's columns, in the official order.
    :param time_column: epoch-millisecond column used for replay slicing, if any.
    :param row: what one row is (``event``, ``search``, ``product``).
    :param key: the columns that make one row; two rows with the same key are duplicates.
    :param means: what the table holds, in words.
    """

    name: str
    fields: tuple[Column, ...]
    time_column: str | None = None
    row: str = "row"
    key: tuple[str, ...] = ()
    means: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.fields]
        referenced = set(self.key) | {c for f in self.fields
                                      for c, _ in f.required_if + f.absent_if}
        unknown = sorted(referenced - set(names))
        if self.time_column and self.time_column not in names:
            unknown.append(self.time_column)
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"{CONTRACT_FILE.name}: table {self.name}: unknown or repeated "
                             f"columns {unknown or names}.")

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.fields)

    @cached_property
    def _names(self) -> frozenset[str]:
        return frozenset(self.columns)

    def column(self, name: str) -> Column:
        """The field called ``name``."""
        return next(c for c in self.fields if c.name == name)

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


def _conditions(spec: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((column, tuple(values)) for column, values in (spec or {}).items())


def _read_contract() -> tuple[dict[str, Format], dict[str, TableContract]]:
    """The formats and tables of ``contract.toml`` (read as package data: also from a zip).

    :raises ValueError: the file breaks its own rules (the message names the field).
    """
    text = resources.files(__package__).joinpath(CONTRACT_FILE.name).read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    formats = {name: Format(name, **spec) for name, spec in doc["formats"].items()}
    FORMATS.update(formats)  # Column.__post_init__ checks format names against it
    tables = {}
    for name, spec in doc["tables"].items():
        fields = tuple(
            Column(**{**f, "values": tuple(f.get("values", ())),
                      "required_if": _conditions(f.get("required_if")),
                      "absent_if": _conditions(f.get("absent_if"))})
            for f in spec["fields"]
        )
        times = [c.name for c in fields if c.time]
        tables[name] = TableContract(name, fields, times[0] if times else None,
                                     spec.get("row", "row"), tuple(spec.get("key", ())),
                                     spec.get("means", ""))
    return formats, tables


#: The formats of string values, by name.
FORMATS: dict[str, Format] = {}
_, _BY_NAME = _read_contract()
CATALOGUE = _BY_NAME["sku_to_content"]
BROWSING = _BY_NAME["browsing_train"]
SEARCH = _BY_NAME["search_train"]
#: The shoppers' data, in load order (catalogue first, so events can reference it): what
#: the hourly pipeline validates (raw suites, baselines) and trains on.
TABLES: tuple[TableContract, ...] = (CATALOGUE, BROWSING, SEARCH)
#: What the model server answered, one row per served session (``docs/monitoring.md``).
PREDICTIONS = _BY_NAME["predictions"]
#: Every table the landing zone and the raw log hold: :data:`TABLES`, then the predictions.
LANDING_TABLES: tuple[TableContract, ...] = (*TABLES, PREDICTIONS)
#: ``event_type`` values of the contract.
EVENT_TYPES = BROWSING.column("event_type").values
#: ``product_action`` values of the contract (empty on a pageview).
PRODUCT_ACTIONS = BROWSING.column("product_action").values
_ITEMS = {name: re.compile(f.item) for name, f in FORMATS.items() if f.item}  # list items


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
                     f"{', '.join(_BY_NAME)}.")


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
        if column.format == "vector":
            ok = (isinstance(item, (int, float)) and not isinstance(item, bool)
                  and math.isfinite(item))
        else:
            ok = isinstance(item, str) and _ITEMS[column.format].fullmatch(item) is not None
        if not ok:
            kind = ("a finite number" if column.format == "vector"
                    else FORMATS[column.format].item_means)
            raise ValueError(f"item {i} ({_show(item)}) is not {kind}")
    if column.items is not None and len(value) != column.items:
        raise ValueError(f"has {len(value)} items, not {column.items}")
    return str([float(x) for x in value] if column.format == "vector" else value)


def _number(column: Column, value: Any) -> int | float:
    if column.type == "int64":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_show(value)} is not an integer")
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit in 64 bits")
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{_show(value)} is not a number")
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        value = float(value)
    if column.integral and value != int(value):
        raise ValueError(f"{value} is not a whole number")
    if (column.min is not None and value < column.min) or (
            column.max is not None and value > column.max):
        raise ValueError(f"{value} is outside {column.min:g}..{column.max:g}")
    return value


def _value(column: Column, value: Any) -> Any:
    """``value`` as the contract's type; None for a missing one.

    :raises ValueError: the value has the wrong type, shape, format, value or range (the
        message says why).
    """
    if value is None or value == "":
        return None
    if column.type != "string":
        return _number(column, value)
    if isinstance(value, list) and column.format in _LIST_FORMATS:
        return _list_text(column, value) if value else None
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a string")
    if column.values and value not in column.allowed:
        raise ValueError(f"{_show(value)} is not one of {', '.join(column.values)}")
    if column.pattern is not None and not column.pattern.fullmatch(value):
        if column.format == "vector" and column.items is not None:
            count = value.count(",") + 1
            if count != column.items and value.startswith("[") and value.endswith("]"):
                raise ValueError(f"has {count} items, not {column.items}")
        raise ValueError(f"{_show(value)} is not {column.format_means}")
    return value


def _holds(row: dict[str, Any], conditions: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """The first of ``conditions`` the row meets, as ``"<column> is <value>"`` ("" if none)."""
    for column, values in conditions:
        if row.get(column) in values:
            return f"{column} is {row[column]}"
    return ""


def _row_rules(contract: TableContract, row: dict[str, Any]) -> str | None:
    """The contract's rules between a row's fields: ``required_if`` and ``absent_if``."""
    for column in contract.fields:
        value = row[column.name]
        if value is None and column.required_if and (kind := _holds(row, column.required_if)):
            return f"{column.name}: required when {kind}"
        if value is not None and column.absent_if and (kind := _holds(row, column.absent_if)):
            return f"{column.name}: must be empty when {kind}; got {_show(value)}"
    return None


def check_event(table: str | TableContract, event: Any, *, earliest_ms: int | None = None,
                latest_ms: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Check one event against its table's contract.

    Values must have the contract's JSON types (an epoch time is an integer, not a string),
    required fields a value, strings their format and allowed values, numbers their range,
    and the row the rules between its fields (what an event type must and must not carry):
    all as ``contract.toml`` describes them. Empty strings count as missing
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
    reason = _row_rules(contract, row)
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
