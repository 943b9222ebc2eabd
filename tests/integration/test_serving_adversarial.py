"""The serving stack facing a hostile network: probes over real sockets on 127.0.0.1.

``skiff serve``'s three listeners (data plane, control plane, ``/predict`` adapter) with small
limits (head and body timeouts of 0.5 s, 64 KiB bodies), probed with raw sockets for what
no client library sends (half heads, lying or doubled ``Content-Length``, slowloris, floods)
and httpx for well-formed calls. Every refusal must be an HTTP answer with a JSON body (or,
for a connection that sent nothing, a close), never a dropped connection or a hang; after
every probe the server still answers ``/ping``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from serving_models import intent_bundle, rec_bundle, retag
from skiff.config import ServingConfig
from skiff.serve import EndpointStore
from skiff_api.local_stack import LocalStack

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5  # header and body timeouts of the probed stack
# The model timeout is 10 s, not 2: on a loaded CI machine, a 2 s budget was once
# spent before a bad body's parse error came back (a 503, not the 400 probed here). The
# stuck-model 503 has its own test (tests/unit/skiff/serve/test_server.py).
LIMITS = {"header_timeout_s": TIMEOUT_S, "body_timeout_s": TIMEOUT_S, "keep_alive_s": 5.0,
          "max_body_bytes": 64 * 1024, "predict_timeout_s": 10.0, "max_batch": 8}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two bundles under ``root``, a folder the probed stack may load models from
    (``SKIFF_SERVE_MODEL_ROOTS``), and ``outside``: a bundle in a folder it may not."""
    root = tmp_path_factory.mktemp("adversarial-bundles")
    rec = rec_bundle(root / "rec", "RecFlow/1")
    outside = retag(rec, tmp_path_factory.mktemp("elsewhere") / "rec", "Planted/1")
    return SimpleNamespace(root=root, rec=rec, outside=outside,
                           intent=intent_bundle(root / "intent", "IntentFlow/1"))


def _stack(bundles: SimpleNamespace, root: Path, **limits: object) -> LocalStack:
    config = ServingConfig(token="t" * 32, model_roots=(bundles.root,),  # type: ignore[arg-type]
                           **{**LIMITS, **limits})
    return LocalStack.build(config, bundles={"skiff-rec": bundles.rec,
                                             "skiff-intent": bundles.intent},
                            store=EndpointStore(root), port=0, api_port=0,
                            control_port=0).start()


@pytest.fixture(scope="module")
def stack(bundles: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[LocalStack]:
    running = _stack(bundles, tmp_path_factory.mktemp("adversarial-store"))
    yield running
    # after every probe of the module: still healthy, on every listener
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{running.urls['models']}/ping").status_code == 200
        assert client.get(f"{running.urls['api']}/predict?session=view").status_code == 200
        assert client.get(f"{running.urls['control']}/endpoints", headers=_auth(running)
                          ).status_code == 200
    running.close()


def _auth(stack: LocalStack, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or stack.token}"}


def _raw(port: int, data: bytes, *, pause: float = 0.0, chunk: int = 65536,
         timeout: float = 10.0) -> tuple[bytes, float]:
    """Send ``data`` (in ``chunk``-byte writes, ``pause`` s apart); all the server answers
    until it closes, and the seconds that took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for start in range(0, len(data), chunk):
                sock.sendall(data[start:start + chunk])
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # closed by the server: its answer is still in the receive buffer
        answer = b""
        try:
            while piece := sock.recv(65536):
                answer += piece
        except ConnectionResetError:
            pass
    return answer, time.monotonic() - started


def _parse(answer: bytes) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of the first answer of ``answer`` (one answer only)."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    assert sep, f"no HTTP answer: {answer[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    assert headers.get("content-type") == "application/json", (status, headers)
    return status, headers, json.loads(body[:int(headers["content-length"])])


def _post(path: str, body: bytes, *extra: bytes, length: bytes | None = None) -> bytes:
    length = str(len(body)).encode() if length is None else length
    head = [b"POST %s HTTP/1.1" % path.encode(), b"Host: x", b"Content-Type: application/json",
            b"Content-Length: " + length, *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


SESSION = json.dumps({"sessions": [["sku01", "sku02"]]}).encode()


# ------------------------------------------------------------------------- slow senders

def test_half_sent_head_gets_408_after_the_header_timeout(stack: LocalStack) -> None:
    for port in (stack.port("models"), stack.port("api"), stack.port("control")):
        answer, took = _raw(port, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Half: ")
        status, headers, doc = _parse(answer)
        assert (status, doc["error"], headers["connection"]) == (408, "request_timeout", "close")
        assert TIMEOUT_S * 0.9 <= took < TIMEOUT_S + 3


def test_slowloris_is_cut_off_however_steadily_it_trickles(stack: LocalStack) -> None:
    """A byte every 20 ms never lets the head complete: 408 at the header timeout."""
    import select

    head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.port("models")), timeout=5) as sock:
        for byte in head:
            if select.select([sock], [], [], 0.02)[0]:
                break  # the server answered
            sock.sendall(bytes([byte]))
        took = time.monotonic() - started
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    assert _parse(answer)[0] == 408 and TIMEOUT_S * 0.9 <= took < TIMEOUT_S + 3


def test_a_silent_connection_is_closed(stack: LocalStack) -> None:
    answer, took = _raw(stack.port("models"), b"")
    assert answer == b"" and took < TIMEOUT_S + 3


def test_body_shorter_than_its_content_length_gets_408(stack: LocalStack) -> None:
    answer, took = _raw(stack.port("models"), _post("/invocations", SESSION[:10],
                                                    length=str(len(SESSION)).encode()))
    status, _, doc = _parse(answer)
    assert (status, doc["error"]) == (408, "request_timeout") and took < TIMEOUT_S + 3
    # the /predict adapter (which reads no body of its own accord) closes too
    answer, took = _raw(stack.port("api"), b"GET /predict?session=view HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Length: 100\r\n\r\nabc")
    assert took < TIMEOUT_S + 3 and answer.startswith(b"HTTP/1.1 "), answer[:100]


# ------------------------------------------------------------------------- bad framing

@pytest.mark.parametrize(("length", "status", "error"), [
    pytest.param(b"abc", 400, "bad_request", id="letters"),
    pytest.param(b"1000000000000", 413, "too_large", id="10^12"),
    pytest.param("١٢".encode(), 400, "bad_request", id="arabic-indic-digits"),
    pytest.param("１２".encode(), 400, "bad_request", id="fullwidth-digits"),
    pytest.param(b"-1", 400, "bad_request", id="negative"),
    pytest.param(b"28\r\nContent-Length: 28", 400, "bad_request", id="duplicated"),
    pytest.param(b"28\r\nContent-Length: 5", 400, "bad_request", id="conflicting"),
    pytest.param(b"28\r\nTransfer-Encoding: chunked", 400, "bad_request",
                 id="length-and-chunked"),
])
def test_content_length_is_strict(stack: LocalStack, length: bytes, status: int,
                                  error: str) -> None:
    for port in (stack.port("models"), stack.port("api")):
        answer, _ = _raw(port, _post("/invocations" if port == stack.port("models")
                                     else "/predict", SESSION, length=length))
        got, headers, doc = _parse(answer)
        assert (got, doc["error"]) == (status, error), (port, doc)
        assert headers["connection"] == "close"


def test_oversized_head_431_and_body_413(stack: LocalStack) -> None:
    answer, _ = _raw(stack.port("models"), b"GET /ping HTTP/1.1\r\nX-Junk: " + b"j" * 20_000
                     + b"\r\n\r\n")
    status, _, doc = _parse(answer)
    assert (status, doc["error"]) == (431, "headers_too_large")
    endless, took = _raw(stack.port("api"), b"GET /predict HTTP/1.1\r\nX-Junk: " + b"j" * 1_000_000)
    assert _parse(endless)[0] == 431 and took < 5
    big = b'{"sessions": [["sku01"]], "pad": "' + b"x" * 70_000 + b'"}'
    status, _, doc = _parse(_raw(stack.port("models"), _post("/invocations", big))[0])
    assert (status, doc["error"]) == (413, "too_large")
    assert "SKIFF_SERVE_MAX_BODY_BYTES" in doc["message"]


def test_chunked_bodies_are_read_and_bounded(stack: LocalStack) -> None:
    def chunked(body: bytes) -> bytes:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                          for i in range(0, len(body), 1000))
        return (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")

    status, _, doc = _parse(_raw(stack.port("models"), chunked(SESSION))[0])
    assert status == 200 and doc["model_version"] == "RecFlow/1"
    big = b'{"sessions": [["sku01"]], "pad": "' + b"x" * 70_000 + b'"}'
    status, _, doc = _parse(_raw(stack.port("models"), chunked(big))[0])
    assert (status, doc["error"]) == (413, "too_large")


@pytest.mark.parametrize(("body", "message"), [
    pytest.param(b'{"sessions": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "too deeply",
                 id="nested-10k"),
    pytest.param(b'{"sessions": [["\xff\xfe"]]}', "not valid JSON", id="not-utf8"),
    pytest.param(b"{", "not valid JSON", id="truncated-json"),
])
def test_bad_bodies_get_400_json(stack: LocalStack, body: bytes, message: str) -> None:
    with httpx.Client(base_url=stack.urls["models"], timeout=5) as client:
        answer = client.post("/invocations", content=body,
                             headers={"content-type": "application/json"})
        assert answer.status_code == 400 and message in answer.json()["message"]
        runtime = client.post("/endpoints/skiff-rec/invocations", content=body,
                              headers={"content-type": "application/json"})
        assert runtime.status_code == 424 and runtime.json()["OriginalStatusCode"] == 400
    with httpx.Client(base_url=stack.urls["control"], timeout=5) as client:
        answer = client.post("/endpoints/skiff-rec/model", content=body, headers=_auth(stack))
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request"


def test_wrong_methods_and_routes_get_json(stack: LocalStack) -> None:
    with httpx.Client(timeout=5) as client:
        for url, method, status in (
                (f"{stack.urls['models']}/invocations", "DELETE", 405),
                (f"{stack.urls['models']}/invocations", "GET", 405),
                (f"{stack.urls['models']}/ping", "POST", 405),
                (f"{stack.urls['models']}/endpoints", "GET", 404),  # control plane only
                (f"{stack.urls['models']}/endpoints/skiff-rec/model", "POST", 404),
                (f"{stack.urls['api']}/predict?session=view", "DELETE", 405),
                (f"{stack.urls['api']}/elsewhere", "GET", 404)):
            answer = client.request(method, url)
            assert answer.status_code == status, (method, url, answer.text)
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["error"]
        assert "Allow" in client.delete(f"{stack.urls['models']}/invocations").headers


def test_no_server_path_in_data_plane_answers(stack: LocalStack, bundles: SimpleNamespace
                                               ) -> None:
    with httpx.Client(timeout=5) as client:
        texts = [client.get(f"{stack.urls['models']}/ping").text,
                 client.get(f"{stack.urls['models']}/health").text,
                 client.post(f"{stack.urls['models']}/invocations", content=SESSION).text,
                 client.post(f"{stack.urls['models']}/invocations", content=b"[").text,
                 client.get(f"{stack.urls['api']}/predict?session=view").text]
    for text in texts:
        assert str(bundles.rec.parent) not in text and "/tmp" not in text, text


# ------------------------------------------------------------------------- the control plane

def test_control_plane_wants_the_token(stack: LocalStack, bundles: SimpleNamespace) -> None:
    swap = {"model_dir": str(bundles.rec), "config_name": "evil"}
    with httpx.Client(base_url=stack.urls["control"], timeout=5) as client:
        for headers in ({}, _auth(stack, "wrong-token-of-some-length"),
                        {"Authorization": "Basic x"}, {"Authorization": stack.token},
                        {"Authorization": f"Bearer {stack.token}x"}):
            for answer in (client.get("/endpoints", headers=headers),
                           client.post("/endpoints/skiff-rec/model", json=swap, headers=headers),
                           client.get("/nowhere", headers=headers)):  # no route hint either
                assert answer.status_code == 401, headers
                assert answer.json()["error"] == "unauthorized"
                assert answer.headers["www-authenticate"].startswith("Bearer")
        listing = client.get("/endpoints", headers=_auth(stack)).json()["endpoints"]
    assert {e["endpoint_config_name"] for e in listing} == {"cli"}  # nothing was swapped


def test_a_swap_of_the_wrong_kind_is_refused_and_the_old_model_serves(
        stack: LocalStack, bundles: SimpleNamespace) -> None:
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{stack.urls['control']}/endpoints/skiff-rec/model",
                             json={"model_dir": str(bundles.intent), "config_name": "oops"},
                             headers=_auth(stack))
        assert answer.status_code == 409 and answer.json()["error"] == "kind_mismatch"
        assert "serves rec models" in answer.json()["message"]
        served = client.post(f"{stack.urls['models']}/endpoints/skiff-rec/invocations",
                             content=SESSION, headers={"content-type": "application/json"})
        assert served.status_code == 200 and served.json()["model_version"] == "RecFlow/1"
        # the kind of a new endpoint is its name's
        answer = client.post(f"{stack.urls['control']}/endpoints/other-intent/model",
                             json={"model_dir": str(bundles.rec)}, headers=_auth(stack))
        assert answer.status_code == 409


def _swap(stack: LocalStack, model_dir: str, endpoint: str = "skiff-rec") -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.post(f"{stack.urls['control']}/endpoints/{endpoint}/model",
                           json={"model_dir": model_dir, "config_name": "probe"},
                           headers=_auth(stack))


def _served(stack: LocalStack) -> str:
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{stack.urls['models']}/endpoints/skiff-rec/invocations",
                             content=SESSION, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    return answer.json()["model_version"]


@pytest.mark.parametrize("where", [
    pytest.param(lambda b, tmp: str(b.outside), id="a-bundle-elsewhere"),
    pytest.param(lambda b, tmp: f"{b.root}/../{b.outside.parent.name}/rec", id="dot-dot-escape"),
    pytest.param(lambda b, tmp: str(_link(b.root / f"link-{tmp.name}", b.outside)),
                 id="symlink-in-the-root-to-elsewhere"),
    pytest.param(lambda b, tmp: str(_link(b.root / f"dirlink-{tmp.name}", b.outside.parent)
                                    / "rec"), id="symlinked-folder-on-the-way"),
    pytest.param(lambda b, tmp: "/etc", id="a-system-folder"),
    pytest.param(lambda b, tmp: str(tmp / "does-not-exist"), id="a-missing-folder"),
    pytest.param(lambda b, tmp: "relative/rec", id="relative-to-the-servers-cwd"),
])
def test_a_swap_from_outside_the_model_roots_is_refused_403(
        stack: LocalStack, bundles: SimpleNamespace, tmp_path: Path, where: Any) -> None:
    """Even with the token, a swap loads only from the model roots (after following ``..``
    and symlinks); a folder elsewhere gets the same 403 whether it exists or not, before any
    read of it, and the old model keeps serving."""
    model_dir = where(bundles, tmp_path)
    answer = _swap(stack, model_dir)
    assert answer.status_code == 403, answer.text
    doc = answer.json()
    assert doc["error"] == "forbidden_model_dir" and model_dir in doc["message"]
    assert "SKIFF_SERVE_MODEL_ROOTS" in doc["message"]
    assert str(bundles.root.resolve()) in doc["message"]  # the roots it may load from
    assert _served(stack) == "RecFlow/1"


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target, target_is_directory=True)
    return link


@pytest.mark.parametrize(("model_dir", "status", "error"), [
    pytest.param("bundle\x00/../rec", 400, "bad_request", id="nul-byte"),
    pytest.param("", 400, "bad_request", id="empty"),
])
def test_a_swap_of_no_path_is_a_400(stack: LocalStack, model_dir: str, status: int,
                                    error: str) -> None:
    answer = _swap(stack, model_dir)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert _served(stack) == "RecFlow/1"


def test_a_swap_inside_the_roots_by_any_path_is_checked_on_its_merits(
        stack: LocalStack, bundles: SimpleNamespace) -> None:
    """``..`` that stays inside the roots is no refusal: the bundle is judged as it is (here
    one of the wrong kind: 409), so the check refuses escapes, not spellings."""
    answer = _swap(stack, f"{bundles.rec}/../intent")
    assert answer.status_code == 409 and answer.json()["error"] == "kind_mismatch"
    assert _served(stack) == "RecFlow/1"


def test_the_control_plane_listens_on_loopback_by_default() -> None:
    config = ServingConfig()
    assert (config.host, config.control_host) == ("127.0.0.1", "127.0.0.1")
    assert config.control_port != config.port


# ------------------------------------------------------------------------- floods

def test_idle_keep_alive_flood_over_the_cap_gets_503_json(bundles: SimpleNamespace,
                                                          tmp_path: Path) -> None:
    """SKIFF_SERVE_MAX_CONNECTIONS counts idle keep-alive connections: one more is refused."""
    cap = 6
    flood_stack = _stack(bundles, tmp_path, max_connections=cap)
    port = flood_stack.port("models")
    idle: list[socket.socket] = []
    try:
        for _ in range(cap):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")  # now idle, kept alive
            idle.append(sock)
        answer, _ = _raw(port, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, doc = _parse(answer)
        assert (status, doc["error"], headers["retry-after"]) == (503, "busy", "1")
        assert "SKIFF_SERVE_MAX_CONNECTIONS" in doc["message"]
        idle.pop().close()  # a slot frees up
        deadline = time.monotonic() + 5
        while True:
            answer, _ = _raw(port, b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    finally:
        for sock in idle:
            sock.close()
        flood_stack.close()


def test_many_slow_clients_at_once_leave_the_server_serving(stack: LocalStack) -> None:
    """200 half heads and 200 half bodies at once: each gets its 408, /ping meanwhile 200."""
    import threading

    answers: list[bytes] = []

    def slow(data: bytes) -> None:
        answers.append(_raw(stack.port("models"), data)[0])

    threads = [threading.Thread(target=slow, args=(data,)) for data in
               [b"GET /ping HTTP/1.1\r\nHost: x\r\n"] * 200
               + [_post("/invocations", b"{", length=b"50")] * 200]
    for thread in threads:
        thread.start()
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{stack.urls['models']}/ping").status_code == 200
    for thread in threads:
        thread.join(30)
    assert len(answers) == 400 and all(_parse(a)[0] == 408 for a in answers)
