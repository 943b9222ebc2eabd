"""Collection into S3 against moto in server mode (a real HTTP endpoint on 127.0.0.1).

- The ``/collect`` Lambda handler -> Firehose ``put_record_batch`` -> moto delivers each
  batch to S3 at once (no buffering), under ``<prefix>YYYY/MM/DD/HH/`` and without GZIP or
  the ``.ndjson.gz`` extension (moto ignores ``CompressionFormat`` and ``FileExtension``):
  the test reads the objects' bytes and checks they are landing lines, once gzip'd.
- ``skiff collect`` (uvicorn on a real socket, in a thread) with ``SKIFF_LANDING_URI`` an
  S3 prefix: its rolled files are whole objects the landing zone lists and decodes.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from collect_events import browsing_event, counts, landed, search_event, session_of
from skiff.config import CollectConfig
from skiff.data.landing import LandingZone, decode_events
from skiff_api import collect

pytestmark = pytest.mark.integration

REGION, BUCKET = "us-east-1", "skiff-landing"
STREAMS = {"browsing_train": "skiff-browsing-train", "search_train": "skiff-search-train"}


@pytest.fixture(scope="module")
def moto() -> Iterator[SimpleNamespace]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_DEFAULT_REGION", REGION), ("AWS_ENDPOINT_URL", url)):
            mp.setenv(var, value)
        import boto3

        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        firehose = boto3.client("firehose", region_name=REGION)
        for table, stream in STREAMS.items():  # as template.yaml declares them
            firehose.create_delivery_stream(
                DeliveryStreamName=stream, DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::123456789012:role/skiff-firehose",
                    "BucketARN": f"arn:aws:s3:::{BUCKET}",
                    "Prefix": f"{table}/",  # moto appends YYYY/MM/DD/HH/ itself
                    "CompressionFormat": "GZIP",
                    "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5}})
        yield SimpleNamespace(url=url, s3=s3)
    server.stop()


def _objects(s3: object, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_the_lambda_delivers_landing_lines_through_firehose(moto: SimpleNamespace) -> None:
    collect.set_client_factory(None, collect.Settings({"SKIFF_AWS_REGION": REGION}))
    try:
        arrival = int(time.time() * 1000)
        event = {"version": "2.0", "rawPath": "/collect", "rawQueryString": "",
                 "headers": {"content-type": "application/json"},
                 "requestContext": {"http": {"method": "POST"}, "timeEpoch": arrival},
                 "body": None}
        batch = [browsing_event(0), search_event(1), browsing_event(2, event_type="x"),
                 browsing_event(3)]
        answer = collect.lambda_handler({**event, "body": json.dumps(batch)}, None)
        assert answer["statusCode"] == 200, answer["body"]
        assert json.loads(answer["body"])["accepted"] == 3
    finally:
        collect.set_client_factory(None, collect.Settings())
    hours = {time.strftime("%Y/%m/%d/%H", time.gmtime(arrival / 1000 + s)) for s in (0, 60)}
    keys = _objects(moto.s3, "browsing_train/")
    assert keys and all(k.split("/skiff-browsing-train-")[0][len("browsing_train/"):] in hours
                        for k in keys), keys  # Firehose's layout, by arrival hour
    rows = []
    for key in keys:
        body = moto.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        rows += decode_events("browsing_train", gzip.compress(body), name=key).to_pylist()
    assert counts(rows) == {session_of(0): 1, session_of(3): 1}
    assert {r["arrival_ts_ms"] for r in rows} == {arrival}
    (search_key,) = _objects(moto.s3, "search_train/")
    body = moto.s3.get_object(Bucket=BUCKET, Key=search_key)["Body"].read()
    assert decode_events("search_train", gzip.compress(body)).num_rows == 1


def test_the_collector_lands_whole_objects_on_s3(moto: SimpleNamespace, tmp_path: Path) -> None:
    from skiff.data.collector import make_server

    config = CollectConfig(landing_uri=f"s3://{BUCKET}/collector", log_dir=tmp_path / "log",
                           port=0, roll_seconds=0.2)
    server, sock = make_server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    zone = LandingZone.from_uri(config.landing_uri)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 20
            while not server.started:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            for i in range(0, 30, 10):
                answer = client.post("/collect", json=[browsing_event(j) for j in range(i, i + 10)])
                assert answer.json() == {"accepted": 10, "rejected": []}
            assert client.post("/collect", json=search_event(99)).status_code == 200
            while len(landed(zone)) < 30:
                assert time.monotonic() < deadline, client.get("/health").json()
                time.sleep(0.05)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert counts(landed(zone)) == {session_of(i): 1 for i in range(30)}
    assert counts(landed(zone, "search_train")) == {session_of(99): 1}
    keys = _objects(moto.s3, "collector/browsing_train/")
    assert keys and all(k.endswith(".ndjson.gz") and "/skiff-collect-" in k for k in keys)
    assert list((tmp_path / "log").glob("segment-*")) == []
