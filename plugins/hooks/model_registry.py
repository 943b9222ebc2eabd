"""Hook giving Airflow tasks the champion registry (a local folder, or S3 via ``aws_default``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow.sdk.bases.hook import BaseHook

if TYPE_CHECKING:
    from skiff.config import ServingConfig
    from skiff.serve import ChampionRecord, ModelRegistry

__all__ = ["ModelRegistryHook"]


class ModelRegistryHook(BaseHook):
    """Read and write champions in the registry ``ServingConfig.registry`` names.

    A local folder needs no connection; an ``s3://`` registry uses the AWS connection
    ``aws_conn_id`` through the Amazon provider's ``S3Hook``, so credentials (and a test's
    ``endpoint_url``) stay in Airflow.

    :param config: serving settings; default :meth:`ServingConfig.from_env`.
    :param aws_conn_id: AWS connection; default the config's (``aws_default``).
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    hook_name = "Skiff model registry"

    def __init__(self, config: ServingConfig | None = None, aws_conn_id: str | None = None) -> None:
        super().__init__()
        from skiff.config import ServingConfig

        self.config = config or ServingConfig.from_env()
        self.aws_conn_id = aws_conn_id or self.config.aws_conn_id

    @cached_property
    def registry(self) -> ModelRegistry:
        from skiff.serve import ModelRegistry, open_storage

        uri = self.config.registry
        client = None
        if uri.startswith("s3://"):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return ModelRegistry(open_storage(uri, client))

    def champion(self, model: str) -> ChampionRecord | None:
        """The champion of ``model`` (``intent`` or ``rec``), None before the first deploy."""
        return self.registry.champion(model)

    def record_decision(self, model: str, decision: dict) -> dict:
        """Keep a gate decision; see :meth:`skiff.serve.registry.ModelRegistry.record_decision`."""
        written = self.registry.record_decision(model, decision)
        self.log.info("Recorded the %s gate decision on %s (promote=%s) in %s.", model,
                      written["pathspec"], written["promote"], self.registry.storage.uri)
        return written

    def promote(self, record: ChampionRecord, expected_previous: str | None | bool = False
                ) -> ChampionRecord:
        """Record a new champion; see :meth:`skiff.serve.registry.ModelRegistry.promote`."""
        written = self.registry.promote(record, expected_previous=expected_previous)
        self.log.info("%s champion is now %s (was %s), in %s.", record.model, written.pathspec,
                      written.previous, self.registry.storage.uri)
        return written
