"""A suite validated inside DuckDB: Great Expectations' metrics computed by SQL, and GX's own
expectations judging them (what whole-log validation runs, :mod:`skiff.validate.whole_log`).

An hourly run reads the interval's rows into a pandas DataFrame and lets GX validate it.
The whole log does not fit that way (36M raw events: ~53 GiB of DataFrame and GX's copies),
and GX's SQL datasource on DuckDB (``duckdb_engine``, not installed) does not work: GX reads a
query's rows after closing its connection, and DuckDB drops them then (``STACK.md``); with
GX's connection handling patched, it still refuses regular expressions on DuckDB's dialect
(the contract's formats are regexes), and needs a new dependency and two patches of GX's
internals for no gain in speed (3.0 s on a 1M-row log without the regexes; 2.8 s here with).

So, for one suite (:func:`validate_in_warehouse`):

1. the batch's columns and types (``DESCRIBE`` of the suite's SQL), and each expectation as
   SQL (:func:`skiff.validate.sql_checks.compile_check`);
2. one aggregate query over the batch: its rows, and per expectation the rows it considers,
   the unexpected ones, the missing values, a mean (DuckDB streams it: memory does not grow
   with the rows); one ``GROUPING SETS`` query testing the text checks once per distinct
   value of their column; per uniqueness check, one ``GROUP BY`` keeping the keys seen more
   than once (DuckDB spills it to disk past its ``memory_limit``); per distinct-set check,
   the column's distinct values;
3. for each expectation with unexpected rows, the first 20 of them in the batch's order (a
   ``LIMIT`` query over the numbered batch), read into pandas as the hourly path reads the
   batch: the examples and row indices GX's pandas engine would give;
4. GX's expectation judges these metrics (``Expectation.metrics_validate``: ``mostly``,
   bounds, counts, percentages, examples), exactly as after its own pandas engine computed
   them; the results are ordered as GX orders them, and make GX's
   ``ExpectationSuiteValidationResult``, so reports, Data Docs and messages are those of an
   hourly run.

DuckDB only (its SQL: ``count(*) filter``, ``regexp_matches``, ``isnan``); on Snowflake GX's
own datasource pushes the suite's SQL down already.
"""

# About 400 lines: the queries and GX's judgement of their results stay together, the GX
# metric names tie one to the other.

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from skiff.exceptions import SkiffConfigError
from skiff.validate.sql_checks import Check, compile_check, quote

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    from skiff.validate.suites import RenderedSuite

__all__ = ["PARTIAL_UNEXPECTED", "validate_in_warehouse", "batch_columns"]

#: Unexpected values kept per expectation (GX's ``partial_unexpected_count`` in SUMMARY).
PARTIAL_UNEXPECTED = 20

_ROW = "__skiff_row"  # a row's position in the batch, as the DataFrame's index would be
_DISTINCT = "column.distinct_values"  # a column's distinct values, for the distinct-set metrics


def batch_columns(con: Any, sql: str) -> dict[str, str]:
    """The columns of ``sql``'s rows and their DuckDB types, in order."""
    return {row[0]: row[1] for row in con.execute(f"describe {sql}").fetchall()}


def validate_in_warehouse(
    con: Any,
    suite: RenderedSuite,
    *,
    batch_id: str | None = None,
    run_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExpectationSuiteValidationResult:
    """Validate ``suite``'s rows where they are, with GX judging the metrics DuckDB computed.

    :param con: a DuckDB connection to the warehouse (temporary tables are made on it).
    :param suite: the rendered suite (its SQL selects the rows).
    :param batch_id: the batch id the results carry (GX's ``kwargs.batch_id``); default
        ``skiff_duckdb-<suite>``, as the hourly path's.
    :param run_name: the run's name in the result's ``run_id`` (default the suite's).
    :param progress: called with a line after each query (what ran, how long).
    :return: GX's result for the suite.
    :raises SkiffConfigError: an expectation that is not pushed down
        (:data:`skiff.validate.sql_checks.SUPPORTED`).
    """
    from great_expectations import __version__ as gx_version
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    say = progress or (lambda line: None)
    batch_id = batch_id or f"skiff_duckdb-{suite.name}"
    started = time.perf_counter()
    types = batch_columns(con, suite.sql)
    checks = [compile_check(e, types) for e in suite.expectations]
    metrics = _Measure(con, suite.sql, checks, say).run()
    engine = _pandas_engine()
    results = []
    for expectation, check, values in zip(suite.expectations, checks, metrics, strict=True):
        config = _configuration(expectation, batch_id)
        results.append(_error_result(config, check.error) if check.error
                       else _judge(config, values, engine))
    results = _gx_order(results)
    statistics = calc_validation_statistics(results)
    now = datetime.now(UTC)
    say(f"{suite.name}: {statistics.evaluated_expectations} expectations judged "
        f"({time.perf_counter() - started:.1f} s in all)")
    return ExpectationSuiteValidationResult(
        success=statistics.success,
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        },
        suite_parameters={},
        meta={
            "great_expectations_version": gx_version,
            "expectation_suite_name": suite.name,
            "run_id": RunIdentifier(run_name=run_name or suite.name, run_time=now),
            "batch_spec": {"batch_data": "DuckDB query, metrics pushed down (skiff)"},
            "batch_markers": {},
            "active_batch_definition": {"datasource_name": "skiff_duckdb",
                                        "data_asset_name": suite.name},
            "validation_time": now.strftime("%Y%m%dT%H%M%S.%fZ"),
            "checkpoint_name": None,
        },
        batch_id=batch_id,
    )


# --------------------------------------------------------------------------- the queries


class _Measure:
    """The metrics GX's expectations ask for, per check, from as few scans as possible."""

    def __init__(self, con: Any, sql: str, checks: Sequence[Check],
                 say: Callable[[str], None]) -> None:
        self.con, self.sql, self.checks, self.say = con, sql, checks, say

    def run(self) -> list[dict[str, Any]]:
        if not self.checks:  # every expectation skipped (no reference yet): nothing to count
            return []
        try:
            counts = {**self._aggregate(), **self._grouped()}
            out: list[dict[str, Any]] = []
            for i, check in enumerate(self.checks):
                if check.error:
                    out.append({})
                    continue
                values: dict[str, Any] = {"table.row_count": counts["n"]}
                if check.kind == "mean":
                    mean = counts[f"mean_{i}"]
                    values["column.mean"] = float("nan") if mean is None else float(mean)
                elif check.kind == "distinct":
                    values.update(self._distinct(check))
                else:
                    values.update(self._map(i, check, counts))
                out.append(values)
            return out
        finally:  # the keys kept for the examples (on disk past memory_limit)
            for i, check in enumerate(self.checks):
                if check.unique:
                    for table in (f"__skiff_candidates_{i}", f"__skiff_duplicates_{i}"):
                        self.con.execute(f"drop table if exists {table}")

    def _timed(self, what: str, *statements: str) -> Any:
        started = time.perf_counter()
        for sql in statements:
            rows = self.con.execute(sql).fetchall()
        self.say(f"  {what} ({time.perf_counter() - started:.1f} s)")
        return rows

    def _select(self, what: str, terms: Mapping[str, str], source: str) -> dict[str, Any]:
        """One query computing ``terms`` (name -> SQL) over ``source``, each distinct SQL once."""
        distinct = list(dict.fromkeys(terms.values()))
        select = ",\n    ".join(f"{term} as m{j}" for j, term in enumerate(distinct))
        (row,) = self._timed(f"{what}: {len(distinct)} metrics",
                             f"select\n    {select}\nfrom {source}")
        return {name: row[distinct.index(term)] for name, term in terms.items()}

    def _aggregate(self) -> dict[str, Any]:
        """Rows, and per check the considered, unexpected and missing rows, or the mean."""
        terms = {"n": "count(*)"}
        for i, check in enumerate(self.checks):
            if check.error or check.kind == "distinct":
                continue
            if check.kind == "mean":
                terms[f"mean_{i}"] = f"avg({check.value}) filter (where {check.considered})"
                continue
            terms[f"considered_{i}"] = f"count(*) filter (where {check.considered})"
            if check.missing:
                terms[f"missing_{i}"] = f"count(*) filter (where {check.missing})"
            if check.unexpected and not check.per_value:
                terms[f"unexpected_{i}"] = (f"count(*) filter (where ({check.considered}) "
                                            f"and ({check.unexpected}))")
        return self._select("counted over the rows", terms, f"({self.sql}) as batch")

    def _grouped(self) -> dict[str, Any]:
        """The per-value checks, each distinct value of their column tested once: one scan
        grouping the rows by each such column (``GROUPING SETS``); and the uniqueness checks,
        one ``GROUP BY`` each (:meth:`_duplicates`; a big key in the same scan would make
        every set slower than its own query)."""
        columns = list(dict.fromkeys(c.columns[0] for c in self.checks
                                     if c.per_value and not c.error))
        counts = {f"unexpected_{i}": self._duplicates(i, check)
                  for i, check in enumerate(self.checks) if check.unique and not check.error}
        if not columns:
            return counts
        terms = {}
        for i, check in enumerate(self.checks):
            if check.per_value and not check.error:
                grouped = f"grouped_{columns.index(check.columns[0])} = 0"
                terms[f"unexpected_{i}"] = (f"coalesce(sum(copies) filter (where {grouped} and "
                                            f"({check.considered}) and ({check.unexpected})), 0)")
        names = ", ".join(quote(c) for c in columns)
        flags = ", ".join(f"grouping({quote(c)}) as grouped_{j}" for j, c in enumerate(columns))
        sets = ", ".join(f"({quote(c)})" for c in columns)
        source = (f"(\n    select {names}, count(*) as copies, {flags}\n"
                  f"    from ({self.sql}) as batch\n    group by grouping sets ({sets})\n"
                  f") as grouped")
        return {**counts, **self._select(
            f"counted on the distinct values of {len(columns)} columns", terms, source)}

    def _duplicates(self, i: int, check: Check) -> int:
        """The rows of the keys seen more than once, and those keys in a temporary table (for
        the examples; usually few: none, or a delivery's copies).

        Grouped by a 64-bit hash of the key first: a long key (``row_key``: ~170 characters)
        over the whole log would fill ``memory_limit`` many times over and spill, its hash
        does not. Equal keys have equal hashes, so a hash seen once is a key seen once; the
        keys of the hashes seen more than once (the duplicates, and a rare collision) are then
        grouped exactly.
        """
        key = ", ".join(quote(c) for c in check.unique)
        hashed = f"hash({key})"
        candidates, duplicates = f"__skiff_candidates_{i}", f"__skiff_duplicates_{i}"
        (found,) = self._timed(
            f"grouped the rows by hash({key})",
            f"create or replace temporary table {candidates} as\n"
            f"select {hashed} as key_hash\nfrom ({self.sql}) as batch\n"
            f"where {check.considered}\ngroup by key_hash\nhaving count(*) > 1",
            f"select count(*) from {candidates}")
        exact = (f"select {key}, count(*) as copies\nfrom ({self.sql}) as batch\n"
                 f"where ({check.considered}) and {hashed} in (select key_hash from {candidates})"
                 f"\ngroup by {key}\nhaving count(*) > 1")
        if not found[0]:  # no hash twice: no key twice (the table is made empty, for examples)
            self.con.execute(f"create or replace temporary table {duplicates} as {exact} limit 0")
            return 0
        (rows,) = self._timed(f"grouped the rows of {found[0]:,} hashes seen twice by {key}",
                              f"create or replace temporary table {duplicates} as\n{exact}",
                              f"select coalesce(sum(copies), 0) from {duplicates}")
        return int(rows[0])

    def _map(self, i: int, check: Check, counts: Mapping[str, Any]) -> dict[str, Any]:
        metric = check.metric
        values: dict[str, Any] = {}
        if check.missing:
            values["column_values.nonnull.unexpected_count"] = int(counts[f"missing_{i}"])
        if check.kind in ("pair", "multicolumn"):
            values[f"{metric}.filtered_row_count"] = int(counts[f"considered_{i}"])
        unexpected = int(counts[f"unexpected_{i}"])
        examples, index = self._examples(i, check) if unexpected else ([], [])
        values.update({
            f"{metric}.unexpected_count": unexpected,
            f"{metric}.unexpected_values": examples,
            f"{metric}.unexpected_index_list": index,
            f"{metric}.unexpected_index_query": None,
        })
        return values

    def _examples(self, i: int, check: Check) -> tuple[list[Any], list[int]]:
        """The first unexpected rows in the batch's order: GX's partial list and indices."""
        wanted = f"({check.considered}) and ({check.unexpected})" if check.unexpected \
            else check.considered
        # numbered over the whole batch (the DataFrame's index), then filtered
        source = (f"(select * from (select *, row_number() over () - 1 as {_ROW} "
                  f"from ({self.sql}) as batch) as batch where {wanted}) as numbered")
        if check.unique:  # the rows of the keys seen more than once (_duplicates kept them)
            same = " and ".join(f"numbered.{quote(c)} is not distinct from dup.{quote(c)}"
                                for c in check.unique)
            source += f"\nsemi join __skiff_duplicates_{i} as dup on {same}"
        columns = ", ".join(f"numbered.{quote(c)}" for c in check.columns)
        started = time.perf_counter()
        frame = self.con.execute(
            f"select {columns}, numbered.{_ROW}\nfrom {source}\n"
            f"order by numbered.{_ROW}\nlimit {PARTIAL_UNEXPECTED}").df()
        self.say(f"  read {len(frame)} examples of {check.metric}({', '.join(check.columns)}) "
                 f"({time.perf_counter() - started:.1f} s)")
        index = [int(i) for i in frame[_ROW]]
        if check.kind == "pair":
            a, b = check.columns
            return list(zip(frame[a].values, frame[b].values, strict=True)), index
        if check.kind == "multicolumn":
            return frame[list(check.columns)].to_dict("records"), index
        return list(frame[check.columns[0]]), index

    def _distinct(self, check: Check) -> dict[str, Any]:
        """The column's distinct values (the distinct-set metrics are GX's logic on them)."""
        started = time.perf_counter()
        frame = self.con.execute(f"select distinct {check.value} as value from ({self.sql}) "
                                 f"as batch where {check.considered}").df()
        self.say(f"  read {len(frame)} distinct values of {check.columns[0]} "
                 f"({time.perf_counter() - started:.1f} s)")
        return {_DISTINCT: set(frame["value"].dropna().unique())}


# --------------------------------------------------------------------------- GX's judgement


def _pandas_engine() -> Any:
    # the engine whose metric names and result shape the hourly path has; it is only asked
    # which metrics an expectation needs, never given data
    from great_expectations.execution_engine import PandasExecutionEngine

    return PandasExecutionEngine()


def _configuration(expectation: Mapping[str, Any], batch_id: str) -> Any:
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    return ExpectationConfiguration(type=expectation["type"],
                                    kwargs={**expectation["kwargs"], "batch_id": batch_id},
                                    meta=dict(expectation["meta"]))


def _judge(config: Any, values: Mapping[str, Any], engine: Any) -> ExpectationValidationResult:
    """GX's result of one expectation on metrics computed elsewhere."""
    expectation = config.to_domain_obj()
    runtime = {"result_format": "SUMMARY"}
    needed = expectation.get_validation_dependencies(
        execution_engine=engine, runtime_configuration=runtime).metric_configurations
    metrics = {}
    for name, metric in needed.items():
        value = _metric_value(name, metric, values)
        metrics[metric.id] = value
    return expectation.metrics_validate(metrics, runtime_configuration=runtime,
                                        execution_engine=engine)


def _metric_value(name: str, metric: Any, values: Mapping[str, Any]) -> Any:
    if name.startswith(f"{_DISTINCT}.") and _DISTINCT in values:
        return _distinct_metric(name, values[_DISTINCT], metric.metric_value_kwargs)
    if name not in values:
        raise SkiffConfigError(f"Great Expectations asks for metric {name}, which the pushdown "
                               f"does not compute (it has {sorted(values)}).")
    return values[name]


def _distinct_metric(name: str, column_set: set[Any], kwargs: Mapping[str, Any]) -> Any:
    """GX's pandas ``column.distinct_values.*`` metrics, on the column's distinct values."""
    from great_expectations.expectations.metrics.column_aggregate_metrics import (
        column_distinct_values,
    )

    # the value set made of the column's type, as GX's pandas metric makes it
    expected = column_distinct_values._coerce_value_set_to_column_type(
        column_set, list(kwargs["value_set"]))
    if name.startswith(f"{_DISTINCT}.not_in_set"):
        found = list(column_set - expected)
        try:
            found = sorted(found)
        except TypeError:  # GX leaves mixed types unsorted too
            pass
    else:
        found = list(expected - column_set)
    return len(found) if name.endswith(".count") else found[:kwargs.get("limit")]


def _error_result(config: Any, message: str) -> ExpectationValidationResult:
    """An expectation that could not be evaluated, as GX reports one."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.validator.exception_info import ExceptionInfo

    return ExpectationValidationResult(
        success=False, expectation_config=config,
        exception_info=ExceptionInfo(exception_traceback="", exception_message=message))


def _gx_order(results: list[ExpectationValidationResult]) -> list[ExpectationValidationResult]:
    """GX's order (``Validator.process_expectations_for_validation``, ``graph_validate``):
    grouped by ``column``, groups (the column-less ones one group) in order of first
    appearance; the expectations that could not be evaluated before the others."""
    groups: dict[str | None, list[ExpectationValidationResult]] = {}
    for result in results:
        column = result.expectation_config.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else None, []).append(result)
    ordered = [result for group in groups.values() for result in group]
    failed = [r for r in ordered if r.exception_info.get("raised_exception")]
    return failed + [r for r in ordered if not r.exception_info.get("raised_exception")]
