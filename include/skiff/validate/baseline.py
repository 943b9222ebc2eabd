"""The interval's shares of raw browsing events, and their bounds from the recent hours' baseline.

An absolute cap (``SKIFF_MAX_UNKNOWN_SKU_SHARE``, ``SKIFF_MAX_DUPLICATE_SHARE``) misses a
defect that appears suddenly under it, and alarms every hour on a shop whose normal is above
it. The ``event_mix`` suite compares each share with its own recent past instead:

1. :data:`METRICS`, derived from the contract (:data:`skiff.data.contract.BROWSING`): the
   share of each ``event_type`` value (of all rows), of each ``product_action`` value (of
   the product events), the null share of each optional column (of the rows it belongs to:
   the product events for the columns a product event needs), the share of product events
   whose SKU the raw catalogue never held, and the share of rows that are extra copies of
   an event (same session, time, type, action and SKU).
2. :func:`shares_sql`, the one query computing them, portable DuckDB/Snowflake: over the
   rows that arrived in a range, as one row (the suite's batch: the data interval) or one
   row per arrival hour (the baseline: the ``SKIFF_BASELINE_HOURS`` whole hours before it).
3. :func:`share_bounds`: with at least ``SKIFF_BASELINE_MIN_HOURS`` hours of history, each
   share's median ``m`` over the hours, ``sigma = 1.4826 * MAD`` of them and the interval's
   own sampling noise ``sqrt(max(m, 1/n) * (1 - m) / n)`` (``n`` its denominator); the bound
   is ``m +/- (k * max(sigma, noise) + SKIFF_BASELINE_MIN_DELTA)`` with ``k =
   SKIFF_BASELINE_MADS`` (upper only for defect-like shares). Without history: no bound, the
   expectation is skipped (as the volume suite's).
4. :func:`mix_suite`, the suite file ``include/gx/suites/event_mix.yml`` (generated: a change
   of the contract regenerates it; a unit test keeps the committed file equal to it), and
   :func:`fetch_baseline`, the parameters it is rendered with.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skiff.data.contract import BROWSING, CATALOGUE, Column
from skiff.validate.from_contract import condition_sql, key_sql, sql_text, yaml_text

if TYPE_CHECKING:
    from skiff.config import ValidationConfig
    from skiff.validate.parameters import ValidationWindow

__all__ = [
    "MIX_SUITE",
    "METRICS",
    "ShareMetric",
    "ShareBound",
    "share_metrics",
    "shares_sql",
    "share_bounds",
    "baseline_parameters",
    "uses_baseline",
    "interval_bounds",
    "fetch_baseline",
    "mix_suite",
    "mix_suite_yaml",
]

#: The suite's name (and file stem under ``include/gx/suites``).
MIX_SUITE = "event_mix"
#: The batch's row count column (and, per hour, the baseline's).
ROWS = "event_rows"
#: Where a share's denominator column is: ``<metric>_n``.
_N = "_n"
_HOUR_MS = 3_600_000
_MAD_TO_SIGMA = 1.4826  # the MAD of a normal sample times this estimates its sigma


@dataclass(frozen=True)
class ShareMetric:
    """A share of the interval's raw browsing events compared with the recent hours.

    :param name: its column in the batch (a lower-case SQL name, ``..._share``).
    :param numerator: SQL condition on a row (of the denominator) counted as a hit.
    :param denominator: SQL condition of the rows the share is of (``""``: all rows).
    :param direction: ``upper`` (a defect-like share: only a rise fails) or ``both``.
    :param defect: the defect a breach names (``meta.defect``).
    :param problem: what a breach means, in words (``{<name>_median:.2%}`` and the bound
        filled in at render time).
    """

    name: str
    numerator: str
    denominator: str
    direction: str
    defect: str
    problem: str

    def __post_init__(self) -> None:
        if self.direction not in ("upper", "both"):
            raise ValueError(f"ShareMetric {self.name}: direction {self.direction!r} must be "
                             "'upper' or 'both'.")
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"ShareMetric {self.name!r} must be a lower-case SQL name.")


def _scope(column: Column) -> str:
    """SQL condition of the rows a column belongs to ("" for all): those its contract's
    ``required_if`` names (a product action belongs to the product events)."""
    return condition_sql(column.required_if) if column.required_if else ""


def _name(*parts: str) -> str:
    return "_".join("".join(c if c.isalnum() else "_" for c in p.lower()) for p in parts)


def share_metrics(contract: Any = BROWSING) -> tuple[ShareMetric, ...]:
    """The share metrics of a browsing-events contract (see the module docstring).

    :param contract: the raw browsing events' :class:`~skiff.data.contract.TableContract`.
    """
    product = condition_sql(contract.column("product_sku_hash").required_if)
    scope = {c.name: _scope(c) for c in contract.fields}
    metrics = []
    for column in contract.fields:
        for value in column.values:
            of = "product events" if scope[column.name] else "events"
            metrics.append(ShareMetric(
                _name(column.name, value, "share"), f"{column.name} = {sql_text(value)}",
                scope[column.name], "both", "mix_shift",
                f"the share of {of} with {column.name} '{value}' moved away from the recent "
                f"hours' ({{{_name(column.name, value, 'share')}_median:.2%}}; allowed "
                f"{{{_name(column.name, value, 'share')}_min:.2%}}-"
                f"{{{_name(column.name, value, 'share')}_max:.2%}})"))
    for column in contract.fields:
        if column.required or column.required_if:  # a missing one fails browsing_train's rows
            continue
        name = _name(column.name, "null_share")
        of = "product events" if scope[column.name] else "events"
        metrics.append(ShareMetric(
            name, f"({column.name} is null or {column.name} = '')" if column.type == "string"
            else f"{column.name} is null", scope[column.name], "upper", "missing_values",
            f"more {of} without {column.name} than in the recent hours ({{{name}_median:.2%}}; "
            f"at most {{{name}_max:.2%}} allowed)"))
    metrics.append(ShareMetric(
        "unknown_sku_share", "catalogue.catalogue_sku is null",
        f"{product} and events.product_sku_hash is not null "
        "and events.product_sku_hash <> ''", "upper", "unknown_skus",
        "more product events with SKUs the catalogue never held than in the recent hours "
        "({unknown_sku_share_median:.2%}; at most {unknown_sku_share_max:.2%} allowed)"))
    return tuple(metrics)


#: The metrics of :data:`~skiff.data.contract.BROWSING`, then ``duplicate_share``.
METRICS: tuple[ShareMetric, ...] = (*share_metrics(), ShareMetric(
    "duplicate_share", "", "", "upper", "duplicate_events",
    "more rows that copy an earlier event (same session, time, type, action and SKU) than in "
    "the recent hours ({duplicate_share_median:.2%}; at most {duplicate_share_max:.2%} allowed)"))


# --------------------------------------------------------------------------- the SQL


def _share_sql(metric: ShareMetric) -> tuple[str, str]:
    """The share's and its denominator's select expressions."""
    if metric.name == "duplicate_share":
        key = key_sql(BROWSING, "events.", "\n            ")
        return (f"cast(count(*) - count(distinct\n            {key}\n        ) as double)"
                "\n        / nullif(count(*), 0)", "count(*)")
    den = f"case when {metric.denominator} then 1 else 0 end" if metric.denominator else "1"
    hit = f"{metric.denominator}\n            and {metric.numerator}" if metric.denominator \
        else metric.numerator
    return (f"cast(sum(case when {hit}\n            then 1 else 0 end) as double)"
            f"\n        / nullif(sum({den}), 0)", f"sum({den})")


def shares_sql(raw_schema: str, since_ms: int | str, until_ms: int | str, *,
               by_hour: bool = False, metrics: Sequence[ShareMetric] = METRICS) -> str:
    """The shares of the raw browsing rows that arrived in ``[since_ms, until_ms)``.

    Columns: ``arrival_hour`` (``arrival_ts_ms / 3600000``, with ``by_hour``), ``event_rows``,
    then each metric's share (null when its denominator is empty) and ``<metric>_n``, its
    denominator. The same SQL on DuckDB and Snowflake; it starts with ``select`` (a suite's
    batch). Arguments may be ``{name}`` placeholders (the suite file's template).

    :param raw_schema: schema of the raw log.
    :param since_ms: first arrival, epoch ms.
    :param until_ms: end of the arrivals (excluded).
    :param by_hour: one row per arrival hour with rows, instead of one row.
    :param metrics: the shares.
    """
    columns = []
    for metric in metrics:
        share, n = _share_sql(metric)
        columns += [f"{share} as {metric.name}", f"{n} as {metric.name}{_N}"]
    hour = f"cast(floor(events.arrival_ts_ms / {_HOUR_MS}) as bigint)"
    select = ([f"{hour} as arrival_hour"] if by_hour else []) + [f"count(*) as {ROWS}"] + columns
    sql = ("select\n    " + ",\n    ".join(select) + "\n"
           f"from {raw_schema}.{BROWSING.name} as events\n"
           "left join (\n"
           f"    select distinct product_sku_hash as catalogue_sku\n"
           f"    from {raw_schema}.{CATALOGUE.name}\n"
           ") as catalogue\n"
           "    on events.product_sku_hash = catalogue.catalogue_sku\n"
           f"where events.arrival_ts_ms >= {since_ms} and events.arrival_ts_ms < {until_ms}\n")
    return sql + (f"group by {hour}\n" if by_hour else "")


# --------------------------------------------------------------------------- the bounds


@dataclass(frozen=True)
class ShareBound:
    """A share's baseline: its median over the recent hours and the interval's bounds.

    :param median: the median share of the hours (``None``: too little history).
    :param lower: the lowest share allowed (``None``: no lower bound).
    :param upper: the highest share allowed (``None``: no bound).
    :param hours: hours of history it was computed from.
    """

    median: float | None = None
    lower: float | None = None
    upper: float | None = None
    hours: int = 0


def share_bounds(history: Sequence[Mapping[str, Any]], interval: Mapping[str, Any],
                 config: ValidationConfig,
                 metrics: Sequence[ShareMetric] = METRICS) -> dict[str, ShareBound]:
    """Each metric's bounds for the interval, from the shares of the hours before it.

    :param history: one mapping per hour (:func:`shares_sql` ``by_hour``'s columns).
    :param interval: the interval's row of :func:`shares_sql` (for each ``<metric>_n``).
    :param config: ``SKIFF_BASELINE_MIN_HOURS``, ``_MADS``, ``_MIN_DELTA``.
    :param metrics: the shares.
    :return: by metric name; an empty :class:`ShareBound` where there is no bound.
    """
    bounds = {}
    k = config.baseline_mads
    for metric in metrics:
        shares = [float(h[metric.name]) for h in history
                  if h.get(ROWS) and h.get(metric.name) is not None]
        n = int(interval.get(metric.name + _N) or 0)
        if len(shares) < config.baseline_min_hours or n == 0:
            bounds[metric.name] = ShareBound(hours=len(shares))
            continue
        m = statistics.median(shares)
        sigma = _MAD_TO_SIGMA * statistics.median(abs(s - m) for s in shares)
        noise = math.sqrt(max(m, 1 / n) * (1 - m) / n)
        width = k * max(sigma, noise) + config.baseline_min_delta
        bounds[metric.name] = ShareBound(
            median=m,
            lower=max(0.0, m - width) if metric.direction == "both" else None,
            upper=min(1.0, m + width),
            hours=len(shares),
        )
    return bounds


def baseline_parameters(bounds: Mapping[str, ShareBound],
                        metrics: Sequence[ShareMetric] = METRICS) -> dict[str, Any]:
    """The suite parameters of the bounds: ``<metric>_min``, ``_max``, ``_median`` (``None``
    without a bound, so that the expectation is skipped) and ``baseline_hours``.

    :param bounds: :func:`share_bounds`' (a metric missing has no bound).
    :param metrics: the shares.
    """
    out: dict[str, Any] = {"baseline_hours": max((b.hours for b in bounds.values()), default=0)}
    for metric in metrics:
        bound = bounds.get(metric.name, ShareBound())
        out[f"{metric.name}_min"] = bound.lower
        out[f"{metric.name}_max"] = bound.upper
        out[f"{metric.name}_median"] = bound.median
    return out


def uses_baseline(parameters: set[str], metrics: Sequence[ShareMetric] = METRICS) -> bool:
    """Whether a suite's parameters include a share's bound (so it needs the baseline)."""
    return any(f"{m.name}_{end}" in parameters for m in metrics for end in ("min", "max"))


def interval_bounds(records: Callable[[str], list[tuple[Any, ...]]], raw_schema: str,
                    window: ValidationWindow, config: ValidationConfig
                    ) -> tuple[dict[str, Any], dict[str, ShareBound]]:
    """The interval's shares and their bounds, counted by the warehouse.

    Two runs of :func:`shares_sql`: the interval (its shares, and each one's denominator)
    and the ``SKIFF_BASELINE_HOURS`` whole arrival hours before the hour the interval starts
    in (the hour holding a sub-hour interval's start is not complete yet).

    :param records: runs a query and returns its rows (e.g.
        :meth:`skiff.data.warehouse.Warehouse.records`).
    :param raw_schema: schema of the raw log.
    :param window: the data interval.
    :param config: the validation settings.
    :return: the interval's row (by column), and :func:`share_bounds`.
    """
    history = _history(records, raw_schema, window, config)
    (interval,) = _rows(records(shares_sql(raw_schema, window.start_ms, window.end_ms)))
    return interval, share_bounds(history, interval, config)


def _history(records: Callable[[str], list[tuple[Any, ...]]], raw_schema: str,
             window: ValidationWindow, config: ValidationConfig) -> list[dict[str, Any]]:
    first = (window.start_ms // _HOUR_MS - config.baseline_hours) * _HOUR_MS
    last = window.start_ms // _HOUR_MS * _HOUR_MS
    return _rows(records(shares_sql(raw_schema, first, last, by_hour=True)), by_hour=True)


def fetch_baseline(records: Callable[[str], list[tuple[Any, ...]]], raw_schema: str,
                   window: ValidationWindow, config: ValidationConfig) -> dict[str, Any]:
    """The suite parameters of the interval's bounds (:func:`interval_bounds`).

    With fewer than ``SKIFF_BASELINE_MIN_HOURS`` hours of history no share has a bound,
    whatever the interval holds: its own shares are not counted then (for a range starting
    at the log's start, the whole log, they would cost a scan of it for nothing).
    """
    history = _history(records, raw_schema, window, config)
    interval: dict[str, Any] = {}
    if sum(1 for hour in history if hour.get(ROWS)) >= config.baseline_min_hours:
        (interval,) = _rows(records(shares_sql(raw_schema, window.start_ms, window.end_ms)))
    return baseline_parameters(share_bounds(history, interval, config))


def _rows(rows: list[tuple[Any, ...]], by_hour: bool = False) -> list[dict[str, Any]]:
    names = (["arrival_hour"] if by_hour else []) + [ROWS] + [
        c for m in METRICS for c in (m.name, m.name + _N)]
    return [dict(zip(names, row, strict=True)) for row in rows]


# --------------------------------------------------------------------------- the suite


def mix_suite(metrics: Sequence[ShareMetric] = METRICS) -> dict[str, Any]:
    """The ``event_mix`` suite (as its YAML document): one bound check per share."""
    expectations = []
    for metric in metrics:
        kwargs: dict[str, Any] = {"column": metric.name}
        if metric.direction == "both":
            kwargs["min_value"] = {"$PARAMETER": f"{metric.name}_min"}
        kwargs["max_value"] = {"$PARAMETER": f"{metric.name}_max"}
        expectations.append({"type": "expect_column_values_to_be_between", "kwargs": kwargs,
                             "meta": {"defect": metric.defect, "problem": metric.problem}})
    return {
        "name": MIX_SUITE,
        "table": "{raw_schema}." + BROWSING.name,
        "description": "The interval's shares of event types, actions, missing values, "
                       "unknown SKUs and duplicates against the recent hours'.",
        "batch": shares_sql("{raw_schema}", "{start_ms}", "{end_ms}", metrics=metrics),
        "expectations": expectations,
    }


_HEADER = """\
# Generated from include/skiff/data/contract.toml by `skiff contract --write` (make contract),
# through skiff.validate.baseline.mix_suite(): edit the contract, not this file.
#
# The data interval's shares of raw browsing events (by arrival, arrival_ts_ms in
# [start, end)) against the same shares of the SKIFF_BASELINE_HOURS whole hours before: each
# within k MADs of its median (SKIFF_BASELINE_MADS, or k times the interval's own sampling
# noise if more) plus SKIFF_BASELINE_MIN_DELTA. The event type and action mix is bounded both
# ways; missing values, SKUs the catalogue never held and extra copies of an event upwards
# only. With fewer than SKIFF_BASELINE_MIN_HOURS hours of history an expectation is skipped.
# The absolute caps (browsing_train, int_session_events) stay as ceilings.
"""


def mix_suite_yaml(metrics: Sequence[ShareMetric] = METRICS) -> str:
    """The text of ``include/gx/suites/event_mix.yml`` (``make contract`` writes it)."""
    return yaml_text(mix_suite(metrics), _HEADER)
