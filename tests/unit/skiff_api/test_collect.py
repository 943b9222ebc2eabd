"""The /collect Lambda handler: the collector's answers, Firehose batches, retries, the zip.

The Firehose client is replaced through the handler's factory (no boto3, no network); the
handler against moto's Firehose and S3 is in tests/integration/test_collect_moto.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collect_events import browsing_event, search_event, session_of
from skiff_api import collect


class FakeFirehose:
    """A ``firehose`` stand-in: records batches; refuses the records ``refuse`` picks."""

    def __init__(self, refuse: Any = None, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refuse = refuse or (lambda attempt, data: False)
        self.error = error

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]
                         ) -> dict[str, Any]:
        self.calls.append({"stream": DeliveryStreamName, "records": Records})
        if self.error is not None:
            raise self.error
        attempt = len(self.calls)
        answers = [{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
                   if self.refuse(attempt, r["Data"]) else {"RecordId": "r"} for r in Records]
        return {"FailedPutCount": sum("ErrorCode" in a for a in answers),
                "RequestResponses": answers}

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(call["stream"], json.loads(r["Data"])) for call in self.calls
                for r in call["records"]]


@pytest.fixture
def firehose() -> Iterator[FakeFirehose]:
    fake = FakeFirehose()
    collect.set_client_factory(lambda: fake, collect.Settings({}))
    yield fake
    collect.set_client_factory(None, collect.Settings())


def proxy(method: str = "POST", body: Any = None, *, query: str = "", path: str = "/collect",
          content_type: str | None = "application/json", b64: bool = False) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event, as API Gateway sends it (received now)."""
    raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    raw = raw.encode() if isinstance(raw, str) else raw
    return {"version": "2.0", "routeKey": f"{method} {path}", "rawPath": path,
            "rawQueryString": query,
            "headers": {"content-type": content_type} if content_type else {},
            "requestContext": {"http": {"method": method, "path": path},
                               "timeEpoch": int(time.time() * 1000)},
            "body": (base64.b64encode(raw).decode() if b64 else raw.decode()) if raw else None,
            "isBase64Encoded": b64}


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    answer = collect.lambda_handler(event, None)
    assert "Traceback" not in answer["body"]
    return (answer["statusCode"], json.loads(answer["body"]) if answer["body"] else None,
            answer["headers"])


def test_a_batch_goes_to_each_tables_stream_as_landing_lines(firehose: FakeFirehose) -> None:
    request = proxy(body=[browsing_event(0), search_event(1), {"x": 1}, browsing_event(3)])
    status, doc, headers = call(request)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert doc == {"accepted": 3, "rejected": [
        {"index": 2, "reason": "x: not a field of browsing_train (its fields: session_id_hash, "
                               "event_type, product_action, product_sku_hash, "
                               "server_timestamp_epoch_ms, hashed_url)"}]}
    streams = [(s, e["session_id_hash"]) for s, e in firehose.events()]
    assert streams == [("skiff-browsing-train", session_of(0)),
                       ("skiff-browsing-train", session_of(3)),
                       ("skiff-search-train", session_of(1))]
    # one NDJSON line a record: Firehose concatenates them into the landing file
    assert all(r["Data"].endswith(b"\n") and r["Data"].count(b"\n") == 1
               for c in firehose.calls for r in c["records"])
    _, event = firehose.events()[2]
    assert event["arrival_ts_ms"] == request["requestContext"]["timeEpoch"]
    assert event["query_vector"].startswith("[0.25, -0.5, 1e-05, 0.0, ")


def test_ndjson_base64_and_the_pixel(firehose: FakeFirehose) -> None:
    body = "\n".join(json.dumps(browsing_event(i)) for i in range(3))
    status, doc, _ = call(proxy(body=body, content_type="application/x-ndjson", b64=True))
    assert (status, doc) == (200, {"accepted": 3, "rejected": []})
    from urllib.parse import urlencode

    pixel = {k: v for k, v in browsing_event(4).items() if v is not None}
    status, doc, headers = call(proxy("GET", query=urlencode(pixel), content_type=None))
    assert (status, doc, headers["Cache-Control"]) == (204, None, "no-store")
    assert firehose.events()[-1][1]["server_timestamp_epoch_ms"] == pixel[
        "server_timestamp_epoch_ms"]
    status, doc, _ = call(proxy(body=search_event(5), query="table=search_train"))
    assert status == 200 and firehose.calls[-1]["stream"] == "skiff-search-train"


@pytest.mark.parametrize("event, status, error", [
    pytest.param(proxy(body=browsing_event(0, event_type="click")), 400, "invalid_events",
                 id="bad-event"),
    pytest.param(proxy(body="[1,"), 400, "bad_json", id="bad-json"),
    pytest.param(proxy(body=""), 400, "no_events", id="empty"),
    pytest.param(proxy(body="x" * (1024 * 1024 + 1)), 413, "too_large", id="too-large"),
    pytest.param(proxy(body="<e/>", content_type="application/xml"), 415,
                 "unsupported_media_type", id="xml"),
    pytest.param(proxy("PUT", body=browsing_event(0)), 405, "method_not_allowed", id="put"),
    pytest.param(proxy(path="/predict", body=browsing_event(0)), 404, "not_found", id="route"),
    pytest.param(proxy(body="!!", b64=False) | {"isBase64Encoded": True}, 400, "bad_request",
                 id="bad-base64"),
    pytest.param(proxy("GET", query="", content_type=None), 400, "no_events", id="empty-pixel"),
    pytest.param(proxy(body=browsing_event(0), query="table=clicks"), 400, "bad_table",
                 id="bad-table"),
])
def test_bad_requests_answer_json_and_send_nothing(firehose: FakeFirehose, event: dict,
                                                   status: int, error: str) -> None:
    got, doc, headers = call(event)
    assert (got, doc["error"]) == (status, error), doc
    assert doc["message"] and firehose.calls == []
    if status == 405:
        assert headers["Allow"] == "GET, POST"


def test_refused_records_are_retried_then_reported(firehose: FakeFirehose) -> None:
    # the first try refuses event 1; the retry takes it
    firehose.refuse = lambda attempt, data: attempt == 1 and session_of(1).encode() in data
    status, doc, _ = call(proxy(body=[browsing_event(i) for i in range(3)]))
    assert (status, doc) == (200, {"accepted": 3, "rejected": []})
    assert [len(c["records"]) for c in firehose.calls] == [3, 1]
    # refused every time: reported by index, the others accepted
    firehose.calls.clear()
    firehose.refuse = lambda attempt, data: session_of(1).encode() in data
    status, doc, _ = call(proxy(body=[browsing_event(i) for i in range(3)]))
    assert status == 200 and doc["accepted"] == 2
    assert doc["rejected"] == [{"index": 1, "reason": "not stored (ServiceUnavailableException: "
                                                      "slow down); send it again"}]
    assert len(firehose.calls) == collect.ATTEMPTS
    # nothing stored: 503, every event listed
    firehose.error = ConnectionError("no route to Firehose")
    status, doc, _ = call(proxy(body=[browsing_event(0), {}]))
    assert status == 503 and doc["error"] == "unavailable" and doc["accepted"] == 0
    assert [r["index"] for r in doc["rejected"]] == [0, 1]
    assert doc["rejected"][0]["reason"].startswith("not stored (ConnectionError")


def test_batches_respect_firehose_limits() -> None:
    fake = FakeFirehose()
    records = [(i, b"x" * 10_000 + b"\n") for i in range(1200)]
    assert collect.put_records(fake, "s", records) == {}
    sizes = [len(c["records"]) for c in fake.calls]
    assert sum(sizes) == 1200 and max(sizes) <= collect.MAX_RECORDS
    assert all(sum(len(r["Data"]) for r in c["records"]) <= collect.MAX_BATCH_BYTES
               for c in fake.calls)
    assert len(fake.calls) == 3  # 419 records of 10 kB fill 4 MiB


def test_the_zip_runs_without_pyarrow_or_starlette(tmp_path: Path) -> None:
    """What ``make lambda`` packs is all the handler needs (Lambda's runtime has no pyarrow)."""
    from skiff_api import package

    zip_path = package.build_collect(tmp_path / "collect.zip")
    assert package.build_collect(tmp_path / "again.zip").read_bytes() == zip_path.read_bytes()
    code = (
        "import sys, json\n"
        "for name in ('pyarrow', 'starlette', 'uvicorn', 'numpy'):\n"
        "    sys.modules[name] = None\n"
        f"sys.path.insert(0, {str(zip_path)!r})\n"
        "import collect, skiff.data.intake as intake, skiff_api.gateway as gateway\n"
        "for module in (collect, intake, gateway):\n"
        "    assert module.__file__.startswith(sys.path[0]), module.__file__\n"
        "event = {'rawPath': '/collect', 'rawQueryString': '', 'body': '{}',\n"
        "         'requestContext': {'http': {'method': 'POST'}}}\n"
        "print(json.loads(collect.lambda_handler(event, None)['body'])['rejected'])\n")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("[{'index': 0, 'reason': 'session_id_hash: missing "
                                  "(required)'}]")
