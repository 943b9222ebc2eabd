"""Trigger waiting, in the triggerer, for an interval's landing files to be complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hooks.landing_zone import LandingZoneHook

__all__ = ["LandingArrivalTrigger"]


class LandingArrivalTrigger(BaseTrigger):
    """Wait until an interval's landing files are in, or its grace period is over.

    The collector writes its files in the order of their first arrivals, so an event file
    whose first arrival is at or after the interval's end means the interval's last file is
    written: the wait ends then (``moved_on``, :func:`skiff.data.ingest.arrival_state`).
    Otherwise it ends at ``deadline`` (the interval's end plus the grace period,
    ``SKIFF_INGEST_GRACE_MINUTES``), when a late collector has had its chance and the
    interval is ingested with what arrived, empty or not. The landing zone is listed through
    :class:`~hooks.landing_zone.LandingZoneHook` every ``poll_interval`` seconds; a listing
    error ends the wait with that error.

    Yields one event: ``{"status": "success", "reason": "moved_on" | "grace_over",
    "files": <event files of the interval>, "interval_start", "interval_end"}``.

    :param interval_start: the interval's start, ISO 8601.
    :param interval_end: its end, excluded, ISO 8601.
    :param deadline: when to stop waiting, ISO 8601 (aware).
    :param landing_uri: the landing zone (a folder or ``s3://bucket/prefix``).
    :param aws_conn_id: the AWS connection of an S3 zone.
    :param poll_interval: seconds between listings.
    """

    def __init__(self, interval_start: str, interval_end: str, deadline: str, landing_uri: str,
                 aws_conn_id: str | None = None, poll_interval: float = 30) -> None:
        super().__init__()
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.deadline = deadline
        self.landing_uri = landing_uri
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "triggers.landing_arrival.LandingArrivalTrigger",
            {"interval_start": self.interval_start, "interval_end": self.interval_end,
             "deadline": self.deadline, "landing_uri": self.landing_uri,
             "aws_conn_id": self.aws_conn_id, "poll_interval": self.poll_interval},
        )

    @cached_property
    def hook(self) -> LandingZoneHook:
        return LandingZoneHook(landing_uri=self.landing_uri, aws_conn_id=self.aws_conn_id)

    def _event(self, reason: str, files: int) -> TriggerEvent:
        return TriggerEvent({"status": "success", "reason": reason, "files": files,
                             "interval_start": self.interval_start,
                             "interval_end": self.interval_end})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.deadline)
        while True:
            state = await asyncio.to_thread(self.hook.arrivals, self.interval_start,
                                            self.interval_end)
            if state["moved_on"]:
                yield self._event("moved_on", state["files"])
                return
            left = (deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                yield self._event("grace_over", state["files"])
                return
            self.log.info("%s file(s) of [%s, %s) so far; the collector has not moved on; "
                          "next look in %ss (grace until %s).", state["files"],
                          self.interval_start, self.interval_end,
                          min(self.poll_interval, left), self.deadline)
            await asyncio.sleep(min(self.poll_interval, left))
