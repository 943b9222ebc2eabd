"""Create or update the ``/predict`` Lambda (the provider's create operator, plus an update)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.lambda_function import LambdaCreateFunctionOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["LambdaFunctionDeployOperator"]

_REPO = Path(__file__).resolve().parents[2]
_STATEMENT = "skiff-api-gateway"


class LambdaFunctionDeployOperator(LambdaCreateFunctionOperator):
    """Deploy the ``/predict`` handler as a Lambda function: create it, or update code and settings.

    The Amazon provider's ``LambdaCreateFunctionOperator`` only creates; this subclass keeps
    its create path as it is and adds the update: when the function exists, its code is
    replaced only if the zip's SHA-256 differs, and its environment is set. It can also
    grant API Gateway the right to invoke it.

    :param function_name: the function (templated), default ``skiff-predict``.
    :param role: execution role ARN (templated); needs ``sagemaker:InvokeEndpoint``.
    :param zip_path: the deployment zip (templated); default ``build/lambda.zip``, built by
        :func:`skiff_api.package.build` when missing.
    :param environment: the function's variables, e.g. ``ServingConfig.lambda_environment()``.
    :param api_source_arn: an API Gateway ``execute-api`` ARN allowed to invoke it (optional).
    :param timeout: the function's timeout in seconds; the default, like ``template.yaml``'s
        ``PredictTimeout``, exceeds the handler's worst-case endpoint call
        (:meth:`skiff_api.handler.Settings.worst_case_s`, 12 s) with a margin.
    :return: ``{"function_arn", "operation", "code_sha256", "code_changed"}``.
    """

    template_fields: Sequence[str] = (*LambdaCreateFunctionOperator.template_fields, "zip_path")

    def __init__(self, *, function_name: str = "skiff-predict", role: str,
                 zip_path: str | None = None, environment: dict[str, str] | None = None,
                 api_source_arn: str | None = None, timeout: int = 15, **kwargs: Any) -> None:
        config = dict(kwargs.pop("config", None) or {})
        if environment:
            config["environment"] = {"Variables": dict(environment)}
        super().__init__(function_name=function_name, role=role, runtime="python3.12",
                         handler="handler.lambda_handler", code={}, timeout=timeout,
                         config=config, **kwargs)
        self.zip_path = zip_path
        self.api_source_arn = api_source_arn

    def _zip(self) -> bytes:
        path = Path(self.zip_path or _REPO / "build" / "lambda.zip")
        if not path.is_file():
            from skiff_api.package import build

            build(path)
        return path.read_bytes()

    def execute(self, context: Context) -> dict[str, Any]:
        import base64

        data = self._zip()
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        client = self.hook.conn
        try:
            current = client.get_function(FunctionName=self.function_name)["Configuration"]
        except client.exceptions.ResourceNotFoundException:
            current = None
        if current is None:
            self.code = {"ZipFile": data}
            arn = super().execute(context)
            result = {"function_arn": arn, "operation": "create", "code_sha256": sha,
                      "code_changed": True}
        else:
            changed = current.get("CodeSha256") != sha
            if changed:
                self.log.info("Updating the code of %s.", self.function_name)
                client.update_function_code(FunctionName=self.function_name, ZipFile=data,
                                            Publish=True)
                client.get_waiter("function_updated_v2").wait(FunctionName=self.function_name)
            else:
                self.log.info("%s runs this code already.", self.function_name)
            settings = {"Role": self.role, "Handler": self.handler, "Runtime": self.runtime}
            if self.timeout:
                settings["Timeout"] = self.timeout
            if "environment" in self.config:
                settings["Environment"] = self.config["environment"]
            client.update_function_configuration(FunctionName=self.function_name, **settings)
            result = {"function_arn": current["FunctionArn"], "operation": "update",
                      "code_sha256": sha, "code_changed": changed}
        if self.api_source_arn:
            self._allow_api_gateway(client)
        return result

    def _allow_api_gateway(self, client: Any) -> None:
        import json

        try:
            policy = json.loads(client.get_policy(FunctionName=self.function_name)["Policy"])
        except client.exceptions.ResourceNotFoundException:
            policy = {"Statement": []}
        if any(s.get("Sid") == _STATEMENT for s in policy.get("Statement", [])):
            self.log.info("API Gateway may invoke %s already.", self.function_name)
            return
        try:
            client.add_permission(FunctionName=self.function_name, StatementId=_STATEMENT,
                                  Action="lambda:InvokeFunction",
                                  Principal="apigateway.amazonaws.com",
                                  SourceArn=self.api_source_arn)
        except client.exceptions.ResourceConflictException:
            self.log.info("API Gateway may invoke %s already.", self.function_name)
