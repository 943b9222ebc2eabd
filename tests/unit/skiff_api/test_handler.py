"""The /predict Lambda handler: validation of every bad input, answers, endpoint errors.

The runtime client is replaced through the handler's factory (no boto3, no network); the
retry budget is checked against the SAM template's function timeout.
"""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from skiff_api import handler

SKU = "a" * 64


class FakeRuntime:
    """A ``sagemaker-runtime`` stand-in: records calls, answers what the test set."""

    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = answer
        self.error = error

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        body = json.loads(kwargs["Body"])
        answer = self.answer
        if answer is None:
            if kwargs["EndpointName"].endswith("-intent"):
                answer = {"model": "intent", "model_version": "IntentFlow/3",
                          "predictions": [{"probability": 0.25}]}
            else:
                k = body.get("k", 3)
                answer = {"model": "rec", "model_version": "RecFlow/9", "predictions": [
                    {"items": [f"s{i}" for i in range(k)], "scores": [0.5 / (i + 1) for i in range(k)]}]}
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return {"Body": io.BytesIO(raw), "ContentType": "application/json"}


class ClientError(Exception):
    """Shaped like botocore's ClientError (only ``response`` matters to the handler)."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(str(response))
        self.response = response


def model_error(status: int, message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ModelError", "Message": "..."},
                        "OriginalStatusCode": status, "OriginalMessage": message})


@pytest.fixture
def runtime() -> FakeRuntime:
    fake = FakeRuntime()
    handler.set_client_factory(lambda: fake, handler.Settings({"SKIFF_PREDICT_MAX_TOKENS": "20",
                                                               "SKIFF_PREDICT_TOP_K": "10"}))
    yield fake
    handler.set_client_factory(None, handler.Settings())


def call(query: str | None = None, path: str = "/predict", method: str = "GET",
         event: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    event = event if event is not None else handler.proxy_event(path, query or "", method)
    answer = handler.lambda_handler(event, None)
    assert answer["headers"]["Content-Type"] == "application/json"
    assert "Traceback" not in answer["body"]
    return answer["statusCode"], json.loads(answer["body"])


def test_event_tokens_match_the_training_library() -> None:
    from skiff.train.features import EVENT_TOKENS

    assert handler.EVENT_TOKENS == frozenset(EVENT_TOKENS)


def test_intent_prediction(runtime: FakeRuntime) -> None:
    status, body = call("session=view,detail,add")
    assert status == 200
    assert body == {"model": "intent", "model_version": "IntentFlow/3",
                    "endpoint": "skiff-intent", "session_length": 3, "probability": 0.25}
    (sent,) = runtime.calls
    assert sent["EndpointName"] == "skiff-intent" and sent["ContentType"] == "application/json"
    assert json.loads(sent["Body"]) == {"sessions": [["view", "detail", "add"]]}


def test_recommendation_with_k(runtime: FakeRuntime) -> None:
    status, body = call(f"session={SKU},{SKU[:-1]}b&k=3")
    assert status == 200 and body["model"] == "rec" and body["model_version"] == "RecFlow/9"
    assert body["items"] == [{"sku": "s0", "score": 0.5}, {"sku": "s1", "score": 0.25},
                             {"sku": "s2", "score": 0.5 / 3}]
    assert json.loads(runtime.calls[0]["Body"]) == {"sessions": [[SKU, SKU[:-1] + "b"]], "k": 3}
    assert runtime.calls[0]["EndpointName"] == "skiff-rec"


def test_request_and_session_ids_go_to_the_endpoint(runtime: FakeRuntime) -> None:
    """The prediction log's ids travel in SageMaker's custom attributes."""
    session = "c" * 64
    context = SimpleNamespace(aws_request_id="lambda-req-1")
    event = handler.proxy_event("/predict", f"session=view,add&session_id={session}")
    assert handler.lambda_handler(event, context)["statusCode"] == 200
    assert runtime.calls[0]["CustomAttributes"] == f"request_id=lambda-req-1;session_id={session}"
    status, _ = call("session=view")  # no context: a request id is made; no session id
    attributes = runtime.calls[1]["CustomAttributes"]
    assert status == 200 and re.fullmatch(r"request_id=[0-9a-f]{32}", attributes)
    status, body = call("session=view&session_id=not-a-hash")
    assert status == 400 and "64-character" in body["message"] and len(runtime.calls) == 2


def test_the_seeds_form_x_with_markers_asks_the_intent_model(runtime: FakeRuntime) -> None:
    status, body = call("x=start,view,detail,add,end")
    assert status == 200 and body["model"] == "intent" and body["session_length"] == 3
    assert json.loads(runtime.calls[0]["Body"]) == {"sessions": [["view", "detail", "add"]]}
    for query, sent in [("session=start,start,view", ["view"]), ("x=view,end", ["view"]),
                        ("x=start,view&model=intent", ["view"])]:
        assert call(query)[0] == 200, query
        assert json.loads(runtime.calls[-1]["Body"])["sessions"] == [sent]


def test_recommendation_passes_on_what_the_model_ignored(runtime: FakeRuntime) -> None:
    runtime.answer = {"model": "rec", "model_version": "RecFlow/9", "predictions": [
        {"items": ["s1"], "scores": [0.5], "ignored": ["new1", "new2"], "ignored_count": 2}]}
    status, body = call(f"session={SKU},new1,new2")
    assert status == 200
    assert body["items"] == [{"sku": "s1", "score": 0.5}]
    assert (body["ignored"], body["ignored_count"]) == (["new1", "new2"], 2)
    assert "fallback" not in body
    # the SKUs go to the model as given: it knows its vocabulary, the Lambda does not
    assert json.loads(runtime.calls[0]["Body"])["sessions"] == [[SKU, "new1", "new2"]]


def test_recommendation_fallbacks_are_passed_on(runtime: FakeRuntime) -> None:
    runtime.answer = {"model": "rec", "model_version": "RecFlow/9", "predictions": [
        {"items": ["p1", "p2"], "scores": [0.2, 0.1], "ignored": ["new1"], "ignored_count": 1,
         "fallback": "popular"}]}
    status, body = call("session=new1")
    assert status == 200 and body["fallback"] == "popular" and "message" not in body
    assert [i["sku"] for i in body["items"]] == ["p1", "p2"]
    runtime.answer = {"model": "rec", "model_version": "RecFlow/1", "predictions": [
        {"items": [], "scores": [], "ignored": ["new1"], "ignored_count": 1,
         "fallback": "popular", "message": "no popular items in this bundle"}]}
    status, body = call("session=new1")
    assert status == 200 and body["items"] == [] and body["fallback"] == "popular"
    assert body["message"] == "no popular items in this bundle"


def test_an_older_model_without_ignored_still_answers(runtime: FakeRuntime) -> None:
    status, body = call(f"session={SKU}&k=2")
    assert status == 200 and (body["ignored"], body["ignored_count"]) == ([], 0)


def test_model_parameter_overrides_the_guess(runtime: FakeRuntime) -> None:
    assert call("session=view,add&model=rec")[1]["model"] == "rec"
    assert call("session=view&k=2")[0] == 400  # k applies to rec only; view alone is intent
    status, body = call(f"session={SKU}&model=intent")
    assert status == 400 and "Unknown event types" in body["message"]
    assert call("session=start,view&model=rec")[1]["model"] == "rec"  # then 'start' is a SKU


@pytest.mark.parametrize(("query", "message"), [
    pytest.param("", "Missing 'session'", id="missing"),
    pytest.param("model=rec", "Missing 'session'", id="missing-with-other-params"),
    pytest.param("session=", "empty", id="empty"),
    pytest.param("session=%20%20", "empty", id="blank"),
    pytest.param("session=a,,b", "empty token at position 2", id="double-comma"),
    pytest.param("session=view,", "empty token at position 2", id="trailing-comma"),
    pytest.param("session=" + ",".join(["view"] * 21), "21 tokens; at most 20", id="too-many"),
    pytest.param("session=view;drop", "characters other than", id="semicolon"),
    pytest.param("session=%3Cscript%3E", "characters other than", id="html"),
    pytest.param("session=caf%C3%A9", "characters other than", id="non-ascii"),
    pytest.param("session=a%20b", "characters other than", id="inner-space"),
    pytest.param("session=a%00b", "characters other than", id="nul"),
    pytest.param("session=" + "a" * 129, "more than 128", id="token-too-long"),
    pytest.param("session=view,pay&model=intent", "Unknown event types 'pay'", id="unknown-event"),
    pytest.param(f"session={SKU}&model=intent", "Unknown event types", id="sku-to-intent"),
    pytest.param("session=view,start", "Token 2 of 'session' is the marker 'start'",
                 id="start-inside"),
    pytest.param("x=start,end,view,end", "Token 2 of 'x' is the marker 'end'", id="end-inside"),
    pytest.param("x=start,end", "only the markers", id="only-markers"),
    pytest.param("session=view&x=view", "either 'session' or its alias 'x'", id="session-and-x"),
    pytest.param("x=", "'x' is empty", id="x-empty"),
    pytest.param("x=view,,add", "'x' has an empty token at position 2", id="x-double-comma"),
    pytest.param("x=view&x=add", "Give 'x' once", id="x-twice"),
    pytest.param("x=" + ",".join(["view"] * 21), "'x' has 21 tokens", id="x-too-many"),
    pytest.param("x=view%3Cadd", "Token 1 of 'x'", id="x-bad-characters"),
    pytest.param("session=view&model=ranker", "'model' must be one of", id="bad-model"),
    pytest.param(f"session={SKU}&k=0", "'k' must be an integer from 1 to 10", id="k-zero"),
    pytest.param(f"session={SKU}&k=11", "'k' must be an integer from 1 to 10", id="k-too-big"),
    pytest.param(f"session={SKU}&k=two", "'k' must be an integer", id="k-not-a-number"),
    pytest.param(f"session={SKU}&k=-1", "'k' must be an integer", id="k-negative"),
    pytest.param("session=view&session=add", "Give 'session' once", id="session-twice"),
    pytest.param("session=" + "a" * 9000, "too long", id="huge-query"),
    pytest.param("x=" + "a" * 9000, "too long", id="x-huge-query"),
])
def test_bad_input_is_a_400_with_a_message(runtime: FakeRuntime, query: str, message: str) -> None:
    status, body = call(query)
    assert status == 400, body
    assert body["error"] == "bad_request" and message in body["message"]
    assert runtime.calls == []  # never reaches the model


def test_huge_query_in_a_rest_api_event(runtime: FakeRuntime) -> None:
    event = {"httpMethod": "GET", "path": "/predict",
             "queryStringParameters": {"session": "view," * 3000}}
    status, body = call(event=event)
    assert status == 400 and "too long" in body["message"]


def test_rest_api_payload_v1(runtime: FakeRuntime) -> None:
    event = {"httpMethod": "GET", "path": "/predict", "queryStringParameters": {"session": "view"},
             "multiValueQueryStringParameters": {"session": ["view"]}}
    assert call(event=event)[0] == 200
    event["multiValueQueryStringParameters"] = {"session": ["view", "add"]}
    assert call(event=event)[0] == 400


@pytest.mark.parametrize(("event", "status"), [
    pytest.param(handler.proxy_event("/other", "session=view"), 404, id="other-path"),
    pytest.param(handler.proxy_event("/predict", "session=view", "POST"), 405, id="post"),
    pytest.param(handler.proxy_event("/prod/predict", "session=view"), 200, id="stage-prefix"),
    pytest.param(["not", "an", "event"], 400, id="not-a-dict"),
    pytest.param({}, 400, id="empty-event"),
])
def test_routes_and_odd_events(runtime: FakeRuntime, event: Any, status: int) -> None:
    assert call(event=event)[0] == status


@pytest.mark.parametrize(("error", "status", "message"), [
    pytest.param(model_error(400, json.dumps({"error": "bad_request",
                                              "message": "session 0: unknown SKUs 'x'"})),
                 400, "unknown SKUs 'x'", id="model-400-local-server"),
    pytest.param(model_error(500, json.dumps({"error": "bad_request: session 0: unknown SKUs"})),
                 400, "session 0: unknown SKUs", id="model-raised-bad-request-in-sagemaker"),
    pytest.param(model_error(500, "boom"), 502, "failed", id="model-500"),
    pytest.param(ClientError({"Error": {"Code": "ValidationError",
                                        "Message": "Endpoint skiff-rec not found"}}),
                 503, "not available", id="no-endpoint"),
    pytest.param(ClientError({"Error": {"Code": "ThrottlingException"}}), 502,
                 "ThrottlingException", id="throttled"),
    pytest.param(ConnectionError("refused"), 502, "could not be reached", id="unreachable"),
])
def test_endpoint_errors(runtime: FakeRuntime, error: Exception, status: int, message: str) -> None:
    runtime.error = error
    code, body = call(f"session={SKU}")
    assert code == status and message in body["message"]


@pytest.mark.parametrize("answer", [
    pytest.param(b"body", id="moto-fixed-body"),
    pytest.param({"predictions": []}, id="no-version"),
    pytest.param({"model_version": "x", "predictions": [{"items": ["a"], "scores": []}]},
                 id="ragged"),
    pytest.param({"model_version": "x", "predictions": [{"items": ["a"], "scores": ["nan?"]}]},
                 id="not-a-number"),
])
def test_unexpected_model_answers_are_502(runtime: FakeRuntime, answer: Any) -> None:
    runtime.answer = answer
    status, body = call(f"session={SKU}")
    assert status == 502 and "unexpected body" in body["message"]


def test_client_is_made_once_per_container() -> None:
    made = []

    def factory() -> FakeRuntime:
        made.append(FakeRuntime())
        return made[-1]

    handler.set_client_factory(factory)
    try:
        for _ in range(5):
            assert call("session=view")[0] == 200
        assert len(made) == 1 and len(made[0].calls) == 5
    finally:
        handler.set_client_factory(None, handler.Settings())


def test_a_bug_is_a_500_without_a_trace(runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "predict", lambda *a: 1 / 0)
    status, body = call("session=view")
    assert status == 500 and body["message"] == "Internal error."


def test_random_garbage_never_gives_a_500(runtime: FakeRuntime) -> None:
    rng = random.Random(7)
    alphabet = "abc,;=&%20%2C%00<>\"'\\/ é?#" + "view,add,"
    for _ in range(400):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.5:
            query = rng.choice(("session=", "x=", "x=start,", "session=view&x=")) + query
        status, body = call(query)
        assert status in (200, 400), (query, body)


def test_settings_fall_back_on_bad_values() -> None:
    s = handler.Settings({"SKIFF_PREDICT_MAX_TOKENS": "lots", "SKIFF_PREDICT_TOP_K": "-3",
                          "SKIFF_ENDPOINT_NAME": "shop"})
    assert (s.max_tokens, s.top_k, s.endpoint("rec")) == (200, 10, "shop-rec")


def test_settings_fall_back_on_bad_timeouts() -> None:
    s = handler.Settings({"SKIFF_PREDICT_CONNECT_TIMEOUT": "soon", "SKIFF_PREDICT_READ_TIMEOUT": "-1",
                          "SKIFF_PREDICT_ATTEMPTS": "0"})
    assert (s.connect_timeout, s.read_timeout, s.attempts) == (1.0, 2.0, 2)
    s = handler.Settings({"SKIFF_PREDICT_CONNECT_TIMEOUT": "0.5", "SKIFF_PREDICT_READ_TIMEOUT": "4",
                          "SKIFF_PREDICT_ATTEMPTS": "3"})
    # 3 x (0.5 + 4) s, then backoffs of at most 1 + 5 and 2 + 5 s
    assert s.worst_case_s() == pytest.approx(13.5 + 6 + 7)
    assert handler.Settings({"SKIFF_PREDICT_ATTEMPTS": "1"}).worst_case_s() == 3.0


# --------------------------------------------------------------------------- the retry budget

TEMPLATE = Path(handler.__file__).with_name("template.yaml")


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, each kept as ``{"Fn": [tag, value]}``."""


_CfnLoader.add_multi_constructor("!", lambda loader, tag, node: {"Fn": [tag, (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
    loader.construct_mapping(node))]})


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """A template value with ``!Ref <parameter>`` replaced by the parameter's default."""
    if isinstance(value, dict) and value.get("Fn", [None])[0] == "Ref":
        return parameters[value["Fn"][1]]["Default"]
    return value


def test_the_retry_budget_fits_the_function_timeout() -> None:
    """Worst case of the runtime client, with the template's settings, < its timeout - margin."""
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    parameters = template["Parameters"]
    function = template["Resources"]["PredictFunction"]["Properties"]
    timeout = float(_resolve(function.get("Timeout", template["Globals"]["Function"]["Timeout"]),
                             parameters))
    env = {name: str(_resolve(value, parameters))
           for name, value in function["Environment"]["Variables"].items()}
    settings = handler.Settings(env)  # what the deployed handler reads
    margin = max(2.0, 0.1 * timeout)  # the handler's own work, a cold client, a slow log
    assert settings.worst_case_s() <= timeout - margin, (settings.worst_case_s(), timeout)
    # ... and those are the settings the client is made with
    config = handler.make_client(settings).meta.config
    assert (config.connect_timeout, config.read_timeout) == (settings.connect_timeout,
                                                             settings.read_timeout)
    assert config.retries == {"total_max_attempts": settings.attempts, "mode": "standard"}


def test_the_template_throttles_the_api_and_reserves_concurrency() -> None:
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    parameters, resources = template["Parameters"], template["Resources"]
    throttle = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert _resolve(throttle["ThrottlingBurstLimit"], parameters) >= 1
    assert _resolve(throttle["ThrottlingRateLimit"], parameters) >= 1
    reserved = resources["PredictFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved["Fn"][1][1] == {"Fn": ["Ref", "PredictReservedConcurrency"]}
    assert parameters["PredictReservedConcurrency"]["Default"] >= 1
    for function in ("PredictFunction", "CollectFunction"):  # every route is on the throttled API
        for event in resources[function]["Properties"]["Events"].values():
            assert event["Properties"]["ApiId"] == {"Fn": ["Ref", "HttpApi"]}
