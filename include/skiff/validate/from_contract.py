"""What is written from the data contract: the raw tables' GX suites and the docs' table.

``include/skiff/data/contract.toml`` describes every field; this module turns it into

- one Great Expectations suite per contract table (``include/gx/suites/<table>.yml``), every
  field checked: present where it must be (always, or for some event types), absent where it
  must not be, its format (every hashed id, list and vector), allowed values and range, the
  event time plausible, one row per key. Rules between fields become columns of the suite's
  batch SQL (``required_if__<field>``, ``absent_if__<field>``: null on a good row), so every
  check is a plain column expectation that runs alike on pandas (DuckDB) and Snowflake;
- the ``event_mix`` suite of :mod:`skiff.validate.baseline` (the shares the contract's value
  sets and optional fields give);
- the contract's table in ``docs/validation.md`` (linked from the README), between
  ``<!-- contract:start -->`` and ``<!-- contract:end -->``: every table the landing zone
  holds, the ``predictions`` too (no raw suite: the collector checks each prediction event
  and rejects, counted, what breaks the contract).

:func:`write_generated` (``skiff contract --write``, ``make contract``) writes them;
:func:`stale_files` tells which differ from what the contract gives (a test fails on any).
Each expectation's ``meta.defect`` is named from its rule and field: ``missing_<field>``,
``unexpected_<field>``, ``unknown_<field>``, ``malformed_<field>``, ``<field>_out_of_range``,
``future_timestamps``, ``ancient_timestamps``, ``duplicate_<row>s``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skiff.data.contract import FORMATS, LANDING_TABLES, TABLES, Column, TableContract

__all__ = ["raw_suite", "suite_text", "yaml_text", "contract_table", "generated_files", "write_generated",
           "stale_files", "condition_sql", "key_sql", "sql_text", "GENERATED_HEADER"]

#: First lines of a generated suite file.
GENERATED_HEADER = ("# Generated from include/skiff/data/contract.toml by `skiff contract --write`"
                    " (make contract):\n# edit the contract, not this file.\n")
_START, _END = "<!-- contract:start -->", "<!-- contract:end -->"
#: The page holding the contract's table, under the repository.
_TABLE_PAGE = "docs/validation.md"

# The rows of the interval: those that ARRIVED in it (arrival_ts_ms in [start, end)), plus the
# rows no arrival places (missing, before the log's start, in the future: the replay source and
# `skiff corrupt` stamp the event's own time, bad or not) when they came with the interval's
# arrivals (same load batch) or were ingested during the interval. A row with a plausible
# arrival belongs to that arrival's interval only: a bad delivery fails its own interval.
# "distinct" batch ids: over the whole log (skiff validate --all) the subquery returns millions
# of rows of a few thousand ids, and DuckDB builds its IN table (memory) from all it returns.
_WINDOW = """\
from {{raw_schema}}.{table}
where (arrival_ts_ms >= {{start_ms}} and arrival_ts_ms < {{end_ms}})
    or (
        (arrival_ts_ms is null
            or arrival_ts_ms < {{earliest_event_ms}}
            or arrival_ts_ms >= {{future_cutoff_ms}})
        and (
            batch_id in (
                select distinct batch_id
                from {{raw_schema}}.{table}
                where arrival_ts_ms >= {{start_ms}} and arrival_ts_ms < {{end_ms}}
            )
            or (ingested_at >= cast('{{start_ts}}' as timestamp)
                and ingested_at < cast('{{end_ts}}' as timestamp))
        )
    )"""


def sql_text(value: str) -> str:
    """``value`` as an SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(sql_text(v) for v in values)


def condition_sql(conditions: tuple[tuple[str, tuple[str, ...]], ...], prefix: str = "") -> str:
    """SQL of a contract condition (``required_if``, ``absent_if``): the row meets one of them.

    :param conditions: ``(column, values)`` pairs.
    :param prefix: put before each column, e.g. ``"events."``.
    """
    return " or ".join(f"{prefix}{column} in ({_sql_list(values)})"
                       for column, values in conditions)


def key_sql(table: TableContract, prefix: str = "", indent: str = "\n        ") -> str:
    """SQL of a row's key (``table.key`` as text joined by ``|``, nulls as ``''``), so that
    duplicates count alike on pandas and in SQL, where a null never equals a null.

    :param table: a contract table with a key.
    :param prefix: put before each column, e.g. ``"events."``.
    :param indent: what separates the key's parts.
    """
    return f"{indent}|| '|' || ".join(f"coalesce(cast({prefix}{c} as varchar), '')"
                                      for c in table.key)


def _words(conditions: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    return " or ".join(f"{column} is {' or '.join(values)}" for column, values in conditions)


def _derived(table: TableContract) -> list[str]:
    """The batch's columns beyond the table's: the row key and one per rule between fields."""
    columns = []
    if table.key:
        columns.append(f"{key_sql(table)} as row_key")
    for f in table.fields:
        if f.required_if:  # the condition's column when the row lacks the field, else null
            first = f.required_if[0][0]
            columns.append(f"case when ({condition_sql(f.required_if)}) and {f.name} is null "
                           f"then cast({first} as varchar) end as required_if__{f.name}")
        if f.absent_if:  # the field's value where it must be empty, else null
            columns.append(f"case when {condition_sql(f.absent_if)} "
                           f"then cast({f.name} as varchar) end as absent_if__{f.name}")
    return columns


def _batch(table: TableContract) -> str:
    columns = ",\n".join("    " + c for c in ["*", *_derived(table)])
    return f"select\n{columns}\n{_WINDOW.format(table=table.name)}\n"


def _expect(kind: str, kwargs: dict[str, Any], defect: str, problem: str) -> dict[str, Any]:
    return {"type": f"expect_{kind}", "kwargs": kwargs,
            "meta": {"defect": defect, "problem": problem}}


def _field_expectations(table: TableContract, f: Column) -> list[dict[str, Any]]:
    rows, name = table.row + "s", f.name
    out = []
    if f.required:
        out.append(_expect("column_values_to_not_be_null", {"column": name},
                           f"missing_{name}", f"{rows} without {name} ({f.means})"))
    if f.required_if:
        out.append(_expect("column_values_to_be_null", {"column": f"required_if__{name}"},
                           f"missing_{name}", f"{rows} without {name} where "
                           f"{_words(f.required_if)} (it must be given there)"))
    if f.absent_if:
        out.append(_expect("column_values_to_be_null", {"column": f"absent_if__{name}"},
                           f"unexpected_{name}", f"{rows} with {name} where "
                           f"{_words(f.absent_if)} (it must be empty there)"))
    if f.values:
        out.append(_expect("column_values_to_be_in_set",
                           {"column": name, "value_set": list(f.values)}, f"unknown_{name}",
                           f"{name} values outside the contract ({', '.join(f.values)})"))
    if f.format:
        if f.pattern is not None:
            out.append(_expect("column_values_to_match_regex",
                               {"column": name, "regex": f.pattern.pattern}, f"malformed_{name}",
                               f"{name} values that are not {f.format_means}"))
        # a value's regex is searched, and "$" matches before a final newline: surrounding
        # whitespace is checked apart (portable: no \Z on Snowflake)
        out.append(_expect("column_values_to_not_match_regex",
                           {"column": name, "regex": r"^\s|\s$"}, f"malformed_{name}",
                           f"{name} values with whitespace around them"))
        length = FORMATS[f.format].length
        if length:
            out.append(_expect("column_value_lengths_to_equal", {"column": name, "value": length},
                               f"malformed_{name}",
                               f"{name} values of another length than {length} characters"))
    if f.integral and f.min is not None and f.max is not None:
        whole = [float(v) for v in range(int(f.min), int(f.max) + 1)]
        out.append(_expect("column_values_to_be_in_set", {"column": name, "value_set": whole},
                           f"{name}_out_of_range",
                           f"{name} values that are not whole numbers {f.min:g}-{f.max:g}"))
    elif f.min is not None or f.max is not None:
        bounds = {k: v for k, v in (("min_value", f.min), ("max_value", f.max)) if v is not None}
        out.append(_expect("column_values_to_be_between", {"column": name, **bounds},
                           f"{name}_out_of_range", f"{name} values outside its plausible range"))
    if f.time:
        out.append(_expect("column_values_to_be_between",
                           {"column": name, "max_value": {"$PARAMETER": "future_cutoff_ms"},
                            "strict_max": True}, "future_timestamps",
                           f"{rows} timestamped in the future (after {{future_cutoff}}, "
                           "{max_future_skew_minutes} min of skew allowed)"))
        out.append(_expect("column_values_to_be_between",
                           {"column": name, "min_value": {"$PARAMETER": "earliest_event_ms"}},
                           "ancient_timestamps",
                           f"{rows} timestamped far before the log's start "
                           "({earliest_event_time}; seconds read as milliseconds?)"))
    return out


def raw_suite(table: TableContract) -> dict[str, Any]:
    """The raw suite of ``table``: its document, as a suite file holds it.

    :param table: a contract table.
    :return: ``name``, ``table``, ``description``, ``batch`` and ``expectations``.
    """
    expectations = [e for f in table.fields for e in _field_expectations(table, f)]
    if table.key:
        expectations.append(_expect(
            "column_values_to_be_unique",
            {"column": "row_key", "mostly": {"$PARAMETER": "duplicate_mostly"}},
            f"duplicate_{table.row}s",
            f"{table.row}s logged more than once (same {', '.join(table.key)}; at most "
            "{max_duplicate_share:.1%}, or {duplicate_allowance} rows, allowed)"))
    return {
        "name": table.name,
        "table": f"{{raw_schema}}.{table.name}",
        "description": f"The data interval's raw {table.row}s against the contract, "
                       "field by field.",
        "batch": _batch(table),
        "expectations": expectations,
    }


def yaml_text(document: dict[str, Any], header: str) -> str:
    """A suite file's text: ``header`` (comment lines), then ``document`` as YAML, multi-line
    strings (the batch SQL) as literal blocks."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100,
                              allow_unicode=True)


def suite_text(table: TableContract) -> str:
    """The suite file of ``table`` (YAML, with its generated-file header)."""
    return yaml_text(raw_suite(table), GENERATED_HEADER + f"# {table.means}\n")


def _rule(f: Column) -> str:
    parts = []
    if f.required:
        parts.append("always")
    if f.required_if:
        parts.append(f"when {_words(f.required_if)}")
    if f.absent_if:
        parts.append(f"empty when {_words(f.absent_if)}")
    return "; ".join(parts) or "optional"


def _value(f: Column) -> str:
    if f.values:
        return "one of " + ", ".join(f"`{v}`" for v in f.values)
    if f.format:
        return f.format_means.replace("|", "\\|")
    if f.time:
        return "epoch ms; not before `SKIFF_EARLIEST_EVENT_TIME`, not in the future"
    kind = "whole number" if f.integral else "number"
    if f.min is not None and f.max is not None:
        return f"{kind} {f.min:g}-{f.max:g}"
    if f.min is not None:
        return f"{kind}, at least {f.min:g}"
    return f.type


def contract_table() -> str:
    """The contract as a Markdown table: every field, its rule and the defects that check it.

    Every table of the landing zone (:data:`~skiff.data.contract.LANDING_TABLES`); a table
    without a raw suite (``predictions``) says that the collector checks it instead.
    """
    lines = ["| table | field | type | a row carries it | value | defects (raw suite) |",
             "|---|---|---|---|---|---|"]
    for table in LANDING_TABLES:
        for f in table.fields:
            if table in TABLES:
                defects = ", ".join(f"`{d}`" for d in sorted(
                    {e["meta"]["defect"] for e in _field_expectations(table, f)}))
            else:
                defects = "no raw suite: the collector rejects the event (counted)"
            lines.append(f"| `{table.name}` | `{f.name}` | {f.type} | {_rule(f)} | {_value(f)} | "
                         f"{defects} |")
    return "\n".join(lines) + "\n"


def _with_table(current: str) -> str:
    start, end = current.find(_START), current.find(_END)
    if start < 0 or end < start:
        raise ValueError(f"{_TABLE_PAGE} has no {_START} ... {_END} block.")
    return current[:start + len(_START)] + "\n" + contract_table() + current[end:]


def generated_files(root: Path) -> dict[Path, str]:
    """Every file written from the contract, with its content.

    :param root: the repository (holding ``include/`` and ``docs/``).
    """
    from skiff.validate.baseline import MIX_SUITE, mix_suite_yaml  # it builds on this module

    root = Path(root)
    suites = root / "include" / "gx" / "suites"
    files = {suites / f"{t.name}.yml": suite_text(t) for t in TABLES}
    files[suites / f"{MIX_SUITE}.yml"] = mix_suite_yaml()
    page = root / _TABLE_PAGE
    files[page] = _with_table(page.read_text(encoding="utf-8"))
    return files


def stale_files(root: Path) -> list[Path]:
    """The generated files that differ from what ``contract.toml`` gives."""
    return [path for path, text in generated_files(root).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def write_generated(root: Path) -> list[Path]:
    """Write every file generated from the contract; return those that changed."""
    changed = stale_files(root)
    for path, text in generated_files(root).items():
        if path in changed:
            path.write_text(text, encoding="utf-8")
    return changed
