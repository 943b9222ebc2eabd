"""The validate stage as plain Python: suites, the rows they check, messages and reports.

The suites live as data in ``include/gx/suites/<name>.yml`` (see its README): the table a
suite guards, the SQL selecting the rows it validates (the data interval's slice, the same
SQL on DuckDB and Snowflake) and its Great Expectations expectations, thresholds named as
``{$PARAMETER: name}``. This module turns a suite file and a run's data interval into
what Great Expectations runs, and a validation result into a message and a report:

1. :meth:`SuiteSpec.load` reads a suite file;
2. :func:`suite_parameters` computes every parameter from the configuration and the
   interval (:class:`ValidationWindow`), with :func:`volume_reference` for the volume suite;
3. :meth:`SuiteSpec.render` fills the parameters in: a :class:`RenderedSuite` (SQL +
   expectation configurations), which :meth:`RenderedSuite.to_gx` makes a GX suite;
4. after the run, :func:`failures` and :func:`failure_message` explain a failed result,
   :func:`write_report` keeps it (JSON and Data Docs under ``$SKIFF_HOME/gx``).

Nothing here imports Airflow; Great Expectations is imported inside the functions that need
it. The operator (``plugins/operators/validate.py``) and its hook do the I/O.

Parameters a suite can use (in ``kwargs`` as ``{$PARAMETER: name}``, in ``batch`` and
``meta.problem`` as ``{name}``):

=========================== ===========================================================
``raw_schema``              schema of the raw log (``SKIFF_RAW_SCHEMA``)
``intermediate_schema``     schema of the dbt intermediate models (``intermediate``)
``marts_schema``            schema of the marts (``SKIFF_MARTS_SCHEMA``)
``start_ms``, ``end_ms``    the data interval ``[start, end)``, epoch milliseconds
``start_ts``, ``end_ts``    the same as ``YYYY-MM-DD HH:MM:SS`` (UTC, no zone)
``lookback_start_ms``       ``start`` minus the dbt session lookback
``earliest_event_ms``       ``SKIFF_EARLIEST_EVENT_TIME`` in epoch ms (and ``earliest_event_time``)
``future_cutoff_ms``        later of now and ``end``, plus ``SKIFF_MAX_FUTURE_SKEW_MINUTES``
                            (and ``future_cutoff``, ``max_future_skew_minutes``)
``duplicate_mostly``        ``1 - SKIFF_MAX_DUPLICATE_SHARE`` (and ``max_duplicate_share``)
``known_sku_mostly``        ``1 - SKIFF_MAX_UNKNOWN_SKU_SHARE`` (and ``max_unknown_sku_share``)
``in_order_mostly``         ``1 - SKIFF_MAX_OUT_OF_ORDER_SHARE`` (and ``max_out_of_order_share``)
``max_event_gap_seconds``   ``SKIFF_MAX_EVENT_GAP_MINUTES`` in seconds
                            (and ``max_event_gap_minutes``)
``label_rate_min``, ``_max`` ``SKIFF_LABEL_RATE_MIN`` / ``SKIFF_LABEL_RATE_MAX``
``volume_min_events``       events the interval needs, from the volume reference (none
                            without one, or when it is 1: the empty-hour check covers it)
``volume_max_events``       events it may hold (none without a reference)
``volume_median_events``    the reference, with ``volume_history_hours``, ``volume_min_ratio``,
                            ``volume_max_ratio``
``raw_contract_columns``    ``"<table>.<column> <type family>"`` of every raw table, from
                            :mod:`skiff.data.contract`
=========================== ===========================================================
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from skiff.config import SkiffConfig
from skiff.exceptions import SkiffConfigError
from skiff.data import TABLES
from skiff.times import parse_time, to_epoch_ms

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

__all__ = [
    "SUITES",
    "INTERMEDIATE_SCHEMA",
    "RESULT_FORMAT",
    "ExpectationSpec",
    "SuiteSpec",
    "RenderedSuite",
    "ValidationWindow",
    "VolumeReference",
    "Failure",
    "Report",
    "volume_history_sql",
    "volume_reference",
    "suite_parameters",
    "raw_contract_columns",
    "render_suite",
    "failures",
    "failure_message",
    "success_message",
    "write_report",
    "fetch_parameters",
    "read_reports",
    "report_summary",
]

log = logging.getLogger(__name__)

#: The suites in ``include/gx/suites``, in the order the DAG runs them.
SUITES = (
    "raw_schema",
    "browsing_train",
    "volume",
    "int_session_events",
    "fct_sessions",
    "dim_products",
)
#: Schema of the dbt intermediate models (fixed in ``include/dbt/dbt_project.yml``).
INTERMEDIATE_SCHEMA = "intermediate"
#: GX result format: counts and up to 20 unexpected values per expectation.
RESULT_FORMAT = "SUMMARY"
#: Validation results listed on the Data Docs index page (the newest ones).
DATA_DOCS_LIMIT = 500

_PARAMETER = "$PARAMETER"
_HOUR_MS = 3_600_000
_EXAMPLES = 5  # unexpected values shown per failed expectation
_TYPE_FAMILIES = {
    pa.string(): "string",
    pa.int64(): "integer",
    pa.float64(): "float",
    pa.timestamp("us"): "timestamp",
}


# --------------------------------------------------------------------------- the interval


@dataclass(frozen=True)
class ValidationWindow:
    """The data interval a run validates, and the clock it runs at.

    :param start: interval start, aware UTC (inclusive).
    :param end: interval end, aware UTC (exclusive).
    :param now: when the validation runs (for "in the future"); default the current time.
    """

    start: datetime
    end: datetime
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        for name in ("start", "end", "now"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"ValidationWindow.{name}={value} must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"the interval end {self.end} must be after its start {self.start}")

    @classmethod
    def of(cls, start: str | datetime, end: str | datetime,
           now: datetime | None = None) -> ValidationWindow:
        """A window from ISO 8601 strings or datetimes (naive means UTC)."""
        return cls(parse_time(start), parse_time(end), parse_time(now) if now else datetime.now(UTC))

    @property
    def start_ms(self) -> int:
        return to_epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_epoch_ms(self.end)

    @property
    def label(self) -> str:
        """A folder-safe name of the interval, e.g. ``2026-11-20T1100Z``."""
        return self.start.strftime("%Y-%m-%dT%H%MZ")

    def __str__(self) -> str:
        return f"{_iso(self.start)} .. {_iso(self.end)}"


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- volume


@dataclass(frozen=True)
class VolumeReference:
    """The recent hours' event counts the interval is compared with.

    :param hours: hours of history counted (those since the log's first event, at most
        ``SKIFF_VOLUME_HISTORY_HOURS``).
    :param median: median events per hour over them; ``None`` without history.
    """

    hours: int
    median: float | None


def volume_history_sql(raw_schema: str, window: ValidationWindow, hours: int) -> str:
    """SQL counting the raw events of each of the ``hours`` hours before the interval.

    Returns rows ``(hour, events)``, ``hour`` in epoch hours; hours without events are absent.
    Portable (DuckDB, Snowflake) and cheap: it reads one column over a bounded time range.
    """
    since = window.start_ms - hours * _HOUR_MS
    return (
        f"select cast(floor(server_timestamp_epoch_ms / {_HOUR_MS}) as bigint) as hour, "
        f"count(*) as events from {raw_schema}.browsing_train "
        f"where server_timestamp_epoch_ms >= {since} "
        f"and server_timestamp_epoch_ms < {window.start_ms} group by 1"
    )


def volume_reference(rows: Iterable[tuple[Any, Any]], window: ValidationWindow) -> VolumeReference:
    """The median events per hour before the interval, from :func:`volume_history_sql` rows.

    Hours between the first hour with events and the interval count as 0 when empty; hours
    before the log's first event do not count (the log had not started).
    """
    counts = {int(hour): int(events) for hour, events in rows}
    if not counts:
        return VolumeReference(0, None)
    last = window.start_ms // _HOUR_MS - 1
    series = [counts.get(hour, 0) for hour in range(min(counts), last + 1)]
    return VolumeReference(len(series), float(statistics.median(series)))


# --------------------------------------------------------------------------- parameters


def raw_contract_columns() -> list[str]:
    """``"<table>.<column> <family>"`` of every raw-log column, from :mod:`skiff.data.contract`."""
    return sorted(
        f"{contract.name}.{f.name} {_TYPE_FAMILIES[f.type]}"
        for contract in TABLES
        for f in contract.log_schema
    )


def suite_parameters(
    config: SkiffConfig, window: ValidationWindow, volume: VolumeReference | None = None
) -> dict[str, Any]:
    """Every parameter a suite can use (see the module docstring), for one run.

    :param config: Skiff's configuration (warehouse schemas, dbt lookback, thresholds).
    :param window: the data interval and the run's clock.
    :param volume: the volume reference, for the volume suite (default: none, so only an
        empty interval fails it).
    """
    cfg = config.validation
    future_cutoff = max(window.now, window.end) + timedelta(minutes=cfg.max_future_skew_minutes)
    volume = volume or VolumeReference(0, None)
    median = volume.median if volume.median else None  # a median of 0 is no reference
    return {
        "raw_schema": config.warehouse.raw_schema,
        "intermediate_schema": INTERMEDIATE_SCHEMA,
        "marts_schema": config.warehouse.marts_schema,
        "start_ms": window.start_ms,
        "end_ms": window.end_ms,
        "start_ts": window.start.strftime("%Y-%m-%d %H:%M:%S"),
        "end_ts": window.end.strftime("%Y-%m-%d %H:%M:%S"),
        "lookback_start_ms": window.start_ms - config.dbt.session_lookback_hours * _HOUR_MS,
        "earliest_event_ms": to_epoch_ms(cfg.earliest_event_time),
        "earliest_event_time": _iso(cfg.earliest_event_time),
        "future_cutoff_ms": to_epoch_ms(future_cutoff),
        "future_cutoff": _iso(future_cutoff),
        "max_future_skew_minutes": cfg.max_future_skew_minutes,
        "duplicate_mostly": 1 - cfg.max_duplicate_share,
        "max_duplicate_share": cfg.max_duplicate_share,
        "known_sku_mostly": 1 - cfg.max_unknown_sku_share,
        "max_unknown_sku_share": cfg.max_unknown_sku_share,
        "in_order_mostly": 1 - cfg.max_out_of_order_share,
        "max_out_of_order_share": cfg.max_out_of_order_share,
        "max_event_gap_seconds": cfg.max_event_gap_minutes * 60,
        "max_event_gap_minutes": cfg.max_event_gap_minutes,
        "label_rate_min": cfg.label_rate_min,
        "label_rate_max": cfg.label_rate_max,
        "volume_history_hours": volume.hours,
        "volume_median_events": None if median is None else round(median, 1),
        "volume_min_ratio": cfg.volume_min_ratio,
        "volume_max_ratio": cfg.volume_max_ratio,
        # None leaves the bound out; a floor of 1 event is the empty-hour check already
        "volume_min_events": _floor_above_one(cfg.volume_min_ratio, median),
        "volume_max_events": None if median is None else math.floor(cfg.volume_max_ratio * median),
        "raw_contract_columns": raw_contract_columns(),
    }


def _floor_above_one(ratio: float, median: float | None) -> int | None:
    if median is None:
        return None
    floor = math.ceil(ratio * median)
    return floor if floor > 1 else None


# --------------------------------------------------------------------------- suites


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file, before its parameters are filled in.

    :param type: the GX expectation type, e.g. ``expect_column_values_to_be_between``.
    :param kwargs: its arguments; thresholds as ``{"$PARAMETER": name}``.
    :param defect: short name of the defect it catches (``meta.defect``).
    :param problem: what a failure means, in words (``meta.problem``; ``{name}`` filled in).
    """

    type: str
    kwargs: Mapping[str, Any]
    defect: str
    problem: str


@dataclass(frozen=True)
class RenderedSuite:
    """A suite ready to run: its table, the SQL of its rows, GX expectation configurations.

    :param name: the suite's name (its file name).
    :param table: the table(s) it guards, schema-qualified.
    :param sql: the rows it validates.
    :param expectations: GX configurations, ``{"type", "kwargs", "meta"}``; ``meta`` holds
        ``defect`` and ``problem``.
    :param skipped: expectations left out because their parameter has no value (e.g. the
        volume ceiling without history), as ``defect`` names.
    :param parameters: the parameters it was rendered with.
    """

    name: str
    table: str
    sql: str
    expectations: tuple[Mapping[str, Any], ...]
    skipped: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_gx(self) -> ExpectationSuite:
        """The Great Expectations suite (imports GX)."""
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        suite = gx.ExpectationSuite(name=self.name, meta={"table": self.table})
        for expectation in self.expectations:
            # add_expectation, not add_expectation_configuration: the latter replaces an
            # expectation of the same type and column (two bounds on one column are two checks)
            suite.add_expectation(ExpectationConfiguration(
                type=expectation["type"],
                kwargs=dict(expectation["kwargs"]),
                meta=dict(expectation["meta"]),
            ).to_domain_obj())
        if len(suite.expectations) != len(self.expectations):
            raise SkiffConfigError(f"Suite {self.name} lists the same expectation twice.")
        return suite


@dataclass(frozen=True)
class SuiteSpec:
    """A suite file of ``include/gx/suites``: table, batch SQL template, expectations.

    :param name: the suite's name (the file's stem, the table it guards).
    :param table: the table(s) it guards, with ``{name}`` parameters.
    :param description: one line on what it checks.
    :param batch: SQL template of the rows it validates.
    :param expectations: its expectations.
    :param path: the file it was read from.
    """

    name: str
    table: str
    description: str
    batch: str
    expectations: tuple[ExpectationSpec, ...]
    path: Path | None = None

    @classmethod
    def load(cls, name: str, suites_dir: Path) -> SuiteSpec:
        """Read ``<suites_dir>/<name>.yml``.

        :raises SkiffConfigError: the file is missing or not a valid suite (the message
            names the file and the key).
        """
        import yaml

        path = Path(suites_dir) / f"{name}.yml"
        if not path.is_file():
            known = sorted(p.stem for p in Path(suites_dir).glob("*.yml"))
            raise SkiffConfigError(f"No suite {name!r}: {path} does not exist (suites: {known}).")
        try:
            doc = yaml.safe_load(path.read_text())
            expectations = tuple(
                ExpectationSpec(
                    type=e["type"],
                    kwargs=dict(e.get("kwargs") or {}),
                    defect=e["meta"]["defect"],
                    problem=e["meta"]["problem"],
                )
                for e in doc["expectations"]
            )
            spec = cls(doc["name"], doc["table"], doc.get("description", ""), doc["batch"],
                       expectations, path)
        except (KeyError, TypeError, yaml.YAMLError) as exc:
            raise SkiffConfigError(
                f"{path} is not a valid suite ({type(exc).__name__}: {exc}); each needs name, "
                "table, batch and expectations with type, kwargs and meta.defect/meta.problem."
            ) from None
        if spec.name != name:
            raise SkiffConfigError(f"{path} declares name {spec.name!r}; it must be {name!r}.")
        if not spec.batch.lstrip().lower().startswith("select"):
            raise SkiffConfigError(f"{path}: batch must be one SELECT statement (no CTE).")
        return spec

    @property
    def parameters(self) -> set[str]:
        """Names of the parameters the suite uses."""
        names = set()
        for template in (self.table, self.batch, *(e.problem for e in self.expectations)):
            names |= {f for _, f, _, _ in string.Formatter().parse(template) if f}
        for e in self.expectations:
            names |= {v[_PARAMETER] for v in e.kwargs.values()
                      if isinstance(v, Mapping) and _PARAMETER in v}
        return names

    def render(self, parameters: Mapping[str, Any]) -> RenderedSuite:
        """Fill the parameters in (see :func:`render_suite`)."""
        return render_suite(self, parameters)


def render_suite(spec: SuiteSpec, parameters: Mapping[str, Any]) -> RenderedSuite:
    """The suite with its parameters filled in.

    A ``{"$PARAMETER": name}`` whose value is ``None`` is dropped from its kwargs; a
    ``*_between`` expectation left with neither bound is skipped (listed in ``skipped``).

    :raises SkiffConfigError: the suite uses a parameter that does not exist.
    """
    missing = spec.parameters - set(parameters)
    if missing:
        raise SkiffConfigError(
            f"Suite {spec.name} uses unknown parameters {sorted(missing)}; "
            f"known: {sorted(parameters)}."
        )
    rendered, skipped = [], []
    for e in spec.expectations:
        kwargs = {}
        for key, value in e.kwargs.items():
            if isinstance(value, Mapping) and _PARAMETER in value:
                value = parameters[value[_PARAMETER]]
                if value is None:
                    continue
            kwargs[key] = value
        if e.type.endswith("_between") and "min_value" not in kwargs and "max_value" not in kwargs:
            skipped.append(e.defect)
            continue
        rendered.append({
            "type": e.type,
            "kwargs": kwargs,
            "meta": {"defect": e.defect, "problem": _fill(e.problem, parameters)},
        })
    return RenderedSuite(
        name=spec.name,
        table=_fill(spec.table, parameters),
        sql=_fill(spec.batch, parameters).strip(),
        expectations=tuple(rendered),
        skipped=tuple(skipped),
        parameters=dict(parameters),
    )


def _fill(template: str, parameters: Mapping[str, Any]) -> str:
    return template.format_map({k: "n/a" if v is None else v for k, v in parameters.items()})


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Failure:
    """A failed expectation, explained.

    :param defect: the defect it catches.
    :param problem: what the failure means.
    :param expectation: the expectation, e.g. ``expect_column_values_to_not_be_null(session_id)``.
    :param detail: counts and examples of the bad rows, or the observed value.
    """

    defect: str
    problem: str
    expectation: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.defect}] {self.problem}: {self.detail}  ({self.expectation})"


def failures(result: Mapping[str, Any]) -> list[Failure]:
    """The failed expectations of a GX suite validation result, in suite order.

    :param result: ``ExpectationSuiteValidationResult.to_json_dict()``.
    """
    out = []
    for item in result.get("results", []):
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        meta = config.get("meta") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        out.append(Failure(
            defect=meta.get("defect", "unknown"),
            problem=meta.get("problem", config.get("type", "expectation failed")),
            expectation=_describe_expectation(config.get("type", "?"), kwargs),
            detail=_describe_detail(item, kwargs),
        ))
    return out


def _describe_expectation(kind: str, kwargs: Mapping[str, Any]) -> str:
    target = kwargs.get("column") or kwargs.get("column_list")
    if target is None and "column_A" in kwargs:
        target = f"{kwargs['column_A']}, {kwargs['column_B']}"
    if isinstance(target, list):
        target = ", ".join(target)
    return f"{kind}({target})" if target else kind


def _describe_detail(item: Mapping[str, Any], kwargs: Mapping[str, Any]) -> str:
    info = item.get("exception_info") or {}
    if info.get("raised_exception"):
        return f"could not be evaluated: {info.get('exception_message')}"
    res = item.get("result") or {}
    if res.get("unexpected_count") is not None:
        bad, total = int(res["unexpected_count"]), res.get("element_count")
        share = f" ({res['unexpected_percent']:.1f}%)" if res.get("unexpected_percent") else ""
        missing = int(res.get("missing_count") or 0)
        if total is None:
            text = f"{bad:,} rows{share}"
        elif missing:  # nulls are not checked by most expectations
            text = f"{bad:,} of {int(total) - missing:,} rows with a value{share}"
        else:
            text = f"{bad:,} of {int(total):,} rows{share}"
        examples = _examples(res)
        return f"{text}, e.g. {examples}" if examples else text
    observed = res.get("observed_value")
    if "value_set" in kwargs and isinstance(observed, list):
        expected, seen = set(kwargs["value_set"]), set(observed)
        parts = []
        if expected - seen:
            parts.append(f"missing {sorted(expected - seen)}")
        if seen - expected:
            parts.append(f"unexpected {sorted(seen - expected)}")
        return "; ".join(parts) or f"observed {observed}"
    bounds = [f"{k}={kwargs[k]}" for k in ("min_value", "max_value") if k in kwargs]
    if isinstance(observed, float):
        observed = round(observed, 4)
    return f"observed {observed}" + (f", expected {', '.join(bounds)}" if bounds else "")


def _examples(res: Mapping[str, Any]) -> str:
    counted = res.get("partial_unexpected_counts") or []
    if counted:
        shown = [f"{_short(c['value'])} (x{c['count']})" if c.get("count", 1) > 1
                 else _short(c["value"]) for c in counted[:_EXAMPLES]]
    else:
        values = []
        for value in res.get("partial_unexpected_list") or []:
            if value not in values:
                values.append(value)
        shown = [_short(v) for v in values[:_EXAMPLES]]
    return ", ".join(shown)


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(_short(v) for v in value.values()) + ")"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, str) and "|" in value:  # a composite key: shorten each part
        return repr("|".join(_clip(part) for part in value.split("|")))
    return repr(_clip(value)) if isinstance(value, str) else repr(value)


def _clip(text: str, width: int = 16) -> str:
    return text[: width - 4] + "…" if len(text) > width else text


def _rows_checked(result: Mapping[str, Any]) -> int | None:
    counts = [(r.get("result") or {}).get("element_count") for r in result.get("results", [])]
    counts = [int(c) for c in counts if c is not None]
    return max(counts) if counts else None


def failure_message(suite: RenderedSuite, window: ValidationWindow,
                    result: Mapping[str, Any], report: Report | None = None) -> str:
    """The message a failed validation raises: table, interval, each failed expectation with
    its defect, counts and examples of bad rows, and where the report is.

    :param suite: the suite that ran.
    :param window: the data interval.
    :param result: ``ExpectationSuiteValidationResult.to_json_dict()``.
    :param report: where the result was written, if it was.
    """
    failed = failures(result)
    stats = result.get("statistics") or {}
    rows = _rows_checked(result)
    lines = [
        f"Data validation failed: {suite.table}, data interval {window} "
        f"(suite {suite.name}{f', {rows:,} rows checked' if rows is not None else ''}): "
        f"{len(failed)} of {stats.get('evaluated_expectations', len(suite.expectations))} "
        f"expectations failed.",
        *(f"  - {f}" for f in failed),
        f"Defects: {', '.join(sorted({f.defect for f in failed}))}.",
    ]
    if report is not None:
        lines += report.lines()
    lines.append("Nothing downstream runs for this interval; the raw log is unchanged, so the "
                 "interval can be re-run once the data is fixed.")
    return "\n".join(lines)


def success_message(suite: RenderedSuite, window: ValidationWindow,
                    result: Mapping[str, Any]) -> str:
    """One line for a passed validation."""
    rows = _rows_checked(result)
    stats = result.get("statistics") or {}
    skipped = f"; skipped without a reference: {', '.join(suite.skipped)}" if suite.skipped else ""
    return (f"{suite.table}, data interval {window}: all {stats.get('evaluated_expectations')} "
            f"expectations of suite {suite.name} passed"
            f"{f' on {rows:,} rows' if rows is not None else ''}{skipped}.")


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Report:
    """Where a validation result was kept.

    :param result_json: the result as JSON (``<reports_dir>/results/<interval>/<suite>.json``).
    :param data_docs_page: its Data Docs page (HTML), if built.
    :param data_docs_index: the Data Docs index of every kept result, if built.
    """

    result_json: Path
    data_docs_page: Path | None = None
    data_docs_index: Path | None = None

    def lines(self) -> list[str]:
        out = [f"Report: {self.result_json}"]
        if self.data_docs_page:
            out.append(f"Data Docs: {self.data_docs_page}")
        if self.data_docs_index:
            out.append(f"Data Docs index: {self.data_docs_index}")
        return out


def write_report(
    result: ExpectationSuiteValidationResult,
    suite: RenderedSuite,
    window: ValidationWindow,
    reports_dir: Path,
    *,
    data_docs: bool = True,
) -> Report:
    """Keep a validation result: JSON per interval, and a page in the Data Docs site.

    Layout under ``reports_dir`` (``$SKIFF_HOME/gx``)::

        results/<interval>/<suite>.json     the result, the SQL of its rows, the defects
        data_docs/index.html                the newest results (Great Expectations' Data Docs)
        data_docs/validations/<suite>/<interval>/<run time>/<batch>.html
        store/                              GX's copy of the results the index is built from

    A re-run of an interval replaces its JSON; Data Docs keep every run.

    :param result: the GX result object.
    :param suite: the suite that ran.
    :param window: the data interval.
    :param reports_dir: the report folder (``ValidationConfig.reports_dir``).
    :param data_docs: also render the Data Docs page (about 0.2 s).
    """
    reports_dir = Path(reports_dir)
    payload = result.to_json_dict()
    path = reports_dir / "results" / window.label / f"{suite.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "suite": suite.name,
        "table": suite.table,
        "interval": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "validated_at": window.now.isoformat(),
        "success": bool(result.success),
        "defects": sorted({f.defect for f in failures(payload)}),
        "skipped": list(suite.skipped),
        "batch_sql": suite.sql,
        "result": payload,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str))
    tmp.replace(path)
    if not data_docs:
        return Report(path)
    page = _build_data_docs(result, suite, window, reports_dir)
    return Report(path, page, reports_dir / "data_docs" / "index.html")


def _build_data_docs(result: ExpectationSuiteValidationResult, suite: RenderedSuite,
                     window: ValidationWindow, reports_dir: Path) -> Path | None:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
    )
    config.stores["skiff_results"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(reports_dir / "store")},
    }
    config.validation_results_store_name = "skiff_results"
    config.data_docs_sites = {"skiff": {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(reports_dir / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                               "validation_results_limit": DATA_DOCS_LIMIT},
    }}
    context = gx.get_context(mode="ephemeral", project_config=config)
    run_time = (result.meta.get("run_id") or {})
    run_time = getattr(run_time, "run_time", None) or (
        run_time.get("run_time") if isinstance(run_time, Mapping) else None) or window.now
    batch = next((r.expectation_config.kwargs.get("batch_id") for r in result.results
                  if r.expectation_config is not None), None) or suite.name
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=RunIdentifier(run_name=window.label, run_time=run_time),
        batch_identifier=batch,
    )
    context.validation_results_store.set(key, result)
    try:
        context.build_data_docs(site_names=["skiff"], resource_identifiers=[key])
        urls = context.get_docs_sites_urls(resource_identifier=key, site_name="skiff")
    except Exception:  # Data Docs are a convenience: a rendering bug must not hide the result
        log.exception("Could not build the Data Docs page of suite %s.", suite.name)
        return None
    url = urls[0]["site_url"] if urls else None
    return Path(url.removeprefix("file://")) if url else None


def fetch_parameters(
    spec: SuiteSpec,
    config: SkiffConfig,
    window: ValidationWindow,
    records: Callable[[str], list[tuple[Any, ...]]],
) -> dict[str, Any]:
    """:func:`suite_parameters` for ``spec``, querying the volume reference if it needs one.

    :param records: runs a SQL query on the warehouse and returns its rows (the hook's).
    """
    volume = None
    if any(p.startswith("volume_") for p in spec.parameters):
        sql = volume_history_sql(config.warehouse.raw_schema, window,
                                 config.validation.volume_history_hours)
        volume = volume_reference(records(sql), window)
    return suite_parameters(config, window, volume)


def read_reports(reports_dir: Path, interval: str | None = None) -> tuple[str | None, list[dict]]:
    """The kept results of one interval (default: the latest one validated).

    :param reports_dir: ``ValidationConfig.reports_dir``.
    :param interval: an interval label (``2026-11-20T1100Z``) or start time (ISO 8601).
    :return: the interval's label and its result documents (see :func:`write_report`),
        in suite order; ``(None, [])`` when nothing was validated yet.
    """
    results = Path(reports_dir) / "results"
    if interval is not None and not (results / interval).is_dir():
        interval = ValidationWindow.of(interval, parse_time(interval) + timedelta(hours=1)).label
    labels = sorted(p.name for p in results.glob("*") if p.is_dir()) if results.is_dir() else []
    label = interval or (labels[-1] if labels else None)
    if label is None or not (results / label).is_dir():
        return label, []
    order = {name: i for i, name in enumerate(SUITES)}
    docs = [json.loads(p.read_text()) for p in (results / label).glob("*.json")]
    return label, sorted(docs, key=lambda d: (order.get(d["suite"], len(order)), d["suite"]))


def report_summary(reports_dir: Path, label: str | None, documents: list[dict]) -> str:
    """A few lines per suite for the terminal: passed, failed (with each failure), not run."""
    if label is None:
        return f"No validation results under {Path(reports_dir) / 'results'} yet."
    by_suite = {d["suite"]: d for d in documents}
    folder = Path(reports_dir) / "results" / label
    lines = [f"validation of the data interval starting {label}: {folder}"]
    for name in [*SUITES, *sorted(set(by_suite) - set(SUITES))]:
        doc = by_suite.get(name)
        if doc is None:
            lines.append(f"  {'not run':<8} {name}")
            continue
        status = "passed" if doc["success"] else "FAILED"
        lines.append(f"  {status:<8} {name:<20} {doc['table']}")
        lines += [f"             - {f}" for f in failures(doc["result"])]
    index = Path(reports_dir) / "data_docs" / "index.html"
    if index.exists():
        lines.append(f"Data Docs: {index}")
    return "\n".join(lines)
