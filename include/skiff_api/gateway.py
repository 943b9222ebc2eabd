"""API Gateway proxy events in, proxy responses out: the shaping both Lambdas share.

Both handlers read the same event shapes (HTTP API payload 2.0, and REST API payload 1.0)
and answer the same way: JSON with ``Cache-Control: no-store``, an error as
``{"error", "message", "request_id"}``, a bug as a 500 without its trace. This module holds
that part once:

- :func:`read_request`: method, path, raw query, lower-cased headers and (decoded on demand)
  body of an event, as a :class:`Request`;
- :func:`json_response`, :func:`error_response`: the proxy responses;
- :func:`answer`: runs a handler's route on one event, turning :class:`ApiError` (or any
  error class with ``status`` and ``doc()``) into its answer and anything else into a 500;
- :class:`Container`: what a Lambda container keeps between invocations, its settings and
  its AWS client (made on first use by a replaceable factory);
- :func:`positive_int`: a positive integer setting, with a default for bad values.

It needs the standard library only: ``package.py`` puts it in both zips as
``skiff_api/gateway.py`` (with the empty-of-imports ``skiff_api/__init__.py``), so
``from skiff_api.gateway import …`` works at the zip's root as in the repository.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "JSON_HEADERS",
    "ApiError",
    "Request",
    "Container",
    "read_request",
    "json_response",
    "error_response",
    "answer",
    "positive_int",
]

#: The headers of every JSON answer.
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


class ApiError(Exception):
    """A request answered with an error status and a JSON message (never a trace).

    :param status: the HTTP status.
    :param error: a short machine-readable code (``bad_request``, ``not_found`` …).
    :param message: what is wrong and how to fix it.
    """

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    def doc(self) -> dict[str, Any]:
        """The JSON body of the answer (without the request id)."""
        return {"error": self.error, "message": self.message}


@dataclass(frozen=True)
class Request:
    """What a handler reads of a proxy event.

    :param method: the upper-case HTTP method.
    :param path: the request path (with the stage prefix, if any).
    :param query: the raw query string (payload 1.0: re-encoded from its parameters).
    :param headers: the headers, names lower-cased.
    :param raw_body: the event's ``body`` as given (``None`` when absent).
    :param base64: whether ``raw_body`` is base64 (``isBase64Encoded``).
    """

    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | bytes | None = None
    base64: bool = False

    def body(self) -> bytes:
        """The body's bytes, decoded from base64 when the event says so.

        :raises ApiError: 400 when the body is not valid base64.
        """
        raw = self.raw_body or ""
        if self.base64:
            try:
                return base64.b64decode(raw, validate=True)
            except ValueError:
                raise ApiError(400, "bad_request", "The body is not valid base64.") from None
        return raw.encode() if isinstance(raw, str) else bytes(raw)


def _query(event: dict[str, Any]) -> str:
    raw = event.get("rawQueryString")
    if raw is not None:
        return str(raw)
    # payload 1.0: rebuild it from the parsed parameters (the multi-valued ones when present)
    multi = event.get("multiValueQueryStringParameters")
    single = event.get("queryStringParameters")
    if multi:
        pairs = [(str(k), str(v)) for k, vs in multi.items() for v in (vs or [])]
    elif single:
        pairs = [(str(k), str(v)) for k, v in single.items()]
    else:
        pairs = []
    return urlencode(pairs)


def read_request(event: dict[str, Any], default_path: str) -> Request:
    """The method, path, query, headers and body of a proxy event (payload 2.0 or 1.0).

    :param event: the proxy event.
    :param default_path: the path when the event names none.
    :return: the request; its body is decoded when :meth:`Request.body` is called.
    """
    http = (event.get("requestContext") or {}).get("http") or {}
    method = event.get("httpMethod") or http.get("method") or "GET"
    path = event.get("rawPath") or event.get("path") or http.get("path") or default_path
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return Request(str(method).upper(), str(path), _query(event), headers,
                   event.get("body"), bool(event.get("isBase64Encoded")))


def json_response(status: int, doc: Any = None, headers: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """A proxy response with a JSON body.

    :param status: the HTTP status.
    :param doc: the JSON document; ``None`` leaves the body empty.
    :param headers: headers added to (or replacing) :data:`JSON_HEADERS`.
    :return: ``{"statusCode", "headers", "body"}``.
    """
    return {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})},
            "body": "" if doc is None else json.dumps(doc)}


def error_response(status: int, doc: dict[str, Any], request_id: str | None,
                   allow: str | None = None) -> dict[str, Any]:
    """A JSON error answer: ``doc`` with the request id, and ``Allow`` on a 405.

    :param status: the HTTP status.
    :param doc: ``{"error", "message", …}``.
    :param request_id: the Lambda request id (``None`` outside Lambda).
    :param allow: the methods the route takes, sent as ``Allow`` with a 405.
    :return: the proxy response.
    """
    headers = {"Allow": allow} if status == 405 and allow else None
    return json_response(status, {**doc, "request_id": request_id}, headers)


def answer(event: Any, context: Any, route: Callable[[dict[str, Any]], dict[str, Any]], *,
           log: logging.Logger, name: str, allow: str,
           errors: tuple[type[Exception], ...] = ()) -> dict[str, Any]:
    """Answer one proxy event with ``route``, never with a trace.

    :param event: the proxy event (anything else is a 400).
    :param context: the Lambda context (its ``aws_request_id`` is echoed on errors).
    :param route: turns the event into the proxy response; raises :class:`ApiError` (or one
        of ``errors``) for an answer with an error status.
    :param log: where a bug's trace is logged.
    :param name: the route, for that log line (``/predict``).
    :param allow: the methods the route takes (the ``Allow`` header of a 405).
    :param errors: more exception classes with ``status`` and ``doc()`` to answer as errors.
    :return: the proxy response.
    """
    request_id = getattr(context, "aws_request_id", None)
    try:
        if not isinstance(event, dict):
            raise ApiError(400, "bad_request", "The event is not an API Gateway proxy event.")
        return route(event)
    except (ApiError, *errors) as exc:
        status, doc = exc.status, exc.doc()  # type: ignore[attr-defined]
        return error_response(status, doc, request_id, allow)
    except Exception:  # noqa: BLE001  (a bug: logged with its trace, answered without it)
        log.exception("Unexpected error in %s (request %s)", name, request_id)
        return error_response(500, {"error": "internal_error", "message": "Internal error."},
                              request_id)


class Container:
    """What a Lambda container keeps between invocations: its settings and its client.

    :param settings: the handler's settings (read from the environment once).
    :param make_client: makes the default client from the settings (boto3's).
    """

    def __init__(self, settings: Any, make_client: Callable[[Any], Any]) -> None:
        self.settings = settings
        self._make_client = make_client
        self._factory: Callable[[], Any] | None = None
        self._client: Any = None

    def replace(self, factory: Callable[[], Any] | None, settings: Any = None) -> None:
        """Make the next client with ``factory``, and use ``settings`` from now on.

        :param factory: a no-argument callable returning the client (``None``: the default).
        :param settings: settings instead of the current ones (``None``: keep them).
        """
        self._factory = factory
        self._client = None
        if settings is not None:
            self.settings = settings

    def client(self) -> Any:
        """The client, made on first use."""
        if self._client is None:
            self._client = (self._factory() if self._factory is not None
                            else self._make_client(self.settings))
        return self._client


def positive_int(raw: str | None, default: int) -> int:
    """A positive integer setting: ``default`` when unset, not an integer, or not positive.

    :param raw: the environment's value.
    :param default: the value otherwise.
    """
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value > 0 else default
