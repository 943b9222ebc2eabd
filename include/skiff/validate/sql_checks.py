"""A suite's expectations as DuckDB SQL over its batch: which rows each considers, which it
finds unexpected, the way Great Expectations' pandas engine decides it.

:func:`compile_check` turns one expectation (``{"type", "kwargs"}``, as
:class:`~skiff.validate.suites.RenderedSuite` holds it) into a :class:`Check`: SQL predicates
over the columns of the batch, for :mod:`skiff.validate.pushdown` to count and sample. The
predicates restate the pandas metrics GX runs on a DataFrame read from DuckDB, so that the
counts are the same:

* a value is missing when pandas says ``isnull`` (SQL ``NULL``, and ``NaN`` in a float
  column: DuckDB keeps ``NaN`` apart from ``NULL``, pandas does not);
* a regular expression is searched the way Python's :mod:`re` searches it: ``$`` also
  matches before a final newline and ``\\s`` is Unicode whitespace, where DuckDB's RE2 reads
  ``$`` as the very end and ``\\s`` as ASCII (:func:`re2_pattern` rewrites both; constructs
  RE2 reads differently and that have no exact rewrite are refused);
* ``value_set`` members of another type than the column never match (pandas ``isin``).

A check on a column the batch lacks, or of a type pandas would refuse, is a :class:`Check`
with an ``error``: GX reports such an expectation as "could not be evaluated", and so does the
pushdown. An expectation type not listed in :data:`SUPPORTED` raises
:class:`~skiff.exceptions.SkiffConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.exceptions import SkiffConfigError

__all__ = ["SUPPORTED", "Check", "compile_check", "re2_pattern", "quote", "literal"]

#: Expectation types pushed down -> the GX map metric (or aggregate) they are judged on.
SUPPORTED = {
    "expect_column_values_to_not_be_null": "column_values.nonnull",
    "expect_column_values_to_be_null": "column_values.null",
    "expect_column_values_to_match_regex": "column_values.match_regex",
    "expect_column_values_to_not_match_regex": "column_values.not_match_regex",
    "expect_column_value_lengths_to_equal": "column_values.value_length.equals",
    "expect_column_values_to_be_in_set": "column_values.in_set",
    "expect_column_values_to_be_between": "column_values.between",
    "expect_column_values_to_be_unique": "column_values.unique",
    "expect_compound_columns_to_be_unique": "compound_columns.unique",
    "expect_column_pair_values_a_to_be_greater_than_b": "column_pair_values.a_greater_than_b",
    "expect_column_mean_to_be_between": "column.mean",
    "expect_column_distinct_values_to_equal_set": "column.distinct_values",
}

#: Python's ``\s`` on text (``str.isspace``), as an RE2 class body.
PY_WHITESPACE = (r"\t\n\x0b\f\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
                 r"\x{202f}\x{205f}\x{3000}")
_TEXT = ("VARCHAR", "CHAR", "TEXT", "STRING")
_FLOAT = ("DOUBLE", "FLOAT", "REAL")
_NUMBER = (*_FLOAT, "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
           "UINTEGER", "USMALLINT", "UTINYINT", "DECIMAL")
_REFUSED_ESCAPES = {
    "S": "non-whitespace", "w": "a word character", "W": "a non-word character",
    "b": "a word boundary", "B": "a non-boundary",
}


@dataclass(frozen=True)
class Check:
    """One expectation as SQL over the batch.

    :param kind: ``column`` (a column map metric), ``pair``, ``multicolumn``, ``mean`` or
        ``distinct``.
    :param metric: the GX metric it is judged on, e.g. ``column_values.match_regex``.
    :param columns: the batch columns it reads (examples show them).
    :param considered: SQL: the rows it looks at (GX's non-null or not-ignored rows); ``true``
        for every row.
    :param unexpected: SQL: a considered row that breaks it; ``None`` for uniqueness (see
        ``unique``) and aggregates.
    :param unique: uniqueness over these columns among the considered rows (every row of a
        key seen more than once is unexpected).
    :param missing: SQL: the column is missing (pandas ``isnull``), for the ``column_values.
        nonnull.unexpected_count`` metric of a column check.
    :param value: SQL of the aggregate's input (``mean``, ``distinct``).
    :param per_value: ``unexpected`` reads the column's value only, and the column is text:
        it is cheaper to test once per distinct value than once per row (a session id
        repeats on every event of the session, a SKU on every event about it).
    :param error: why it cannot be evaluated (a missing column, a type GX refuses), instead.
    """

    kind: str
    metric: str
    columns: tuple[str, ...] = ()
    considered: str = "true"
    unexpected: str | None = None
    unique: tuple[str, ...] = ()
    missing: str | None = None
    value: str | None = None
    per_value: bool = False
    error: str | None = None


def quote(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A Python value as a DuckDB literal (text, number or boolean).

    :raises SkiffConfigError: any other type (e.g. ``None`` in a value set).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"'{value}'::double"
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise SkiffConfigError(f"{value!r} ({type(value).__name__}) cannot be a value of a pushed-down "
                           "check; use text, numbers or booleans.")


def re2_pattern(pattern: str) -> str:
    """``pattern`` as RE2 (DuckDB's ``regexp_matches``) reads what Python's ``re.search`` reads.

    Rewrites ``$`` outside a class to ``(?:\\n?\\z)`` (Python's end, or before a final
    newline), ``\\s`` to Python's Unicode whitespace, ``\\d``/``\\D`` to ``\\p{Nd}``/``\\P{Nd}``
    (Unicode digits) and ``\\Z`` to ``\\z``; the rest of the syntax the suites use (classes,
    groups, alternation, counted repeats, ``^``) reads the same.

    :raises SkiffConfigError: a construct without an exact rewrite: ``\\S``, ``\\w``, ``\\W``,
        ``\\b``, ``\\B``, back-references, inline flags, look-arounds, named groups.
    """
    out: list[str] = []
    i, in_class, class_start = 0, False, -1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1] if i + 1 < len(pattern) else ""
            if escaped == "s":
                out.append(PY_WHITESPACE if in_class else f"[{PY_WHITESPACE}]")
            elif escaped in "dD" and escaped:
                out.append(r"\p{Nd}" if escaped == "d" else r"\P{Nd}")
            elif escaped == "Z":
                out.append(r"\z")
            elif escaped in _REFUSED_ESCAPES or escaped.isdigit():
                what = _REFUSED_ESCAPES.get(escaped, "a back-reference or octal escape")
                raise SkiffConfigError(
                    f"regex {pattern!r}: \\{escaped} ({what}) reads differently in DuckDB's RE2 "
                    "than in Python's re; write it as a class (e.g. [0-9a-f]) to push it down.")
            else:
                out.append(char + escaped)
            i += 2
            continue
        if in_class:
            # a "]" right after "[" or "[^" is a member, not the end
            if char == "]" and i > class_start:
                in_class = False
            out.append(char)
        elif char == "[":
            in_class = True
            class_start = i + (2 if pattern.startswith("[^", i) else 1)
            out.append(char)
        elif char == "$":
            out.append(r"(?:\n?\z)")
        elif char == "(" and pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
            raise SkiffConfigError(
                f"regex {pattern!r}: flags, look-arounds and named groups ((?...) other than "
                "(?:...)) are not pushed down to DuckDB; use a plain group.")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _family(duckdb_type: str) -> str:
    kind = duckdb_type.upper()
    if kind.startswith(_TEXT):
        return "text"
    if kind.startswith(_NUMBER):
        return "number"
    if kind.startswith("BOOL"):
        return "boolean"
    if kind.startswith(("TIMESTAMP", "DATE", "TIME")):
        return "time"
    return "other"


def _value_family(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "text" if isinstance(value, str) else "other"


def _is_missing(column: str, duckdb_type: str) -> str:
    q = quote(column)
    if duckdb_type.upper().startswith(_FLOAT):
        return f"({q} is null or isnan({q}))"
    return f"{q} is null"


def _missing_column(name: str) -> str:
    # GX's own words for it (PandasExecutionEngine)
    return f'Error: The column "{name}" in BatchData does not exist.'


def compile_check(expectation: Mapping[str, Any], types: Mapping[str, str]) -> Check:
    """The SQL of one expectation over a batch with these columns.

    :param expectation: ``{"type", "kwargs"}`` (parameters filled in).
    :param types: the batch's columns and their DuckDB types, in order.
    :raises SkiffConfigError: the type is not in :data:`SUPPORTED`, or a kwarg cannot be
        pushed down (a regex construct, ``row_condition``, an unknown ``ignore_row_if``).
    """
    kind, kwargs = expectation["type"], dict(expectation["kwargs"])
    if kind not in SUPPORTED:
        raise SkiffConfigError(
            f"{kind} is not pushed down to the warehouse (whole-log validation); supported: "
            f"{', '.join(sorted(SUPPORTED))}.")
    if kwargs.get("row_condition"):
        raise SkiffConfigError(f"{kind}: row_condition is not pushed down to the warehouse.")
    metric = SUPPORTED[kind]
    if kind == "expect_compound_columns_to_be_unique":
        return _multicolumn(metric, list(kwargs["column_list"]), types,
                            kwargs.get("ignore_row_if", "all_values_are_missing"))
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        return _pair(metric, kwargs, types)
    column = kwargs["column"]
    if column not in types:
        return Check("column", metric, (column,), error=_missing_column(column))
    ctype, q = types[column], quote(column)
    missing = _is_missing(column, ctype)
    present = f"not {missing}"
    if kind == "expect_column_mean_to_be_between":
        if _family(ctype) not in ("number", "boolean"):
            return Check("mean", metric, (column,), error=f"the mean of {ctype} column {column}")
        value = f"cast({q} as double)" if _family(ctype) == "boolean" else q
        return Check("mean", metric, (column,), considered=present, value=value)
    if kind == "expect_column_distinct_values_to_equal_set":
        return Check("distinct", metric, (column,), considered=present, value=q)
    if kind == "expect_column_values_to_not_be_null":
        return Check("column", metric, (column,), unexpected=missing, missing=missing)
    if kind == "expect_column_values_to_be_null":
        return Check("column", metric, (column,), unexpected=present, missing=missing)
    if kind == "expect_column_values_to_be_unique":
        return Check("column", metric, (column,), considered=present, unique=(column,),
                     missing=missing)
    check = Check("column", metric, (column,), considered=present, missing=missing)
    family = _family(ctype)
    if kind in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
                "expect_column_value_lengths_to_equal"):
        if family != "text":
            return _error(check, f"{ctype} column {column}: the pushed-down check reads text")
        if kind == "expect_column_value_lengths_to_equal":
            return _with(check, f"length({q}) <> {literal(float(kwargs['value']))}", True)
        matches = f"regexp_matches({q}, {literal(re2_pattern(kwargs['regex']))})"
        return _with(check, f"not {matches}" if kind.endswith("_to_match_regex") else matches,
                     True)
    if kind == "expect_column_values_to_be_in_set":
        members = [literal(v) for v in kwargs["value_set"] if _value_family(v) == family]
        return _with(check, f"{q} not in ({', '.join(members)})" if members else "true",
                     family == "text")
    # expect_column_values_to_be_between
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    bounds = [v for v in (low, high) if v is not None]
    if family != "number" or any(_value_family(v) != "number" for v in bounds):
        # GX's pandas engine refuses text against numbers with these words
        return _error(check, "Column values, min_value, and max_value must either be None or "
                             "of the same type.")
    inside = []
    if low is not None:
        inside.append(f"{q} {'>' if kwargs.get('strict_min') else '>='} {literal(low)}")
    if high is not None:
        inside.append(f"{q} {'<' if kwargs.get('strict_max') else '<='} {literal(high)}")
    return _with(check, f"not ({' and '.join(inside)})")


def _with(check: Check, unexpected: str, per_value: bool = False) -> Check:
    return Check(check.kind, check.metric, check.columns, check.considered, unexpected,
                 missing=check.missing, per_value=per_value)


def _error(check: Check, message: str) -> Check:
    return Check(check.kind, check.metric, check.columns, error=message)


def _multicolumn(metric: str, columns: Sequence[str], types: Mapping[str, str],
                 ignore_row_if: str) -> Check:
    absent = [c for c in columns if c not in types]
    if absent:
        return Check("multicolumn", metric, tuple(columns), error=_missing_column(absent[0]))
    missing = [_is_missing(c, types[c]) for c in columns]
    ignored = {"all_values_are_missing": " and ".join(missing),
               "any_value_is_missing": " or ".join(missing), "never": "false"}
    if ignore_row_if not in ignored:
        raise SkiffConfigError(f"ignore_row_if={ignore_row_if!r} is not pushed down; use one "
                               f"of {sorted(ignored)}.")
    return Check("multicolumn", metric, tuple(columns),
                 considered=f"not ({ignored[ignore_row_if]})", unique=tuple(columns))


def _pair(metric: str, kwargs: Mapping[str, Any], types: Mapping[str, str]) -> Check:
    a, b = kwargs["column_A"], kwargs["column_B"]
    for name in (a, b):
        if name not in types:
            return Check("pair", metric, (a, b), error=_missing_column(name))
    missing_a, missing_b = _is_missing(a, types[a]), _is_missing(b, types[b])
    ignored = {"both_values_are_missing": f"{missing_a} and {missing_b}",
               "either_value_is_missing": f"{missing_a} or {missing_b}", "neither": "false"}
    how = kwargs.get("ignore_row_if", "both_values_are_missing")
    if how not in ignored:
        raise SkiffConfigError(f"ignore_row_if={how!r} is not pushed down; use one of "
                               f"{sorted(ignored)}.")
    # pandas compares a missing value as false: such a row (when not ignored) is unexpected
    op = ">=" if kwargs.get("or_equal") else ">"
    return Check("pair", metric, (a, b), considered=f"not ({ignored[how]})",
                 unexpected=f"not coalesce({quote(a)} {op} {quote(b)}, false)")
