"""Smoke-test a fresh deploy: one question to the new model through the ``/predict`` handler."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from hooks.model_server import LocalModelServerHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from skiff.config import ServingConfig

__all__ = ["PredictSmokeTestOperator"]


class PredictSmokeTestOperator(BaseOperator):
    """Ask the freshly deployed model one question through the ``/predict`` Lambda handler.

    Runs :mod:`skiff_api.handler` in the task with the backend's runtime client (boto3's
    ``sagemaker-runtime``, or the local server's), checks a 200 answer from the deployed
    version that ignored none of the session's SKUs (they come from the bundle's own
    vocabulary), and on SageMaker that the endpoint really serves the new endpoint config (a
    failed update leaves it on the old one). Fails otherwise, so the rollback runs.

    :param deployment: the deploy task's XCom (templated).
    :param session: tokens to ask with (a list, or their text joined by commas; templated);
        default: three of the bundle's vocabulary.
    :param config: serving settings; default from env.
    :return: the deployment dict with ``status`` ``InService`` and ``smoke`` (the answer).
    """

    template_fields: Sequence[str] = ("deployment", "session")
    template_fields_renderers = {"deployment": "json"}
    ui_color = "#e8f0fe"

    def __init__(self, *, deployment: Any, session: list[str] | None = None,
                 config: ServingConfig | None = None, **kwargs: Any) -> None:
        # one quick retry for a blip on the way to the endpoint; not the DAG's minutes-long
        # delay, while a model that may be bad is serving and the rollback waits for this task
        kwargs.setdefault("retries", 1)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.deployment = deployment
        self.session = session
        self.config = config

    @cached_property
    def serving_config(self) -> ServingConfig:
        from skiff.config import ServingConfig

        return self.config or ServingConfig.from_env()

    def runtime_client(self, deployment: dict[str, Any]) -> Any:
        """The runtime client of the deployment's backend."""
        if deployment["backend"] == "sagemaker":
            from hooks.sagemaker_endpoint import SageMakerEndpointHook

            hook = SageMakerEndpointHook(aws_conn_id=self.serving_config.aws_conn_id,
                                         region_name=self.serving_config.region)
            serving = hook.describe_endpoint(deployment["endpoint_name"])
            if serving["EndpointConfigName"] != deployment["endpoint_config_name"] or \
                    serving["EndpointStatus"] != "InService":
                raise AirflowException(
                    f"Endpoint {deployment['endpoint_name']} is {serving['EndpointStatus']} on "
                    f"{serving['EndpointConfigName']}, not on {deployment['endpoint_config_name']}"
                    f": the update did not take "
                    f"({serving.get('FailureReason', 'no reason given')}).")
            return hook.runtime
        return LocalModelServerHook(self.serving_config).runtime_client()

    def _session(self, deployment: dict[str, Any]) -> list[str]:
        session = self.session
        if isinstance(session, str):  # templated, e.g. from a run's conf: "a,b,c"
            session = [t for t in session.split(",") if t.strip()]
        if session:
            return list(session)
        if deployment["model"] == "intent":
            return ["view", "detail", "add"]
        from skiff.serve import read_bundle_meta

        return list(read_bundle_meta(deployment["bundle"]["folder"])["vocabulary"][2:5])

    def execute(self, context: Context) -> dict[str, Any]:
        from urllib.parse import urlencode

        from skiff_api import handler

        deployment = dict(self.deployment)
        client = self.runtime_client(deployment)
        settings = handler.Settings({**self.serving_config.lambda_environment()})
        query = urlencode({"session": ",".join(self._session(deployment)),
                           "model": deployment["model"]})
        answer = handler.handle(handler.proxy_event("/predict", query), None, client=client,
                                settings=settings)
        body = answer["body"]
        self.log.info("GET /predict?%s -> %s %s", query, answer["statusCode"], body[:500])
        doc = json.loads(body)
        if answer["statusCode"] != 200:
            raise AirflowException(f"Smoke test of {deployment['endpoint_name']} failed: "
                                   f"{answer['statusCode']} {doc.get('message')}")
        if doc.get("model_version") != deployment["model_version"]:
            raise AirflowException(f"Endpoint {deployment['endpoint_name']} answered with model "
                                   f"{doc.get('model_version')!r}, not the deployed "
                                   f"{deployment['model_version']!r}.")
        if doc.get("ignored") or doc.get("fallback"):  # /predict forgives them; a smoke test not
            raise AirflowException(f"Endpoint {deployment['endpoint_name']} ignored the smoke "
                                   f"session's tokens {doc.get('ignored')} as unknown SKUs: it "
                                   f"does not serve the vocabulary of "
                                   f"{deployment['model_version']!r}.")
        return {**deployment, "status": "InService", "smoke": doc}
