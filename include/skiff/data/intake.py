"""One ``/collect`` request's events: body formats, the pixel's query, table choice, checks.

The collector (``skiff collect``) and the ``/collect`` Lambda answer alike because both
call these functions; the module needs only the standard library and
:mod:`skiff.data.contract` (no pyarrow), so the Lambda's zip can carry it.

A request carries one event as a JSON object, a batch as a JSON array, or NDJSON (one
object a line), told apart by ``Content-Type`` (``application/json``,
``application/x-ndjson``) or, for ``text/plain`` (``navigator.sendBeacon``), none or
``application/octet-stream``, by sniffing. The pixel form ``GET /collect?<field>=<value>&…``
carries one event in its query (``cb`` and ``_``, cache busters, are ignored). Every event
is checked against its table's contract: ``?table=`` names the table, else the fields do
(search fields mean ``search_train``, anything else ``browsing_train``).

The answer: ``{"accepted": n, "rejected": [{"index": i, "reason": "..."}]}``, status 200
when at least one event was accepted (the rejected ones listed), 400 when none was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from skiff.data.contract import SEARCH, check_event, contract_named

__all__ = [
    "COLLECT_TABLES",
    "MAX_REASONS",
    "RequestError",
    "Bad",
    "Checked",
    "body_format",
    "parse_body",
    "table_param",
    "infer_table",
    "pixel_event",
    "check_events",
]

#: The tables ``/collect`` accepts events of.
COLLECT_TABLES = ("browsing_train", "search_train", "predictions")
#: Most rejected events an answer lists one by one (``rejected_total`` counts them all).
MAX_REASONS = 1000
#: Pixel query parameters that are not event fields.
PIXEL_IGNORED = ("cb", "_", "table")
_SEARCH_ONLY = frozenset(SEARCH.columns) - {"session_id_hash", "server_timestamp_epoch_ms"}
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_JSON_TYPES = ("application/json", "text/json")
_NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonlines",
                 "application/x-jsonlines", "application/jsonl")
_SNIFF_TYPES = ("", "text/plain", "application/octet-stream")


class RequestError(Exception):
    """A request answered with an error status and a JSON body, never a trace.

    :param status: the HTTP status.
    :param error: a short machine-readable code (``bad_json``, ``too_large`` …).
    :param message: what is wrong and how to fix it.
    :param rejected: the rejected events, when the request's events were all bad.
    """

    def __init__(self, status: int, error: str, message: str,
                 rejected: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.rejected = rejected

    def doc(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        doc: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.rejected is not None:
            doc["accepted"] = 0
            doc["rejected"] = self.rejected[:MAX_REASONS]
            if len(self.rejected) > MAX_REASONS:
                doc["rejected_total"] = len(self.rejected)
        return doc


@dataclass(frozen=True)
class Bad:
    """An item of the batch that is not even JSON (an NDJSON line), with the reason."""

    reason: str


@dataclass
class Checked:
    """A request's events after the contract checks.

    :param rows: ``(table, row)`` of every accepted event, in the request's order.
    :param indexes: each accepted event's index in the request.
    :param rejected: ``{"index", "reason"}`` of every rejected event.
    :param single: the request carried one event (a JSON object, a pixel).
    """

    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    single: bool = False

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of the answer.

        :raises RequestError: no event was accepted (400, naming every reason).
        """
        if not self.rows:
            if self.single:
                message = f"The event breaks the contract: {self.rejected[0]['reason']}."
            else:
                message = (f"None of the {len(self.rejected)} events was accepted; the "
                           "reasons are listed by index.")
            raise RequestError(400, "invalid_events", message, self.rejected)
        doc: dict[str, Any] = {"accepted": len(self.rows), "rejected": self.rejected[:MAX_REASONS]}
        if len(self.rejected) > MAX_REASONS:
            doc["rejected_total"] = len(self.rejected)
        return 200, doc


def body_format(content_type: str | None) -> str:
    """``json``, ``ndjson`` or ``sniff``, from a ``Content-Type`` header.

    :raises RequestError: a type that is none of them (415).
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return "json"
    if media in _NDJSON_TYPES:
        return "ndjson"
    if media in _SNIFF_TYPES:
        return "sniff"
    raise RequestError(415, "unsupported_media_type",
                       f"Content-Type {media!r} is not accepted; send application/json (an "
                       "event or an array of events) or application/x-ndjson (one a line).")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(data: bytes) -> Any:
    return json.loads(data, parse_constant=_no_constants)


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _ndjson(body: bytes) -> list[Any]:
    items: list[Any] = []
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        try:
            items.append(_loads(line))
        except (ValueError, RecursionError) as exc:
            items.append(Bad(f"event: the line is not JSON ({_json_error(exc)})"))
    return items


def parse_body(body: bytes, content_type: str | None) -> tuple[list[Any], bool]:
    """The events of a request body, decoded; a line that is not JSON becomes :class:`Bad`.

    :param body: the raw body.
    :param content_type: its ``Content-Type`` header, if any.
    :return: the items, and whether the body was one event (a JSON object).
    :raises RequestError: an empty body, JSON that does not parse, or neither an object nor
        an array of them (400); an unsupported media type (415).
    """
    fmt = body_format(content_type)
    if not body.strip():
        raise RequestError(400, "no_events", "The body is empty: send one event as a JSON "
                                             "object, a batch as a JSON array, or NDJSON.")
    if fmt == "ndjson":
        return _ndjson(body), False
    try:
        doc = _loads(body)
    except (ValueError, RecursionError) as exc:
        if fmt == "sniff" and isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data":
            return _ndjson(body), False
        raise RequestError(400, "bad_json", f"The body is not valid JSON: {_json_error(exc)}."
                           ) from None
    if isinstance(doc, dict):
        return [doc], True
    if isinstance(doc, list):
        if not doc:
            raise RequestError(400, "no_events", "The batch is an empty array.")
        return doc, False
    raise RequestError(400, "bad_json", f"The body is a JSON {type(doc).__name__}; send an "
                                        "event (object), a batch (array of objects) or NDJSON.")


def table_param(value: str | None) -> str | None:
    """The table a ``?table=`` parameter names, or None when absent.

    :raises RequestError: not a table ``/collect`` accepts (400).
    """
    if value is None:
        return None
    if value not in COLLECT_TABLES:
        raise RequestError(400, "bad_table", f"table={value[:40]!r} is not collected; use one "
                                             f"of {', '.join(COLLECT_TABLES)}.")
    return value


def infer_table(event: Any) -> str:
    """The table an event belongs to by its fields: search fields mean ``search_train``, a
    ``request_id`` ``predictions``."""
    if isinstance(event, dict) and not _SEARCH_ONLY.isdisjoint(event):
        return "search_train"
    if isinstance(event, dict) and "request_id" in event:
        return "predictions"
    return "browsing_train"


def pixel_event(query: str) -> tuple[str | None, dict[str, Any]]:
    """The table and the event of a pixel's query string (``GET /collect?…``).

    Query values are text: an epoch time made of digits becomes an integer, an empty value
    a missing one; the contract checks the rest.

    :param query: the raw query string.
    :return: the ``?table=`` value (None when absent) and the event.
    :raises RequestError: a field given twice, or no field at all (400).
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    event: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            raise RequestError(400, "bad_request", f"Give '{key[:40]}' once; it appears more "
                                                   "than once in the query.")
        seen.add(key)
        if key not in PIXEL_IGNORED:
            event[key] = value
    if not event:
        raise RequestError(400, "no_events", "The query carries no event: use "
                                             "/collect?session_id_hash=…&event_type=…&….")
    table = table_param(dict(pairs).get("table"))
    for column in contract_named(table or infer_table(event)).fields:
        value = event.get(column.name)
        if column.type == "int64" and isinstance(value, str) and _INTEGER.fullmatch(value):
            event[column.name] = int(value)
    return table, event


def check_events(items: list[Any], table: str | None, *, earliest_ms: int | None = None,
                 latest_ms: int | None = None, single: bool = False) -> Checked:
    """Check every event against its table's contract.

    :param items: the decoded events (:class:`Bad` for lines that were not JSON).
    :param table: the table of every event (``?table=``), or None to infer each one's.
    :param earliest_ms: earliest plausible event time (epoch ms), None: unchecked.
    :param latest_ms: first implausible future event time (epoch ms), None: unchecked.
    :param single: the request carried one event.
    :return: the accepted rows and the rejected indexes with their reasons.
    """
    checked = Checked(single=single)
    for index, item in enumerate(items):
        if isinstance(item, Bad):
            checked.rejected.append({"index": index, "reason": item.reason})
            continue
        name = table or infer_table(item)
        row, reason = check_event(name, item, earliest_ms=earliest_ms, latest_ms=latest_ms)
        if row is None:
            checked.rejected.append({"index": index, "reason": reason})
        else:
            checked.rows.append((name, row))
            checked.indexes.append(index)
    return checked
