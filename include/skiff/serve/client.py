"""An in-process ``sagemaker-runtime`` client: ``invoke_endpoint`` on a local model server.

``skiff serve`` hands it to the ``/predict`` handler, so the local path skips a second HTTP
hop; the deploy's smoke test uses it when no model server runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skiff.serve.server import ModelServer

__all__ = ["LocalRuntimeClient", "LocalModelError"]

_JSON = "application/json"


class LocalModelError(Exception):
    """Raised by :class:`LocalRuntimeClient` like botocore's ``ModelError``, or its
    ``ValidationError`` for an endpoint that does not exist.

    ``response`` has the same keys a ``ClientError`` carries (``Error.Code``, and for a
    model's error ``OriginalStatusCode``, ``OriginalMessage``), so callers handle both alike.
    """

    def __init__(self, status: int, body: bytes, endpoint: str = "") -> None:
        message = body.decode(errors="replace")
        if status == 404:  # no such endpoint: the runtime's ValidationError, not the model's
            message = f"Endpoint {endpoint} not found."
            super().__init__(message)
            self.response = {"Error": {"Code": "ValidationError", "Message": message}}
            return
        super().__init__(f"Received client error ({status}) from the model: {message}")
        self.response = {"Error": {"Code": "ModelError", "Message": message},
                         "OriginalStatusCode": status, "OriginalMessage": message}


class _Body:
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


class LocalRuntimeClient:
    """An in-process ``sagemaker-runtime`` client: ``invoke_endpoint`` on a :class:`ModelServer`.

    The ``/predict`` handler takes any object with boto3's ``invoke_endpoint`` signature;
    ``skiff serve`` gives it this one, so the local path skips a second HTTP hop.

    :param server: the model server.
    """

    def __init__(self, server: ModelServer) -> None:
        self.server = server

    def invoke_endpoint(self, *, EndpointName: str, Body: bytes | str,  # noqa: N803
                        ContentType: str = _JSON, Accept: str = _JSON,
                        CustomAttributes: str | None = None, **_: Any  # noqa: N803
                        ) -> dict[str, Any]:
        body = Body.encode() if isinstance(Body, str) else Body
        status, answer = self.server.invoke(EndpointName, body, ContentType, CustomAttributes)
        if status != 200:
            raise LocalModelError(status, answer, EndpointName)
        return {"Body": _Body(answer), "ContentType": _JSON, "InvokedProductionVariant": "local"}
