"""The proxy-event shaping both Lambdas share: requests, answers, errors, the container's client."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from skiff_api import collect, handler
from skiff_api.gateway import (
    ApiError,
    Container,
    answer,
    json_response,
    positive_int,
    read_request,
)

LOG = logging.getLogger("test.gateway")


@pytest.mark.parametrize(("event", "query"), [
    pytest.param({"rawQueryString": "a=1&a=2&b="}, "a=1&a=2&b=", id="v2-raw"),
    pytest.param({"multiValueQueryStringParameters": {"a": ["1", "2"], "b": [""]},
                  "queryStringParameters": {"a": "2", "b": ""}}, "a=1&a=2&b=", id="v1-multi"),
    pytest.param({"queryStringParameters": {"s": "x,y z"}}, "s=x%2Cy+z", id="v1-single-only"),
    pytest.param({}, "", id="none"),
])
def test_the_query_of_either_payload(event: dict[str, Any], query: str) -> None:
    assert read_request(event, "/x").query == query


def test_method_path_headers_and_body() -> None:
    v2 = read_request({"rawPath": "/prod/collect", "headers": {"Content-Type": "text/plain"},
                       "requestContext": {"http": {"method": "post"}}, "body": "hi"}, "/x")
    assert (v2.method, v2.path, v2.headers, v2.body()) == ("POST", "/prod/collect",
                                                            {"content-type": "text/plain"}, b"hi")
    v1 = read_request({"httpMethod": "GET", "path": "/predict", "isBase64Encoded": True,
                       "body": base64.b64encode(b"\x00\xff").decode()}, "/x")
    assert (v1.method, v1.path, v1.body()) == ("GET", "/predict", b"\x00\xff")
    assert read_request({}, "/default").path == "/default"


def test_bad_base64_is_an_error_only_when_the_body_is_read() -> None:
    request = read_request({"body": "!!", "isBase64Encoded": True}, "/x")
    with pytest.raises(ApiError) as caught:
        request.body()
    assert (caught.value.status, caught.value.error) == (400, "bad_request")


def test_answers_errors_and_bugs() -> None:
    assert json_response(200, {"a": 1}) == {
        "statusCode": 200, "body": '{"a": 1}',
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"}}

    class Context:
        aws_request_id = "req-1"

    def route(event: dict[str, Any]) -> dict[str, Any]:
        if event.get("bug"):
            raise KeyError("secret detail")
        raise ApiError(405, "method_not_allowed", "no")

    refused = answer({}, Context(), route, log=LOG, name="/x", allow="GET")
    assert refused["headers"]["Allow"] == "GET"
    assert json.loads(refused["body"]) == {"error": "method_not_allowed", "message": "no",
                                           "request_id": "req-1"}
    bug = answer({"bug": True}, None, route, log=LOG, name="/x", allow="GET")
    assert bug["statusCode"] == 500 and "secret" not in bug["body"]
    assert "Allow" not in bug["headers"]
    assert answer("not a dict", None, route, log=LOG, name="/x", allow="GET")["statusCode"] == 400


@pytest.mark.parametrize(("module", "event", "allow"), [
    pytest.param(handler, handler.proxy_event("/predict", "session=view", "POST"), "GET, HEAD",
                 id="predict"),
    pytest.param(collect, {"rawPath": "/collect", "requestContext": {"http": {"method": "PUT"}}},
                 "GET, POST", id="collect"),
])
def test_a_405_names_the_allowed_methods(module: Any, event: dict[str, Any], allow: str) -> None:
    response = module.handle(event, None, client=object())
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == allow


def test_the_container_makes_its_client_once_and_can_be_pointed_elsewhere() -> None:
    made: list[str] = []

    def make(settings: str) -> str:
        made.append(settings)
        return f"client of {settings}"

    container = Container("env", make)
    assert container.client() == container.client() == "client of env" and made == ["env"]
    container.replace(lambda: "fake", "test")
    assert container.client() == "fake" and container.settings == "test"
    container.replace(None)
    assert container.client() == "client of test" and container.settings == "test"


@pytest.mark.parametrize(("raw", "value"), [("7", 7), (None, 3), ("0", 3), ("-1", 3), ("x", 3)])
def test_positive_int(raw: str | None, value: int) -> None:
    assert positive_int(raw, 3) == value
