"""SageMaker endpoint helpers on top of the Amazon provider's ``SageMakerHook``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

__all__ = ["SageMakerEndpointHook"]


class SageMakerEndpointHook(SageMakerHook):
    """What Skiff's deploy adds to the provider's hook: the serving config, a rollback, invoke.

    Everything else (create model / endpoint config / endpoint, waits, the tarball upload)
    is the provider's own ``SageMakerHook``, used as it is.

    :param aws_conn_id: AWS connection (its extra may carry ``endpoint_url``, e.g. moto).
    :param region_name: AWS region.
    """

    def current_config(self, endpoint_name: str) -> str | None:
        """The endpoint config an endpoint serves, None when the endpoint does not exist."""
        try:
            return self.describe_endpoint(endpoint_name)["EndpointConfigName"]
        except Exception as exc:  # botocore's ClientError: only "no such endpoint" is expected
            error = (getattr(exc, "response", None) or {}).get("Error", {})
            if error.get("Code") in ("ValidationException", "ValidationError") and \
                    "not find endpoint" in error.get("Message", ""):
                return None
            raise

    def restore(self, endpoint_name: str, config_name: str, *, check_interval: int = 30,
                max_ingestion_time: int | None = None) -> dict[str, Any]:
        """Point an endpoint back at ``config_name`` (no-op when it serves it already) and wait.

        :return: ``{"endpoint_name", "endpoint_config_name", "changed", "status"}``.
        :raises RuntimeError: after the update the endpoint still serves another config.
        """
        before = self.current_config(endpoint_name)
        if before == config_name:
            self.log.info("Endpoint %s serves %s already: nothing to roll back.", endpoint_name,
                          config_name)
            status = self.describe_endpoint(endpoint_name)["EndpointStatus"]
            return {"endpoint_name": endpoint_name, "endpoint_config_name": config_name,
                    "changed": False, "status": status}
        self.log.info("Rolling endpoint %s back from %s to %s.", endpoint_name, before, config_name)
        self.update_endpoint({"EndpointName": endpoint_name, "EndpointConfigName": config_name},
                             wait_for_completion=True, check_interval=check_interval,
                             max_ingestion_time=max_ingestion_time)
        after = self.describe_endpoint(endpoint_name)
        if after["EndpointConfigName"] != config_name:
            raise RuntimeError(f"Endpoint {endpoint_name} serves {after['EndpointConfigName']} "
                               f"after the rollback to {config_name} ({after['EndpointStatus']}: "
                               f"{after.get('FailureReason', '')}).")
        return {"endpoint_name": endpoint_name, "endpoint_config_name": config_name,
                "changed": True, "status": after["EndpointStatus"]}

    @cached_property
    def runtime(self) -> Any:
        """A ``sagemaker-runtime`` client on the same connection."""
        return AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                           client_type="sagemaker-runtime").conn
