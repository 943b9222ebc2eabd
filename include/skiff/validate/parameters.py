"""What a suite is rendered with for one run: the data interval, thresholds, recent references.

:class:`ValidationWindow` is the run's data interval and clock; :func:`suite_parameters`
computes every parameter a suite can use from the configuration and the window, and
:func:`fetch_parameters` adds the volume reference (:func:`volume_reference` of the hours
before the interval, counted by the warehouse) and the shares' baseline
(:mod:`skiff.validate.baseline`) when a suite needs them.

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
``duplicate_mostly``        ``1 - SKIFF_MAX_DUPLICATE_SHARE`` (and ``max_duplicate_share``);
                            with the batch's size, :func:`allow_duplicates` lets
                            ``SKIFF_DUPLICATE_ALLOWANCE`` copies through whatever the share
                            (and ``duplicate_allowance``)
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
``volume_start_ms``         start of the span the volume is counted over: the interval's, or,
                            for an interval shorter than an hour, an hour before its end
                            (``volume_span_minutes``; :func:`volume_span`)
``raw_contract_columns``    ``"<table>.<column> <type family>"`` of every raw table, from
                            :mod:`skiff.data.contract`
``<share>_min``, ``_max``   bounds of each share of :data:`skiff.validate.baseline.METRICS`
                            (e.g. ``unknown_sku_share_max``) from the recent hours' baseline,
                            and ``<share>_median``, ``baseline_hours`` (none without enough
                            history: :func:`skiff.validate.baseline.share_bounds`)
``monitor_<threshold>``     skiff_monitor's thresholds (``MonitorConfig``): ``_min_requests``,
                            ``_min_drift_sessions``, ``_error_rate_max``, ``_latency_p99_ms_max``, ``_psi_max``,
                            ``_calibration_error_max``, ``_quality_drop_max``
``monitor_hit_rate_floor``  the online hit rate@20 the rec model must keep: the champion's
                            offline one (``monitor_offline_hit_rate``) less the allowed drop;
                            none without a champion (:func:`quality_floor`; skiff_monitor's
                            operator fills both in from the registry)
=========================== ===========================================================
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from skiff.config import SkiffConfig, ValidationConfig
from skiff.data import TABLES
from skiff.validate.baseline import baseline_parameters, fetch_baseline, uses_baseline
from skiff.times import parse_time, to_epoch_ms

if TYPE_CHECKING:
    from skiff.data.warehouse import Warehouse
    from skiff.validate.suites import SuiteSpec

__all__ = [
    "INTERMEDIATE_SCHEMA",
    "ValidationWindow",
    "VolumeReference",
    "volume_reference",
    "volume_span",
    "suite_parameters",
    "raw_contract_columns",
    "fetch_parameters",
    "monitor_parameters",
    "quality_floor",
]

#: Schema of the dbt intermediate models (fixed in ``include/dbt/dbt_project.yml``).
INTERMEDIATE_SCHEMA = "intermediate"

_HOUR_MS = 3_600_000
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

    @property
    def span_label(self) -> str:
        """A folder-safe name of a range (its start and end), e.g.
        ``2026-10-23T0000Z--2026-11-01T0000Z``: a whole-log validation's, apart from the
        hourly run of its first hour."""
        return f"{self.label}--{self.end.strftime('%Y-%m-%dT%H%MZ')}"

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
    :param median: the events the counted span (:func:`volume_span`) is expected to hold: the
        median events per hour over them, times the span's length in hours (a day's interval
        of ``SKIFF_SCHEDULE="@daily"`` expects 24 median hours; a 5-minute one, counted over
        the hour ending with it, one); ``None`` without history.
    """

    hours: int
    median: float | None


def volume_span(window: ValidationWindow) -> tuple[int, int]:
    """The span whose events the volume suite counts: ``(start_ms, end_ms)``.

    The interval itself when it lasts an hour or more; for a shorter one (``SKIFF_SCHEDULE``
    of ``*/5 * * * *``) the hour ending with it. Five minutes at night hold a few sessions'
    events, which come in bursts: against a twelfth of the day's median hour such an interval
    fell under 0.2x a few times a night with no loss at all (the emitter's shoppers, 32 hours
    of 5-minute intervals: 5 of 384, all between 23:00 and 03:00 UTC, the lowest 0.15x), while
    the hour ending with each stayed at 0.33x or more. The empty-interval check still counts
    the interval alone.
    """
    return min(window.start_ms, window.end_ms - _HOUR_MS), window.end_ms


def volume_reference(counts: Mapping[int, int], window: ValidationWindow) -> VolumeReference:
    """The median events per hour before the interval, scaled to the counted span's length.

    Hours between the first hour with events and the interval count as 0 when empty; hours
    before the log's first event do not count (the log had not started). History is counted
    by whole hours whatever the schedule (the hour holding the start of a sub-hour interval is
    not complete yet, so it does not count), and the median scaled by the length of the span
    the suite counts (:func:`volume_span`): two median hours for a two-hour interval, one for
    a 5-minute interval, counted over the hour ending with it.

    :param counts: events by epoch hour (``ms // 3_600_000``) before the interval, as
        :meth:`skiff.data.warehouse.Warehouse.events_per_hour` counts them; hours without
        events may be absent.
    :param window: the data interval.
    """
    if not counts:
        return VolumeReference(0, None)
    last = window.start_ms // _HOUR_MS - 1
    series = [counts.get(hour, 0) for hour in range(min(counts), last + 1)]
    if not series:  # only the unfinished hour of a sub-hour interval's start has events
        return VolumeReference(0, None)
    start_ms, end_ms = volume_span(window)
    return VolumeReference(len(series), float(statistics.median(series)) * (end_ms - start_ms)
                           / _HOUR_MS)


# --------------------------------------------------------------------------- parameters


def raw_contract_columns() -> list[str]:
    """``"<table>.<column> <family>"`` of every raw-log column, from :mod:`skiff.data.contract`."""
    return sorted(
        f"{contract.name}.{f.name} {_TYPE_FAMILIES[f.type]}"
        for contract in TABLES
        for f in contract.log_schema
    )


def suite_parameters(
    config: SkiffConfig, window: ValidationWindow, volume: VolumeReference | None = None,
    baseline: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every parameter a suite can use (see the module docstring), for one run.

    :param config: Skiff's configuration (warehouse schemas, dbt lookback, thresholds).
    :param window: the data interval and the run's clock.
    :param volume: the volume reference, for the volume suite (default: none, so only an
        empty interval fails it).
    :param baseline: the shares' bounds (:func:`~skiff.validate.baseline.fetch_baseline`),
        for the event_mix suite (default: none, so its checks are skipped).
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
        "duplicate_allowance": cfg.duplicate_allowance,
        "known_sku_mostly": 1 - cfg.max_unknown_sku_share,
        "max_unknown_sku_share": cfg.max_unknown_sku_share,
        "in_order_mostly": 1 - cfg.max_out_of_order_share,
        "max_out_of_order_share": cfg.max_out_of_order_share,
        "max_event_gap_seconds": cfg.max_event_gap_minutes * 60,
        "max_event_gap_minutes": cfg.max_event_gap_minutes,
        "label_rate_min": cfg.label_rate_min,
        "label_rate_max": cfg.label_rate_max,
        "volume_start_ms": volume_span(window)[0],
        "volume_span_minutes": (window.end_ms - volume_span(window)[0]) // 60_000,
        "volume_history_hours": volume.hours,
        "volume_median_events": None if median is None else round(median, 1),
        "volume_min_ratio": cfg.volume_min_ratio,
        "volume_max_ratio": cfg.volume_max_ratio,
        # None leaves the bound out; a floor of 1 event is the empty-hour check already
        "volume_min_events": _floor_above_one(cfg.volume_min_ratio, median),
        "volume_max_events": None if median is None else math.floor(cfg.volume_max_ratio * median),
        "raw_contract_columns": raw_contract_columns(),
        **monitor_parameters(config),
        **(baseline if baseline is not None else baseline_parameters({})),
    }


def monitor_parameters(config: SkiffConfig, offline_hit_rate: float | None = None
                       ) -> dict[str, Any]:
    """skiff_monitor's thresholds as suite parameters, and the rec model's quality floor.

    :param config: Skiff's configuration (``MonitorConfig``).
    :param offline_hit_rate: the rec champion's offline hit rate@20; None without a champion.
    """
    mon = config.monitor
    return {
        "monitor_min_requests": mon.min_requests,
        "monitor_min_drift_sessions": mon.min_drift_sessions,
        "monitor_error_rate_max": mon.error_rate_max,
        "monitor_latency_p99_ms_max": mon.latency_p99_ms_max,
        "monitor_psi_max": mon.psi_max,
        "monitor_calibration_error_max": mon.calibration_error_max,
        "monitor_quality_drop_max": mon.quality_drop_max,
        "monitor_offline_hit_rate": offline_hit_rate,
        "monitor_hit_rate_floor": quality_floor(offline_hit_rate, mon.quality_drop_max),
    }


def quality_floor(offline: float | None, drop_max: float) -> float | None:
    """The lowest online value allowed: ``offline`` less the relative ``drop_max``; None
    without an offline value."""
    return None if offline is None else round(offline * (1 - drop_max), 6)


def _floor_above_one(ratio: float, median: float | None) -> int | None:
    if median is None:
        return None
    floor = math.ceil(ratio * median)
    return floor if floor > 1 else None


def allow_duplicates(parameters: Mapping[str, Any], rows: int,
                     config: ValidationConfig) -> dict[str, Any]:
    """``parameters`` with ``duplicate_mostly`` for a batch of ``rows``: the share allowed, or
    ``SKIFF_DUPLICATE_ALLOWANCE`` copies if that is more.

    Client retries copy a few events (a fraction of a percent); on a batch of a few hundred
    rows, chance alone puts that over a 1 % share now and then, and every such interval would
    alert. A count floor keeps small intervals quiet and a real defect (a batch delivered
    twice, a tenth of the events copied) still far over it.

    :param parameters: what :func:`suite_parameters` gave.
    :param rows: rows of the suite's batch.
    :param config: the validation settings.
    """
    share = config.max_duplicate_share
    if rows > 0:
        share = max(share, min(1.0, config.duplicate_allowance / rows))
    return {**parameters, "duplicate_mostly": 1 - share,
            "duplicate_allowance": config.duplicate_allowance}


def fetch_parameters(
    spec: SuiteSpec,
    config: SkiffConfig,
    window: ValidationWindow,
    warehouse: Warehouse,
) -> dict[str, Any]:
    """:func:`suite_parameters` for ``spec``, with the volume reference and the shares'
    baseline if it uses them.

    :param spec: the suite.
    :param config: Skiff's configuration.
    :param window: the data interval and the run's clock.
    :param warehouse: counts the events of the ``SKIFF_VOLUME_HISTORY_HOURS`` before the
        interval (only for a suite with ``volume_*`` parameters), and the shares of the
        interval and of the ``SKIFF_BASELINE_HOURS`` before it (only for a suite with a
        share's bounds).
    """
    volume = baseline = None
    if any(p.startswith("volume_") for p in spec.parameters):
        since = window.start_ms - config.validation.volume_history_hours * _HOUR_MS
        volume = volume_reference(warehouse.events_per_hour(since, window.start_ms), window)
    if uses_baseline(spec.parameters):
        baseline = fetch_baseline(warehouse.records, config.warehouse.raw_schema, window,
                                  config.validation)
    return suite_parameters(config, window, volume, baseline)
