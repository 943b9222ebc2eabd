"""Validate a long range of the log, the whole of it by default, with an hourly run's suites,
inside the warehouse: ``skiff validate --all`` and a full-refresh run's checks of the models.

A range is validated as one interval: each suite is rendered for ``[start, end)`` with the
parameters a run of that interval would get (the batch SQL selects every row of the range,
duplicates and uniqueness are judged across all of it, a mean over all of it), and its
metrics are computed where the rows are (:func:`skiff.validate.pushdown.validate_in_warehouse`),
not read into pandas. Counts are over the whole range and the messages are those of an
hourly run. Memory stays bounded: DuckDB streams the counts and spills the grouping by key
past ``SKIFF_VALIDATE_MEMORY_LIMIT``.

:func:`log_span` is the range the raw log covers; :func:`validate_range` validates the suites
and keeps each result as an hourly run keeps its own (:func:`~skiff.validate.reports.
write_report`), in the folder of the range (``<start>--<end>``), where ``skiff report`` reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from skiff.data.contract import TABLES
from skiff.exceptions import SkiffError
from skiff.times import from_epoch_ms, to_epoch_ms
from skiff.validate.parameters import ValidationWindow, allow_duplicates, fetch_parameters
from skiff.validate.suites import SUITES, RenderedSuite, SuiteSpec

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

    from skiff.config import SkiffConfig
    from skiff.data.warehouse import DuckDBWarehouse
    from skiff.validate.reports import Report

__all__ = ["RangeResult", "bounded", "log_span", "render_for_range", "validate_suite",
           "validate_range"]

log = logging.getLogger(__name__)

_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class RangeResult:
    """One suite validated over a range.

    :param suite: the suite as rendered for the range.
    :param result: GX's result.
    :param report: where it was kept.
    :param seconds: how long the validation took (rendering, queries, judging, report).
    """

    suite: RenderedSuite
    result: ExpectationSuiteValidationResult
    report: Report
    seconds: float

    @property
    def success(self) -> bool:
        return bool(self.result.success)


def bounded(con: Any, config: SkiffConfig) -> None:
    """Set a DuckDB connection up for a long range: ``SKIFF_VALIDATE_MEMORY_LIMIT`` (past it,
    DuckDB spills to disk), and no progress bar on stdout (the CLI's summary goes there).

    The limit is the database's: while ``con`` is open, every connection this process opens
    to the same file shares it (DuckDB's instance cache), so render the suite (its parameters
    count the range's rows and shares) while it is open.
    """
    con.execute(f"set memory_limit = '{config.validation.memory_limit}'")
    con.execute("set enable_progress_bar = false")


def log_span(warehouse: Any, config: SkiffConfig, now: datetime | None = None
             ) -> tuple[datetime, datetime]:
    """The whole hours the raw log covers: from the hour of its first plausible arrival or
    event (events arrive after they happen) to the end of the hour of its last plausible
    arrival. Plausible: not before ``SKIFF_EARLIEST_EVENT_TIME`` and not after ``now`` plus
    ``SKIFF_MAX_FUTURE_SKEW_MINUTES`` (a replayed bad batch stamps its rows' own, broken,
    times as their arrival; the batch SQL still selects them with their delivery).

    :param warehouse: answers ``records(sql)`` (either backend).
    :param config: the warehouse's schema and the validation settings.
    :param now: the clock (default the current time).
    :raises SkiffError: the raw log holds no plausible time.
    """
    schema = config.warehouse.raw_schema
    earliest = to_epoch_ms(config.validation.earliest_event_time)
    latest = to_epoch_ms((now or datetime.now(UTC))
                         + timedelta(minutes=config.validation.max_future_skew_minutes))

    def plausible(column: str) -> str:
        return f"case when {column} >= {earliest} and {column} < {latest} then {column} end"

    parts = []
    for table in TABLES:
        first = f"min({plausible('arrival_ts_ms')})"
        if table.time_column:
            first = f"least({first}, min({plausible(table.time_column)}))"
        parts.append(f"select {first} as first_ms, max({plausible('arrival_ts_ms')}) as last_ms "
                     f"from {schema}.{table.name}")
    ((first_ms, last_ms),) = warehouse.records(
        f"select min(first_ms), max(last_ms) from ({' union all '.join(parts)}) as spans")
    if first_ms is None or last_ms is None:
        raise SkiffError(f"The raw log ({schema}.*) holds no event or arrival time between "
                         f"{config.validation.earliest_event_time:%Y-%m-%d} and now: nothing "
                         "to validate.")
    start = from_epoch_ms(int(first_ms)).replace(minute=0, second=0, microsecond=0)
    end = from_epoch_ms(int(last_ms)).replace(minute=0, second=0, microsecond=0) + _HOUR
    return start, end


def render_for_range(spec: SuiteSpec, config: SkiffConfig, window: ValidationWindow,
                     warehouse: Any) -> RenderedSuite:
    """The suite rendered for the range, with the parameters a run of it would get.

    As the hourly task: the volume reference and the shares' baseline of the hours before the
    range, and the duplicate allowance for the range's row count. On DuckDB, call it while a
    :func:`bounded` connection is open: these are queries over the whole range too.
    """
    parameters = fetch_parameters(spec, config, window, warehouse)
    if "duplicate_mostly" in spec.parameters:
        sql = spec.render(parameters).sql
        ((rows,),) = warehouse.records(f"select count(*) from ({sql}) as batch")
        parameters = allow_duplicates(parameters, int(rows), config.validation)
    return spec.render(parameters)


def validate_suite(con: Any, suite: RenderedSuite, config: SkiffConfig, window: ValidationWindow,
                   *, label: str | None = None, data_docs: bool = True,
                   progress: Callable[[str], None] | None = None) -> RangeResult:
    """Validate one rendered suite over the range, in the warehouse, and keep its report.

    :param con: a DuckDB connection (its memory limit set: ``SKIFF_VALIDATE_MEMORY_LIMIT``).
    :param suite: the suite rendered for the range (:func:`render_for_range`).
    :param config: the validation settings (the report folder).
    :param window: the range.
    :param label: the report's folder; default the range's (``window.span_label``); a
        full-refresh run keeps its results in its interval's folder.
    :param data_docs: also render the Data Docs page.
    :param progress: called with a line per query.
    """
    from skiff.validate.pushdown import validate_in_warehouse
    from skiff.validate.reports import write_report

    label = label or window.span_label
    started = time.perf_counter()
    result = validate_in_warehouse(con, suite, run_name=label, progress=progress)
    report = write_report(result, suite, window, config.validation.reports_dir,
                          data_docs=data_docs, label=label)
    return RangeResult(suite, result, report, time.perf_counter() - started)


def validate_range(
    config: SkiffConfig,
    window: ValidationWindow,
    warehouse: DuckDBWarehouse,
    *,
    suites: Sequence[str] = SUITES,
    data_docs: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[RangeResult]:
    """Validate ``suites`` over the range, one after another, inside DuckDB.

    A suite whose tables do not exist (the marts before dbt ever ran) is skipped with a
    warning logged; ``skiff report`` shows it as not run.

    :param config: Skiff's configuration (``SKIFF_VALIDATE_MEMORY_LIMIT``, the suites and the
        report folders, the thresholds).
    :param window: the range, e.g. :func:`log_span`'s.
    :param warehouse: the DuckDB warehouse.
    :param suites: the suites to run, in order.
    :param data_docs: also render each result's Data Docs page.
    :param progress: called with a line per suite and per query (to stderr, in the CLI).
    :return: the suites' results, in order (skipped suites left out).
    """
    import duckdb

    say = progress or (lambda line: None)
    out = []
    for name in suites:
        spec = SuiteSpec.load(name, config.validation.suites_dir)
        try:
            with warehouse.connect() as con:
                bounded(con, config)
                suite = render_for_range(spec, config, window, warehouse)
                say(f"{name}: {suite.table}, {window} ...")
                out.append(validate_suite(con, suite, config, window, data_docs=data_docs,
                                          progress=say))
        except duckdb.CatalogException as exc:  # its table is not built yet
            log.warning("Suite %s not run: %s", name, str(exc).splitlines()[0])
            continue
        say(f"{name}: {'passed' if out[-1].success else 'FAILED'} in {out[-1].seconds:.1f} s")
    return out

