"""Hook giving Airflow tasks and triggers the landing zone and the interval's landing ingest."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

from hooks.warehouse import SkiffWarehouseHook

if TYPE_CHECKING:
    from skiff.data.ingest import IngestSummary
    from skiff.data.landing import LandingZone

__all__ = ["LandingZoneHook"]


class LandingZoneHook(BaseHook):
    """The landing zone the collector (or Firehose) writes, and the ingest that reads it.

    A local folder is read directly; an ``s3://bucket/prefix`` zone through the Amazon
    provider's ``S3Hook`` client, so credentials stay in the Airflow connection
    ``aws_conn_id``. The warehouse comes from :class:`~hooks.warehouse.SkiffWarehouseHook`.
    All I/O of the ingest task and of its grace-period trigger goes through this hook.

    :param landing_uri: the zone; default ``SKIFF_LANDING_URI``.
    :param aws_conn_id: the AWS connection of an S3 zone; default ``SKIFF_AWS_CONN_ID``
        (``aws_default``).
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    hook_name = "Skiff landing zone"

    def __init__(self, landing_uri: str | None = None, aws_conn_id: str | None = None) -> None:
        super().__init__()
        from skiff.config import CollectConfig, ServingConfig

        self.landing_uri = landing_uri or CollectConfig.from_env().landing_uri
        self.aws_conn_id = aws_conn_id or ServingConfig.from_env().aws_conn_id

    @cached_property
    def landing(self) -> LandingZone:
        """The zone: listing and reading its complete files."""
        from skiff.data.landing import LandingZone

        if self.landing_uri.startswith("s3://"):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
            return LandingZone.from_uri(self.landing_uri, client=client)
        return LandingZone.from_uri(self.landing_uri)

    @cached_property
    def warehouse_hook(self) -> SkiffWarehouseHook:
        return SkiffWarehouseHook()

    def arrivals(self, start: datetime | str, end: datetime | str) -> dict[str, Any]:
        """The interval's event files so far, and whether the collector has moved on.

        :param start: the interval's start.
        :param end: its end, excluded.
        :return: ``{"files": int, "moved_on": bool}`` (see
            :func:`skiff.data.ingest.arrival_state`).
        """
        from skiff.data.ingest import arrival_state

        return arrival_state(self.landing, start, end)

    def ingest(self, start: datetime | str, end: datetime | str) -> IngestSummary:
        """Append the files that arrived in ``[start, end)``, all or nothing, once each.

        :raises skiff.exceptions.DataContractError: a file breaks its contract (named).
        """
        from skiff.data.ingest import ingest_arrivals

        return ingest_arrivals(self.warehouse_hook.warehouse, self.landing, start, end)
