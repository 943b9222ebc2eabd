"""``/collect`` as an AWS Lambda handler: HTTP API -> contract checks -> Firehose -> S3.

API Gateway's HTTP API (payload format 2.0; 1.0 works too) calls :func:`lambda_handler`. It
answers as ``skiff collect`` does, through the same functions (:mod:`skiff.data.intake`,
:func:`skiff.data.contract.check_event`): ``POST /collect`` with one event, a JSON array or
NDJSON; ``GET /collect?<field>=<value>&…`` (the pixel, 204). Accepted events go to the
table's Firehose delivery stream with ``put_record_batch`` (one NDJSON line a record, the
contract's columns plus ``arrival_ts_ms``, API Gateway's ``timeEpoch``); Firehose buffers
them into ``<table>/YYYY/MM/DD/HH/`` GZIP objects of the landing bucket (``template.yaml``).

Answers (always JSON, but the pixel's 204): 200 ``{"accepted", "rejected": [{"index",
"reason"}]}``; 400 when no event is valid; 413 for a body over
``SKIFF_COLLECT_MAX_BODY_BYTES``; 404/405 for other routes and methods; 503 when Firehose
stored none of the valid events (records it refused after retries are listed as rejected,
"send it again", when others were stored).

Settings, read once per container: ``SKIFF_FIREHOSE_BROWSING_STREAM``
(``skiff-browsing-train``), ``SKIFF_FIREHOSE_SEARCH_STREAM`` (``skiff-search-train``),
``SKIFF_COLLECT_MAX_BODY_BYTES`` (1 MiB), ``SKIFF_EARLIEST_EVENT_TIME`` (2018-01-01) and
``SKIFF_MAX_FUTURE_SKEW_MINUTES`` (10): the plausible event times, as validation's;
``SKIFF_AWS_REGION``. The Firehose client comes from a factory; :func:`set_client_factory`
replaces it (tests point it at moto). The zip must carry ``skiff_api/__init__.py``,
``skiff_api/gateway.py`` (the event and answer shaping it shares with ``/predict``),
``skiff/__init__.py``, ``skiff/_exports.py``, ``skiff/data/__init__.py``,
``skiff/data/contract.py`` and ``skiff/data/intake.py`` beside this file: they need only
the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from skiff.data.intake import RequestError, check_events, parse_body, pixel_event, table_param
from skiff_api.gateway import Container, answer, json_response, positive_int, read_request

__all__ = [
    "MAX_RECORDS",
    "MAX_BATCH_BYTES",
    "Settings",
    "lambda_handler",
    "handle",
    "make_client",
    "set_client_factory",
    "get_client",
    "put_records",
]

log = logging.getLogger("skiff.collect")

#: Most records one ``put_record_batch`` takes.
MAX_RECORDS = 500
#: Most bytes one ``put_record_batch`` takes.
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: Tries per record before it is reported as not stored.
ATTEMPTS = 3


class Settings:
    """The handler's settings, from the environment (see the module docstring)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.streams = {
            "browsing_train": env.get("SKIFF_FIREHOSE_BROWSING_STREAM", "skiff-browsing-train"),
            "search_train": env.get("SKIFF_FIREHOSE_SEARCH_STREAM", "skiff-search-train"),
        }
        self.max_body_bytes = positive_int(env.get("SKIFF_COLLECT_MAX_BODY_BYTES"),
                                           1024 * 1024)
        earliest = env.get("SKIFF_EARLIEST_EVENT_TIME", "2018-01-01T00:00:00+00:00")
        try:
            when = datetime.fromisoformat(earliest)
        except ValueError:
            raise ValueError(f"SKIFF_EARLIEST_EVENT_TIME={earliest!r} is not ISO 8601.") from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        self.earliest_ms = int(when.timestamp() * 1000)
        self.future_ms = positive_int(env.get("SKIFF_MAX_FUTURE_SKEW_MINUTES"), 10) * 60_000
        self.region = env.get("SKIFF_AWS_REGION") or env.get("AWS_REGION") or "us-east-1"


# --------------------------------------------------------------------------- the client

def make_client(settings: Settings | None = None) -> Any:
    """boto3's ``firehose`` client (``AWS_ENDPOINT_URL`` points it elsewhere, e.g. moto)."""
    import boto3
    from botocore.config import Config

    settings = settings or CONTAINER.settings
    return boto3.client("firehose", region_name=settings.region, config=Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5))


#: This container's settings and client.
CONTAINER = Container(Settings(), make_client)


def set_client_factory(factory: Callable[[], Any] | None, settings: Settings | None = None
                       ) -> None:
    """Replace how this container's Firehose client is made (None: boto3's), and its settings.

    :param factory: no-argument callable returning an object with ``put_record_batch``.
    :param settings: settings to use instead of the environment's.
    """
    CONTAINER.replace(factory, settings)


def get_client() -> Any:
    """The Firehose client of this container, made on first use."""
    return CONTAINER.client()


# --------------------------------------------------------------------------- Firehose

def _chunks(records: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
    """Records in ``put_record_batch``-sized groups (count and bytes)."""
    chunks: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for record in records:
        if len(chunks[-1]) == MAX_RECORDS or (chunks[-1] and size + len(record[1]) >
                                              MAX_BATCH_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += len(record[1])
    return [c for c in chunks if c]


def put_records(client: Any, stream: str, records: list[tuple[int, bytes]]
                ) -> dict[int, str]:
    """Send records to a delivery stream, retrying those Firehose refuses.

    :param client: a Firehose client.
    :param stream: the delivery stream's name.
    :param records: ``(request index, data)`` of each record.
    :return: the reason of each record that was not stored, by request index.
    """
    failed: dict[int, str] = {}
    for chunk in _chunks(records):
        todo = chunk
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.05 * attempt)
            try:
                answer = client.put_record_batch(
                    DeliveryStreamName=stream, Records=[{"Data": data} for _, data in todo])
            except Exception as exc:  # noqa: BLE001  (throttled, missing stream, network)
                code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
                reason = f"{code or type(exc).__name__}: {exc}"
                retry = [(i, d, reason) for i, d in todo]
            else:
                if not answer.get("FailedPutCount"):
                    todo = []
                    break
                retry = [(i, d, f"{r.get('ErrorCode')}: {r.get('ErrorMessage')}")
                         for (i, d), r in zip(todo, answer["RequestResponses"], strict=True)
                         if r.get("ErrorCode")]
            todo = [(i, d) for i, d, _ in retry]
            reasons = {i: reason for i, _, reason in retry}
        for i, _ in todo:
            failed[i] = reasons[i]
    if failed:
        log.warning("Firehose stream %s refused %d of %d records: %s", stream, len(failed),
                    len(records), next(iter(failed.values())))
    return failed


# --------------------------------------------------------------------------- the request

def _arrival_ms(event: dict[str, Any]) -> int:
    epoch = (event.get("requestContext") or {}).get("timeEpoch")
    return epoch if isinstance(epoch, int) and epoch > 0 else int(time.time() * 1000)


def _collect(event: dict[str, Any], settings: Settings, client: Any) -> dict[str, Any]:
    request = read_request(event, "/collect")
    method, path, query = request.method, request.path, request.query
    if not path.rstrip("/").endswith("/collect"):
        raise RequestError(404, "not_found", f"No route {path[:80]!r}; use POST /collect or "
                                             "GET /collect?… (pixel).")
    now = _arrival_ms(event)
    window = {"earliest_ms": settings.earliest_ms, "latest_ms": now + settings.future_ms}
    if method == "GET":
        table, pixel = pixel_event(query)
        checked = check_events([pixel], table, single=True, **window)
    elif method == "POST":
        body = request.body()
        if len(body) > settings.max_body_bytes:
            raise RequestError(413, "too_large", f"The body has {len(body):,} bytes; at most "
                                                 f"{settings.max_body_bytes:,}. Send smaller "
                                                 "batches.")
        params = dict(parse_qsl(query, keep_blank_values=True))
        items, single = parse_body(body, request.headers.get("content-type"))
        checked = check_events(items, table_param(params.get("table")), single=single,
                               **window)
    else:
        raise RequestError(405, "method_not_allowed", f"{method} is not allowed on /collect; "
                                                      "use POST or GET.")
    checked.answer()  # raises 400 when no event is valid
    by_stream: dict[str, list[tuple[int, bytes]]] = {}
    for index, (table, row) in zip(checked.indexes, checked.rows, strict=True):
        data = json.dumps({**row, "arrival_ts_ms": now}, separators=(",", ":")).encode()
        by_stream.setdefault(settings.streams[table], []).append((index, data + b"\n"))
    failed: dict[int, str] = {}
    for stream, records in by_stream.items():
        failed.update(put_records(client or get_client(), stream, records))
    stored = len(checked.rows) - len(failed)
    rejected = sorted(checked.rejected + [
        {"index": i, "reason": f"not stored ({reason}); send it again"}
        for i, reason in failed.items()], key=lambda r: r["index"])
    if not stored:
        raise RequestError(503, "unavailable", "Firehose stored none of the events; send "
                                               "them again.", rejected)
    if method == "GET":
        return {"statusCode": 204, "headers": {"Cache-Control": "no-store"}, "body": ""}
    return json_response(200, {"accepted": stored, "rejected": rejected})


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: an API Gateway proxy event in, a proxy response out.

    :param event: the proxy event (payload format 2.0 or 1.0).
    :param context: the Lambda context (its ``aws_request_id`` is echoed on errors).
    :return: ``{"statusCode", "headers", "body"}``.
    """
    return handle(event, context)


def handle(event: Any, context: Any = None, *, client: Any = None,
           settings: Settings | None = None) -> dict[str, Any]:
    """Answer one proxy event, with this container's client and settings unless given.

    :param event: the proxy event.
    :param context: the Lambda context, if any.
    :param client: a Firehose client for this call.
    :param settings: settings for this call.
    :return: the proxy response.
    """
    settings = settings or CONTAINER.settings
    return answer(event, context, lambda e: _collect(e, settings, client), log=log,
                  name="/collect", allow="GET, POST", errors=(RequestError,))
