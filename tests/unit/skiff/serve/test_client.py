"""The in-process sagemaker-runtime client answers and fails as boto3's does."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from skiff.serve import LocalModelError, LocalRuntimeClient, ModelServer


def test_invoke_endpoint_answers_and_raises_like_boto3(bundles: SimpleNamespace) -> None:
    server = ModelServer(max_batch=1)
    server.deploy("skiff-intent", bundles.intent, "cfg-2")
    client = LocalRuntimeClient(server)
    answer = client.invoke_endpoint(EndpointName="skiff-intent", Body='{"sessions": [["add"]]}')
    assert json.loads(answer["Body"].read())["model"] == "intent"
    assert answer["ContentType"] == "application/json"
    with pytest.raises(LocalModelError) as raised:
        client.invoke_endpoint(EndpointName="skiff-intent", Body='{"sessions": [["zzz"]]}')
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert raised.value.response["OriginalStatusCode"] == 400
    with pytest.raises(LocalModelError) as raised:  # the runtime's answer, not the model's
        client.invoke_endpoint(EndpointName="nope", Body=b'{"sessions": [["add"]]}')
    assert raised.value.response["Error"] == {"Code": "ValidationError",
                                              "Message": "Endpoint nope not found."}
    assert "OriginalStatusCode" not in raised.value.response
    server.close()


def test_predict_on_a_server_without_the_endpoint_is_503_not_the_callers_fault() -> None:
    """``skiff serve`` before any deploy: /predict's handler answers 503 (as behind the real
    runtime client), not a 400 blaming the request."""
    from skiff_api.handler import ApiError, Settings, predict

    server = ModelServer(max_batch=1)
    try:
        with pytest.raises(ApiError) as raised:
            predict("intent", ["view", "add"], 10, Settings({}), LocalRuntimeClient(server))
    finally:
        server.close()
    assert raised.value.status == 503, vars(raised.value)
    assert "skiff-intent" in str(vars(raised.value))
