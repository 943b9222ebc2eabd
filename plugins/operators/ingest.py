"""Append one data interval of the embedded replay source to the raw log."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from hooks.warehouse import SkiffWarehouseHook

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ReplayIngestOperator"]


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
