"""Append one data interval's events to the raw log: landing files, or the replay source."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from hooks.landing_zone import LandingZoneHook
from hooks.warehouse import SkiffWarehouseHook
from triggers.landing_arrival import LandingArrivalTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["LandingIngestOperator", "ReplayIngestOperator"]


class ReplayIngestOperator(BaseOperator):
    """Append the events of ``[since, until)`` from a generated source folder to the raw log.

    This is how local runs see fresh data every hour, as production would from its event
    collector. Idempotent: the batch id is derived from the interval, and an interval
    already ingested is skipped, so clearing and re-running a task appends nothing twice.

    :param source_dir: folder written by ``skiff generate`` (templated).
    :param since: interval start, ISO 8601 (templated), e.g. ``{{ data_interval_start }}``.
    :param until: interval end, ISO 8601, exclusive (templated).
    """

    template_fields: Sequence[str] = ("source_dir", "since", "until")
    ui_color = "#e8f4fd"

    def __init__(self, *, source_dir: str, since: str, until: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_dir = source_dir
        self.since = since
        self.until = until

    @cached_property
    def hook(self) -> SkiffWarehouseHook:
        return SkiffWarehouseHook()

    def execute(self, context: Context) -> dict[str, Any]:
        from skiff.data import ingest_interval

        summary = ingest_interval(self.source_dir, self.hook.warehouse, self.since, self.until)
        if summary.skipped:
            self.log.info("Interval already ingested as %s: nothing appended.", summary.batch_id)
        else:
            self.log.info("Ingested %s as batch %s.", summary.rows, summary.batch_id)
        return {"batch_id": summary.batch_id, "rows": summary.rows, "skipped": summary.skipped}


class LandingIngestOperator(BaseOperator):
    """Append the landing files that arrived in the data interval, all or nothing, once each.

    The landing zone (``SKIFF_LANDING_URI``: a folder, or S3 where Firehose delivers) holds
    the collector's files by arrival hour; the interval's are those whose first event arrived
    in it, so the interval may be any length ``SKIFF_SCHEDULE`` gives. Files may still be
    landing when the interval ends (the collector rolls a file ``SKIFF_COLLECT_ROLL_SECONDS``
    after its first event; a collector may lag), so until the interval's end plus
    ``grace_minutes`` the task waits for the collector to move on (an event file whose first
    arrival is at or after the interval's end). The grace does not scale with the interval:
    it covers the collector's lag, which a shorter interval does not shorten, and it ends as
    soon as the collector moves on. Deferrable, that wait is
    :class:`~triggers.landing_arrival.LandingArrivalTrigger` in the triggerer, holding no
    worker slot; otherwise the task polls. A run after the grace period (a backfill, a
    re-run) does not wait. Then :func:`skiff.data.ingest.ingest_arrivals` appends the files,
    skipping those the ingest ledger holds (by name, or by content re-delivered under another
    name), so a cleared and re-run task appends only what it did not append before. An
    interval without files appends nothing; ``validate_volume`` then declares it empty.

    .. seealso:: ``skiff.data.ingest`` for the ledger and the warehouse transaction.

    :param interval_start: the interval's start, ISO 8601 (templated); default
        ``{{ data_interval_start }}``.
    :param interval_end: its end, excluded (templated); default ``{{ data_interval_end }}``.
    :param landing_uri: the landing zone (templated); default ``SKIFF_LANDING_URI``.
    :param aws_conn_id: the AWS connection of an S3 zone; default ``SKIFF_AWS_CONN_ID``.
    :param grace_minutes: minutes after the interval's end to wait for late files; default
        ``SKIFF_INGEST_GRACE_MINUTES`` (10).
    :param poll_interval: seconds between looks at the landing zone while waiting; default
        ``SKIFF_INGEST_POLL_S`` (30).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :return: ``{"batch_id", "rows": {table: n}, "files", "skipped", "seconds"}`` (to XCom).
    """

    template_fields: Sequence[str] = ("interval_start", "interval_end", "landing_uri")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        interval_start: str = "{{ data_interval_start.isoformat() }}",
        interval_end: str = "{{ data_interval_end.isoformat() }}",
        landing_uri: str | None = None,
        aws_conn_id: str | None = None,
        grace_minutes: float | None = None,
        poll_interval: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if grace_minutes is not None and grace_minutes < 0:
            raise ValueError(f"grace_minutes={grace_minutes} must be >= 0.")
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll_interval={poll_interval} must be > 0 (seconds).")
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.landing_uri = landing_uri
        self.aws_conn_id = aws_conn_id
        self.grace_minutes = grace_minutes
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> LandingZoneHook:
        return LandingZoneHook(landing_uri=self.landing_uri, aws_conn_id=self.aws_conn_id)

    @cached_property
    def _settings(self) -> tuple[float, float]:
        """Grace (minutes) and poll interval (seconds), the configuration's where not given."""
        from skiff.config import IngestConfig

        config = IngestConfig.from_env()
        return (config.grace_minutes if self.grace_minutes is None else self.grace_minutes,
                config.poll_seconds if self.poll_interval is None else self.poll_interval)

    def _interval(self) -> tuple[datetime, datetime]:
        from skiff.times import parse_time

        return parse_time(self.interval_start), parse_time(self.interval_end)

    def execute(self, context: Context) -> dict[str, Any]:
        start, end = self._interval()
        grace, poll = self._settings
        deadline = end + timedelta(minutes=grace)
        if datetime.now(UTC) < deadline:
            state = self.hook.arrivals(start, end)
            if not state["moved_on"]:
                self.log.info("%s event file(s) of [%s, %s) so far and none starting at or "
                              "after its end: waiting for late files until %s.", state["files"],
                              start, end, deadline.isoformat())
                if self.deferrable:
                    self.defer(
                        trigger=LandingArrivalTrigger(
                            interval_start=start.isoformat(), interval_end=end.isoformat(),
                            deadline=deadline.isoformat(), landing_uri=self.hook.landing_uri,
                            aws_conn_id=self.hook.aws_conn_id, poll_interval=poll),
                        method_name="execute_complete",
                        timeout=deadline - datetime.now(UTC) + timedelta(seconds=2 * poll + 60),
                    )
                self._wait_here(start, end, deadline, poll)
        return self._ingest(start, end)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            raise AirflowException(f"Waiting for the landing files of [{self.interval_start}, "
                                   f"{self.interval_end}) failed: {event}")
        self.log.info("Wait over (%s): %s event file(s) of the interval.", event.get("reason"),
                      event.get("files"))
        return self._ingest(*self._interval())

    def _wait_here(self, start: datetime, end: datetime, deadline: datetime, poll: float) -> None:
        """The wait without a triggerer: poll until the collector moves on or the deadline."""
        while (left := (deadline - datetime.now(UTC)).total_seconds()) > 0:
            time.sleep(min(poll, left))
            if self.hook.arrivals(start, end)["moved_on"]:
                return

    def _ingest(self, start: datetime, end: datetime) -> dict[str, Any]:
        from skiff.exceptions import DataContractError

        try:
            summary = self.hook.ingest(start, end)
        except DataContractError as exc:  # a bad file does not fix itself: no retry
            raise AirflowFailException(str(exc)) from None
        if not summary.files:
            self.log.warning("No new landing file arrived in [%s, %s): nothing appended "
                             "(%d skipped).", start, end, len(summary.skipped))
        return summary.as_dict()
