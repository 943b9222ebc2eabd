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
    with pytest.raises(LocalModelError) as raised:
        client.invoke_endpoint(EndpointName="nope", Body=b'{"sessions": [["add"]]}')
    assert raised.value.response["OriginalStatusCode"] == 404
    server.close()
