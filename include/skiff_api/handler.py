"""``GET /predict?session=a,b,c``: Skiff's prediction API, as an AWS Lambda handler.

API Gateway (REST or HTTP API, proxy integration) calls :func:`lambda_handler`; locally,
``local_adapter.py`` turns real HTTP requests into the same events. The handler validates
the query, calls one model endpoint through a ``sagemaker-runtime`` client and answers JSON.

Query parameters:

- ``session`` (required; ``x`` is accepted as its alias, not both): comma-separated
  tokens, oldest first. Event types (``view,detail,add,remove,purchase``) ask the intent
  model, which may be wrapped in the seeds' markers (``start,view,add,end``: leading
  ``start`` and trailing ``end`` are dropped here); SKU hashes ask the recommendation model.
- ``model`` (optional): ``intent`` or ``rec``; default: ``intent`` when every token is an
  event type or a marker, else ``rec``.
- ``k`` (optional, ``rec`` only): how many SKUs to return, 1.. ``SKIFF_PREDICT_TOP_K``.
- ``session_id`` (optional): the shopper's session, its 64-character hex hash as the
  collected events carry it. It goes to the endpoint, with the request id (the Lambda's, else
  a new one), in SageMaker's custom attributes (``request_id=…;session_id=…``), where the
  model server's prediction log reads them; the monitoring marts join on it to what the
  shopper did next (``docs/monitoring.md``).

Answers (always JSON): 200 with the prediction and the model version (a recommendation also
lists the SKUs the model did not know and ignored, and says ``"fallback": "popular"`` when
it knew none; that filtering is the model's, :mod:`skiff.serve.codec`, so the local server
and SageMaker answer alike); 400 with a message for any bad input (missing, doubled or
empty ``session``, too many tokens, bad characters, unknown event types, misplaced
markers, a huge query string); 404/405 for other routes and methods; 502/503 when the
model endpoint fails or is missing. Never a stack trace.

Settings, read once per container: ``SKIFF_ENDPOINT_NAME`` (endpoint prefix, default
``skiff``: endpoints ``skiff-intent``, ``skiff-rec``), ``SKIFF_PREDICT_MAX_TOKENS`` (200),
``SKIFF_PREDICT_TOP_K`` (10), ``SKIFF_AWS_REGION``, ``SKIFF_RUNTIME_URL`` (an
``endpoint_url`` for the runtime client, e.g. the local model server; unset on AWS), and
the runtime client's ``SKIFF_PREDICT_CONNECT_TIMEOUT`` (1 s), ``SKIFF_PREDICT_READ_TIMEOUT``
(2 s) and ``SKIFF_PREDICT_ATTEMPTS`` (2, the first included): :meth:`Settings.worst_case_s`
is what they may cost at most, and must stay below the function's timeout (15 s in
``template.yaml``; a test checks it). The defaults are ``skiff.config.ServingConfig``'s, whose
``lambda_environment()`` sets them all (a test keeps them equal).

The runtime client is made once per container by a factory; :func:`set_client_factory`
replaces it (tests pass a fake). :func:`handle` answers one event with a client and settings
of the caller's (the local adapter, the deploy smoke test) without touching the container's.
Reading the event and shaping the answers is :mod:`skiff_api.gateway`'s, which ``package.py``
zips beside this file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from skiff_api.gateway import ApiError, Container, answer, json_response, positive_int, read_request

__all__ = [
    "EVENT_TOKENS",
    "MARKERS",
    "SESSION_ALIAS",
    "MODELS",
    "MAX_QUERY_CHARS",
    "Settings",
    "lambda_handler",
    "handle",
    "make_client",
    "set_client_factory",
    "get_client",
    "parse_request",
    "session_id_of",
    "proxy_event",
]

# About 400 lines: the zip's entry point holds the whole /predict contract (query rules,
# runtime client, answer shaping) so the Lambda ships as this file plus gateway.py.
log = logging.getLogger("skiff.predict")

#: The intent model's event types (``skiff.train.features.EVENT_TOKENS``; a test keeps them equal).
EVENT_TOKENS = frozenset(("view", "detail", "add", "remove", "purchase"))
#: Markers the seeds' clients put around an intent session (``start,view,add,end``); a
#: leading ``start`` and a trailing ``end`` are dropped before the model sees the session.
MARKERS = ("start", "end")
#: The seeds' clients' name of ``session`` (``?x=start,view,end``).
SESSION_ALIAS = "x"
#: Models the API serves.
MODELS = ("intent", "rec")
#: Longest query string accepted, in characters.
MAX_QUERY_CHARS = 8192
#: Longest token, in characters (Coveo SKU hashes have 64).
MAX_TOKEN_CHARS = 128
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_SESSION_ID = re.compile(r"[0-9a-f]{64}")


class Settings:
    """The handler's settings, from the environment (see the module docstring)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.endpoint_prefix = env.get("SKIFF_ENDPOINT_NAME", "skiff")
        self.max_tokens = positive_int(env.get("SKIFF_PREDICT_MAX_TOKENS"), 200)
        self.top_k = positive_int(env.get("SKIFF_PREDICT_TOP_K"), 10)
        self.region = env.get("SKIFF_AWS_REGION") or env.get("AWS_REGION") or "us-east-1"
        self.runtime_url = env.get("SKIFF_RUNTIME_URL") or None
        self.connect_timeout = _seconds(env.get("SKIFF_PREDICT_CONNECT_TIMEOUT"), 1.0)
        self.read_timeout = _seconds(env.get("SKIFF_PREDICT_READ_TIMEOUT"), 2.0)
        self.attempts = positive_int(env.get("SKIFF_PREDICT_ATTEMPTS"), 2)

    def endpoint(self, model: str) -> str:
        return f"{self.endpoint_prefix}-{model}"

    def worst_case_s(self) -> float:
        """The longest one endpoint call may take with these settings, in seconds.

        Every attempt may wait ``connect_timeout`` then ``read_timeout``; before each retry
        botocore's standard mode sleeps at most ``min(2 ** (i - 1), 20)`` s on throttling,
        plus up to 5 s more when the answer asks for it (``x-amz-retry-after``).
        """
        backoff = sum(min(2.0 ** (i - 1), 20.0) + 5.0 for i in range(1, self.attempts))
        return self.attempts * (self.connect_timeout + self.read_timeout) + backoff


def _seconds(raw: str | None, default: float) -> float:
    """A positive number of seconds: ``default`` when unset, not a number, or not positive."""
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        return default
    return value if 0 < value < float("inf") else default


# --------------------------------------------------------------------------- the client

def make_client(settings: Settings | None = None) -> Any:
    """boto3's ``sagemaker-runtime`` client (unsigned toward a local URL without credentials).

    Its timeouts and attempts are the settings' (see :meth:`Settings.worst_case_s`).

    :param settings: region, ``runtime_url``, timeouts; default the container's settings.
    """
    import boto3
    import botocore
    from botocore.config import Config

    settings = settings or CONTAINER.settings
    options: dict[str, Any] = {}
    if settings.runtime_url and boto3.Session().get_credentials() is None:
        options["signature_version"] = botocore.UNSIGNED  # the local model server checks none
    return boto3.client(
        "sagemaker-runtime", region_name=settings.region, endpoint_url=settings.runtime_url,
        config=Config(retries={"total_max_attempts": settings.attempts, "mode": "standard"},
                      connect_timeout=settings.connect_timeout,
                      read_timeout=settings.read_timeout, tcp_keepalive=True, **options))


#: This container's settings and client.
CONTAINER = Container(Settings(), make_client)


def set_client_factory(factory: Callable[[], Any] | None, settings: Settings | None = None
                       ) -> None:
    """Replace how this container's runtime client is made (None: boto3's), and its settings.

    The next request builds the client again from ``factory``. (To answer one event with a
    client of your own, without touching the container's, call :func:`handle`.)

    :param factory: no-argument callable returning an object with ``invoke_endpoint``.
    :param settings: settings to use instead of the environment's.
    """
    CONTAINER.replace(factory, settings)


def get_client() -> Any:
    """The runtime client of this container, made on first use."""
    return CONTAINER.client()


# --------------------------------------------------------------------------- the request

def _query(raw: str) -> dict[str, list[str]]:
    """Query parameters as lists of values, checking the size first."""
    if len(raw) > MAX_QUERY_CHARS:
        raise ApiError(400, "bad_request", f"The query string is too long ({len(raw)} "
                                           f"characters; at most {MAX_QUERY_CHARS}).")
    return parse_qs(raw, keep_blank_values=True)


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "bad_request", f"Give '{name}' once; it appears {len(values)} times.")
    return values[0]


def _show(token: str) -> str:
    return repr(token if len(token) <= 40 else token[:37] + "...")


def parse_request(event: dict[str, Any], settings: Settings) -> tuple[str, list[str], int]:
    """Validate a proxy event: the model to ask, the session's tokens and ``k``.

    :raises ApiError: any bad input, with the status and message to answer.
    """
    request = read_request(event, "/predict")
    method, path = request.method, request.path
    if not path.rstrip("/").endswith("/predict"):
        raise ApiError(404, "not_found", f"No route {path!r}; use GET /predict?session=a,b,c.")
    if method not in ("GET", "HEAD"):
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed; use GET.")
    params = _query(request.query)
    name = "session"
    raw = _one(params, name)
    alias = _one(params, SESSION_ALIAS)
    if raw is not None and alias is not None:
        raise ApiError(400, "bad_request", f"Give either 'session' or its alias "
                                           f"'{SESSION_ALIAS}', not both.")
    if raw is None and alias is not None:
        name, raw = SESSION_ALIAS, alias
    if raw is None:
        raise ApiError(400, "bad_request", "Missing 'session': use /predict?session=a,b,c "
                                           "(event types or SKU hashes, oldest first).")
    if not raw.strip():
        raise ApiError(400, "bad_request", f"'{name}' is empty: give at least one token.")
    tokens = [t.strip() for t in raw.split(",")]
    if len(tokens) > settings.max_tokens:
        raise ApiError(400, "bad_request", f"'{name}' has {len(tokens)} tokens; at most "
                                           f"{settings.max_tokens}.")
    for i, token in enumerate(tokens):
        if not token:
            raise ApiError(400, "bad_request", f"'{name}' has an empty token at position {i + 1}"
                                               " (two commas in a row, or a trailing comma).")
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
            raise ApiError(400, "bad_request",
                           f"Token {i + 1} of '{name}' ({_show(token)}) has characters other "
                           f"than letters, digits, '-' and '_', or more than {MAX_TOKEN_CHARS}.")
    model = _one(params, "model")
    if model is None:
        model = "intent" if all(t in EVENT_TOKENS or t in MARKERS for t in tokens) else "rec"
    elif model not in MODELS:
        raise ApiError(400, "bad_request", f"'model' must be one of {', '.join(MODELS)}; got "
                                           f"{_show(model)}.")
    if model == "intent":
        unknown = sorted({t for t in tokens if t not in EVENT_TOKENS and t not in MARKERS})
        if unknown:
            raise ApiError(400, "bad_request",
                           f"Unknown event types {', '.join(map(_show, unknown[:5]))}; the "
                           f"intent model knows {', '.join(sorted(EVENT_TOKENS))} (and the "
                           f"markers {' and '.join(MARKERS)}).")
        tokens = _events(tokens, name)
    k_raw = _one(params, "k")
    k = settings.top_k
    if k_raw is not None:
        if model != "rec":
            raise ApiError(400, "bad_request", "'k' applies to recommendations (model=rec) only.")
        if not k_raw.isdigit() or not 1 <= int(k_raw) <= settings.top_k:
            raise ApiError(400, "bad_request", f"'k' must be an integer from 1 to "
                                               f"{settings.top_k}; got {_show(k_raw)}.")
        k = int(k_raw)
    return model, tokens, k


def session_id_of(event: dict[str, Any]) -> str | None:
    """The ``session_id`` of a proxy event's query (None when absent).

    :raises ApiError: given twice, or not a 64-character lowercase hex hash (400).
    """
    value = _one(_query(read_request(event, "/predict").query), "session_id")
    if value is None or value == "":
        return None
    if not _SESSION_ID.fullmatch(value):
        raise ApiError(400, "bad_request", f"'session_id' must be the session's 64-character "
                                           f"lowercase hex hash; got {_show(value)}.")
    return value


def _events(tokens: list[str], name: str) -> list[str]:
    """An intent session without its markers (any leading ``start``, any trailing ``end``).

    :raises ApiError: a marker elsewhere, or nothing but markers.
    """
    lo, hi = 0, len(tokens)
    while lo < hi and tokens[lo] == "start":
        lo += 1
    while hi > lo and tokens[hi - 1] == "end":
        hi -= 1
    for i in range(lo, hi):
        if tokens[i] in MARKERS:
            raise ApiError(400, "bad_request",
                           f"Token {i + 1} of '{name}' is the marker {tokens[i]!r}: 'start' may "
                           "only open a session and 'end' only close it.")
    if lo == hi:
        raise ApiError(400, "bad_request", f"'{name}' holds only the markers start/end: give "
                                           "at least one event type between them.")
    return tokens[lo:hi]


# --------------------------------------------------------------------------- the prediction

def _model_error(exc: Exception, endpoint: str) -> ApiError:
    """Map a runtime client error to an answer: the model's 4xx is the caller's fault."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ApiError(502, "model_unavailable", f"The model endpoint {endpoint} could not be "
                                                  f"reached ({type(exc).__name__}).")
    code = (response.get("Error") or {}).get("Code", "")
    if code == "ModelError":
        status = response.get("OriginalStatusCode")
        original = str(response.get("OriginalMessage") or "")
        message = original
        try:
            doc = json.loads(original)
            if isinstance(doc, dict):
                message = str(doc.get("message") or doc.get("error") or original)
        except ValueError:
            pass
        if message.startswith("bad_request:"):  # SageMaker's container raised BadRequest
            message, status = message.removeprefix("bad_request:").strip(), 400
        if isinstance(status, int) and 400 <= status < 500:
            return ApiError(400, "bad_request", message[:500])
        return ApiError(502, "model_error", f"The model endpoint {endpoint} failed "
                                            f"(status {status}).")
    if code in ("ValidationError", "ValidationException"):
        return ApiError(503, "model_unavailable", f"The model endpoint {endpoint} is not "
                                                  "available.")
    return ApiError(502, "model_unavailable", f"The model endpoint {endpoint} failed ({code}).")


def predict(model: str, tokens: list[str], k: int, settings: Settings, client: Any,
            attributes: str | None = None) -> dict[str, Any]:
    """Ask the endpoint of ``model`` and shape its answer.

    :param attributes: SageMaker custom attributes for the endpoint (``request_id=…``).
    :raises ApiError: the endpoint refused the session (400) or failed (502/503).
    """
    endpoint = settings.endpoint(model)
    body: dict[str, Any] = {"sessions": [tokens]}
    if model == "rec":
        body["k"] = k
    extra = {"CustomAttributes": attributes} if attributes else {}
    try:
        answer = (client or get_client()).invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept="application/json",
            Body=json.dumps(body).encode(), **extra)
        raw = answer["Body"].read()
    except Exception as exc:  # noqa: BLE001  (any client error becomes a 400, 502 or 503)
        raise _model_error(exc, endpoint) from None
    try:
        doc = json.loads(raw)
        version = str(doc["model_version"])
        prediction = doc["predictions"][0]
        if model == "intent":
            result: dict[str, Any] = {"probability": float(prediction["probability"])}
        else:
            result = {"items": [{"sku": str(s), "score": float(x)} for s, x in
                                zip(prediction["items"], prediction["scores"], strict=True)]}
            result.update(_leftovers(prediction))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        log.error("Endpoint %s answered an unexpected body (%s): %.200r", endpoint, exc, raw)
        raise ApiError(502, "model_error", f"The model endpoint {endpoint} answered an "
                                           "unexpected body.") from None
    return {"model": model, "model_version": version, "endpoint": endpoint,
            "session_length": len(tokens), **result}


def _leftovers(prediction: dict[str, Any]) -> dict[str, Any]:
    """What the model said of a recommendation besides its items: ``ignored``, the fallback.

    A model older than the forgiving codec says nothing: ``ignored`` is then empty.
    """
    ignored = [str(t) for t in prediction.get("ignored") or []]
    out: dict[str, Any] = {"ignored": ignored,
                           "ignored_count": int(prediction.get("ignored_count", len(ignored)))}
    if prediction.get("fallback"):
        out["fallback"] = str(prediction["fallback"])
        if prediction.get("message"):
            out["message"] = str(prediction["message"])
    return out


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: an API Gateway proxy event in, a proxy response out.

    :param event: the proxy event (payload format 1.0 or 2.0).
    :param context: the Lambda context (its ``aws_request_id`` is echoed on errors).
    :return: ``{"statusCode", "headers", "body"}`` with a JSON body.
    """
    return handle(event, context)


def handle(event: Any, context: Any = None, *, client: Any = None,
           settings: Settings | None = None) -> dict[str, Any]:
    """Answer one proxy event, with this container's client and settings unless given.

    :param event: the proxy event.
    :param context: the Lambda context, if any.
    :param client: a runtime client for this call (the local adapter's, a smoke test's).
    :param settings: settings for this call.
    :return: the proxy response.
    """
    started = time.perf_counter()
    settings = settings or CONTAINER.settings

    def route(event: dict[str, Any]) -> dict[str, Any]:
        model, tokens, k = parse_request(event, settings)
        session_id = session_id_of(event)
        request_id = str(getattr(context, "aws_request_id", "") or uuid.uuid4().hex)
        attributes = f"request_id={request_id}" + (f";session_id={session_id}"
                                                     if session_id else "")
        return json_response(200, predict(model, tokens, k, settings, client, attributes))

    response = answer(event, context, route, log=log, name="/predict", allow="GET, HEAD")
    if response["statusCode"] >= 500:
        log.warning("/predict %s in %.1f ms: %s", response["statusCode"],
                    (time.perf_counter() - started) * 1000, response["body"])
    return response


def proxy_event(path: str, query: str | dict[str, str], method: str = "GET") -> dict[str, Any]:
    """A payload-2.0 proxy event for ``method path?query`` (what the local adapter sends).

    :param path: the request path.
    :param query: the raw query string, or parameters to encode.
    :param method: the HTTP method.
    :return: the event.
    """
    raw = query if isinstance(query, str) else urlencode(query)
    return {"version": "2.0", "routeKey": f"{method} {path}", "rawPath": path,
            "rawQueryString": raw,
            "requestContext": {"http": {"method": method, "path": path}}}
