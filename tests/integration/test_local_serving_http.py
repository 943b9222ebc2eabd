"""The local serving path over real HTTP on 127.0.0.1: model server, /predict adapter, skiff serve.

The adversarial probes (malformed requests, timeouts, floods, tokens) are in
``test_serving_adversarial.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from serving_models import POPULAR, SKUS, intent_bundle, rec_bundle, retag
from skiff.config import ServingConfig
from skiff.serve import EndpointStore
from skiff_api.local_stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("bundles")
    rec = rec_bundle(root / "rec", "RecFlow/1", seed=1)
    return SimpleNamespace(root=root, rec=rec, rec2=retag(rec, root / "rec2", "RecFlow/2"),
                           intent=intent_bundle(root / "intent", "IntentFlow/1"))


@pytest.fixture
def stack(bundles: SimpleNamespace, tmp_path: Path) -> LocalStack:
    # the swaps below load from the bundles' folder: one of the control plane's model roots
    stack = LocalStack.build(ServingConfig(max_batch=16, model_roots=(bundles.root,)),
                             bundles={"skiff-rec": bundles.rec, "skiff-intent": bundles.intent},
                             store=EndpointStore(tmp_path / "serving"), port=0, api_port=0,
                             control_port=0)
    yield stack.start()
    stack.close()


def get(url: str, data: bytes | None = None, method: str | None = None,
        headers: dict[str, str] | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        assert error.headers["Content-Type"] == "application/json"
        return error.code, json.loads(error.read())


def runtime_client(url: str):  # noqa: ANN201
    import boto3

    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def test_container_contract_over_http(stack: LocalStack) -> None:
    models = stack.urls["models"]
    assert get(f"{models}/ping") == (200, {})
    body = json.dumps({"sessions": [["sku01", "sku02"]], "k": 3}).encode()
    status, answer = get(f"{models}/invocations", body, headers={"Content-Type": "application/json"})
    assert status == 200 and answer["model"] == "rec" and len(answer["predictions"][0]["items"]) == 3
    status, answer = get(f"{models}/invocations", b"{", headers={"Content-Type": "application/json"})
    assert status == 400 and answer["error"] == "bad_request"
    status, answer = get(f"{stack.urls['control']}/endpoints", token=stack.token)
    assert {e["endpoint_name"] for e in answer["endpoints"]} == {"skiff-rec", "skiff-intent"}
    assert {e["kind"] for e in answer["endpoints"]} == {"rec", "intent"}
    assert get(f"{models}/endpoints")[0] == 404  # the control plane's, not here
    assert get(f"{models}/nowhere")[0] == 404
    assert get(f"{models}/ping", b"{}", method="POST")[0] == 405


def test_boto3_sagemaker_runtime_client_talks_to_the_local_server(stack: LocalStack) -> None:
    from botocore.exceptions import ClientError

    client = runtime_client(stack.urls["models"])
    answer = client.invoke_endpoint(EndpointName="skiff-intent", ContentType="application/json",
                                    Body=json.dumps({"sessions": [["view", "add"]]}))
    assert json.loads(answer["Body"].read())["model_version"] == "IntentFlow/1"
    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint(EndpointName="skiff-rec", ContentType="application/json",
                               Body=json.dumps({"sessions": [["sku01"]], "k": 0}))
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert raised.value.response["OriginalStatusCode"] == 400
    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint(EndpointName="skiff-nothing", Body=b"{}")
    assert raised.value.response["Error"]["Code"] == "ValidationError"


def test_predict_through_the_handler(stack: LocalStack) -> None:
    api = stack.urls["api"]
    status, answer = get(f"{api}/predict?session=view,detail,add")
    assert status == 200 and answer["model"] == "intent" and 0 < answer["probability"] < 1
    assert answer["model_version"] == "IntentFlow/1"
    status, answer = get(f"{api}/predict?session=sku01,sku02&k=4")
    assert status == 200 and answer["model"] == "rec" and len(answer["items"]) == 4
    assert all(item["sku"] in SKUS for item in answer["items"])
    assert answer["ignored"] == [] and "fallback" not in answer
    status, answer = get(f"{api}/predict?x=start,view,detail,end")  # the seeds' form
    assert status == 200 and answer["model"] == "intent" and answer["session_length"] == 2
    status, answer = get(f"{api}/predict?session=sku01,nope,sku02,nope&k=4")
    assert status == 200 and len(answer["items"]) == 4 and answer["ignored"] == ["nope"]
    status, answer = get(f"{api}/predict?session=nope&k=2")
    assert status == 200 and answer["fallback"] == "popular" and answer["ignored"] == ["nope"]
    assert [item["sku"] for item in answer["items"]] == POPULAR["items"][:2]
    for query, message in (("", "Missing 'session'"), ("session=", "empty"),
                           ("session=view,pay&model=intent", "Unknown event types"),
                           ("session=view,start", "marker 'start'"),
                           ("session=view&x=view", "not both"),
                           ("session=a%3Bb", "characters other than"),
                           ("session=" + ",".join(["view"] * 201), "at most 200"),
                           ("session=" + "a" * 9_000, "too long")):
        status, answer = get(f"{api}/predict?{query}")
        assert status == 400 and message in answer["message"], (query[:40], answer)
    status, answer = get(f"{api}/predict?session=" + "a" * 20_000)  # past the 16 KiB head cap
    assert status == 431 and answer["error"] == "headers_too_large"
    assert get(f"{api}/other")[0] == 404
    assert get(f"{api}/predict?session=view", b"x", method="POST")[0] == 405


def test_adapter_through_boto3_to_the_model_server(stack: LocalStack) -> None:
    """The two-hop path: adapter -> handler -> boto3 sagemaker-runtime -> model server."""
    from skiff.serve import serving_server
    from skiff.web import ServerGroup
    from skiff_api import handler, local_adapter

    config = ServingConfig()
    settings = handler.Settings({"SKIFF_RUNTIME_URL": stack.urls["models"]})
    app = local_adapter.create_app(settings=settings, config=config)
    group = ServerGroup([("api", serving_server(app, config), "127.0.0.1", 0)]).start()
    try:
        url = "http://127.0.0.1:{}/predict".format(group.address("api")[1])
        status, answer = get(f"{url}?session=sku03")
        assert status == 200 and answer["model_version"] == "RecFlow/1"
        status, answer = get(f"{url}?session=sku03,zzz")
        assert status == 200 and answer["ignored"] == ["zzz"] and len(answer["items"]) == 5
        status, answer = get(f"{url}?x=zzz,yyy")
        assert status == 200 and answer["fallback"] == "popular"
        assert (answer["ignored"], [i["sku"] for i in answer["items"]]) == (["zzz", "yyy"],
                                                                           POPULAR["items"])
        status, answer = get(f"{url}?session=view,nope&model=intent")
        assert status == 400 and "Unknown event types 'nope'" in answer["message"]
    finally:
        group.stop()


def test_deploy_over_http_swaps_atomically_under_load(stack: LocalStack,
                                                      bundles: SimpleNamespace) -> None:
    control, api = stack.urls["control"], stack.urls["api"]
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            status, answer = get(f"{api}/predict?session=sku01,sku02")
            seen.append((status, answer.get("model_version", answer.get("message"))))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for bundle, version in ((bundles.rec2, "RecFlow/2"), (bundles.rec, "RecFlow/1"),
                                (bundles.rec2, "RecFlow/2")):
            status, answer = get(f"{control}/endpoints/skiff-rec/model", json.dumps(
                {"model_dir": str(bundle), "config_name": version}).encode(), method="POST",
                token=stack.token)
            assert status == 200 and answer["model_version"] == version
        status, answer = get(f"{control}/endpoints/skiff-rec/model", json.dumps(
            {"model_dir": str(bundles.root / "missing")}).encode(), method="POST",
            token=stack.token)
        assert status == 422 and "not a model bundle" in answer["message"]
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert seen and all(status == 200 for status, _ in seen), {s for s in seen if s[0] != 200}
    assert {version for _, version in seen} <= {"RecFlow/1", "RecFlow/2"}
    assert get(f"{api}/predict?session=sku01")[1]["model_version"] == "RecFlow/2"


def test_skiff_serve_command(bundles: SimpleNamespace, tmp_path: Path) -> None:
    env = {**os.environ, "SKIFF_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skiff.cli", "serve", "--port", "0", "--api-port", "0",
         "--control-port", "0", "--model", f"skiff-intent={bundles.intent}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("predict API"):
                break
        out = "".join(lines)
        api = re.search(r"predict API\s+(http://\S+?)/predict", out)
        assert api, out
        status, answer = get(f"{api.group(1)}/predict?session=view,add")
        assert status == 200 and answer["model_version"] == "IntentFlow/1"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


@pytest.mark.parametrize(("raw", "status"), [
    pytest.param(b"GET /ping HTTP/1.0\r\n\r\n", b"200", id="http-1.0"),
    pytest.param(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"200",
                 id="connection-close"),
    pytest.param(b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n", b"400", id="bad-header"),
    pytest.param(b"GET /ping HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", b"200",
                 id="many-small-headers"),
    pytest.param(b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Expect: 100-continue\r\nContent-Length: 28\r\n\r\n", b"100",
                 id="expect-100-continue"),
])
def test_http_protocol_edges(stack: LocalStack, raw: bytes, status: bytes) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", stack.port("models")), timeout=5) as sock:
        sock.sendall(raw)
        answer = sock.recv(65536)
    assert answer.split(b" ")[1] == status, answer[:200]
