"""The model server's control plane: model swaps and the endpoint listing, on their own listener.

Apart from the data plane (:mod:`skiff.serve.app`), as MLServer and Triton keep their model
repository apart from inference, and further than they go: its own port
(``SKIFF_SERVE_CONTROL_PORT``), bound to ``SKIFF_SERVE_CONTROL_HOST`` (127.0.0.1 by default;
in Docker the compose network, never a published port), and every request must carry
``Authorization: Bearer <token>`` (compared in constant time). Routes (every answer JSON):

- ``GET /endpoints``: every endpoint, its config, kind and model (with the model's folder:
  this plane only);
- ``POST /endpoints/<name>/model`` with ``{"model_dir": "...", "config_name": "..."}``: load,
  check and warm the bundle, then swap it in atomically (the endpoint is created if new).
  200 with the endpoint's description; 400 for a body that is not that; 403 when
  ``model_dir``, resolved (``..`` and symlinks followed), is outside the server's model
  roots (:func:`model_roots`: the endpoint store's copies, where a deploy puts each bundle,
  and ``SKIFF_SERVE_MODEL_ROOTS``); 409 when the bundle's kind (intent, rec) is not the
  endpoint's; 422 when it does not load; 504 when it loads too slowly. The old model keeps
  serving on any refusal.

Without the token, or with a wrong one: 401 (``WWW-Authenticate: Bearer``), before routing,
so a caller without it learns nothing of the routes. With it, a caller still cannot make the
server load and run a folder of its choosing (a SavedModel's graph may read and write
files): only what a deploy copied into the endpoint store, or what an operator put under a
configured root. The token is ``SKIFF_SERVE_TOKEN``, else the content of
``SKIFF_SERVE_TOKEN_FILE`` (:func:`control_token`, which writes a random one there, readable
by its owner only, the first time).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from skiff.exceptions import ModelLoadError, SkiffConfigError
from skiff.serve.server import KindMismatch
from skiff.web.middleware import (
    NO_STORE,
    BodyTooLarge,
    ConcurrencyLimit,
    error_response,
    exception_handlers,
    read_body,
)

if TYPE_CHECKING:
    from skiff.config import ServingConfig
    from skiff.serve.server import ModelServer
    from skiff.serve.store import EndpointStore

__all__ = ["MIN_TOKEN_CHARS", "BearerAuth", "confine", "control_token", "create_app",
           "model_roots"]

log = logging.getLogger(__name__)

#: Shortest token accepted (a generated one has 43 characters).
MIN_TOKEN_CHARS = 16
#: Largest body of a swap request (a folder and a config name).
_MAX_BODY_BYTES = 64 * 1024


def control_token(config: ServingConfig, create: bool = True) -> str:
    """The control plane's bearer token: ``SKIFF_SERVE_TOKEN``, else ``SKIFF_SERVE_TOKEN_FILE``'s.

    A missing file is written once with a random token (mode 0600; two processes racing agree
    on the first one written), so a server and a deploy on one machine share it with no set-up.

    :param config: the serving settings.
    :param create: write the file when it is missing (False: raise instead).
    :return: the token.
    :raises SkiffConfigError: the token is shorter than :data:`MIN_TOKEN_CHARS`, or there is
        none and ``create`` is False.
    """
    token, source = config.token.strip(), "SKIFF_SERVE_TOKEN"
    if not token:
        path, source = Path(config.token_file), f"SKIFF_SERVE_TOKEN_FILE={config.token_file}"
        if not path.is_file() and create:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process wrote it first: use theirs
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(32) + "\n")
                log.info("Wrote a new control-plane token to %s.", path)
        try:
            token = path.read_text().strip()
        except FileNotFoundError:
            raise SkiffConfigError(f"No control-plane token: set SKIFF_SERVE_TOKEN, or write one "
                                   f"to {path} (SKIFF_SERVE_TOKEN_FILE).") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise SkiffConfigError(f"The control-plane token of {source} has {len(token)} "
                               f"characters; use at least {MIN_TOKEN_CHARS} (e.g. python -c "
                               "'import secrets; print(secrets.token_urlsafe(32))').")
    return token


def model_roots(config: ServingConfig, store: EndpointStore) -> tuple[Path, ...]:
    """The folders the control plane may load a model from, resolved.

    The endpoint store's copies (:attr:`EndpointStore.models_root`: a deploy copies each
    bundle there before it asks for the swap, and the server loads the store at its start)
    and ``SKIFF_SERVE_MODEL_ROOTS``.

    :param config: the serving settings.
    :param store: the endpoint store the server loads.
    :return: the roots, each once.
    """
    roots = (store.models_root, *config.model_roots)
    return tuple(dict.fromkeys(Path(root).resolve() for root in roots))


def confine(model_dir: str | Path, roots: Sequence[Path]) -> Path:
    """``model_dir`` resolved (``..`` and symlinks followed), if that is inside one of ``roots``.

    :param model_dir: the folder a caller asks for.
    :param roots: the allowed folders, resolved (:func:`model_roots`).
    :return: the resolved folder, the one to load (no later symlink swap changes it).
    :raises PermissionError: it resolves outside every root, or does not resolve (a symlink
        loop); the message names it and the roots.
    :raises ValueError: it is no path (a NUL byte).
    """
    path = Path(model_dir)
    try:
        resolved = path.resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise PermissionError(f"{model_dir} does not resolve ({exc}).") from None
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    via = "" if resolved == path else f" (it resolves to {resolved})"
    raise PermissionError(
        f"{model_dir} is outside the folders this server loads models from{via}: "
        f"{', '.join(map(str, roots))}. Deploy it with Skiff's deploy (which copies the bundle "
        "into the endpoint store), or add its folder to the server's SKIFF_SERVE_MODEL_ROOTS.")


class BearerAuth:
    """ASGI middleware: 401 JSON unless ``Authorization: Bearer <token>`` (constant-time check).

    :param app: the ASGI app behind it.
    :param token: the expected token.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._refusal = error_response(401, "unauthorized", "Send the control-plane token: "
                                                            "Authorization: Bearer <token> "
                                                            "(SKIFF_SERVE_TOKEN).",
                                       {"WWW-Authenticate": 'Bearer realm="skiff-control"'})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    given = value
                    break
            if not hmac.compare_digest(given, self._expected):
                log.warning("Refused a control-plane call without the token from %s.",
                            scope.get("client"))
                await self._refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _ControlPlane:
    def __init__(self, models: ModelServer, roots: Sequence[Path]) -> None:
        self.models = models
        self.roots = tuple(roots)

    async def endpoints(self, request: Request) -> Response:
        return JSONResponse(self.models.describe(), headers=NO_STORE)

    async def swap(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            body = await read_body(request, _MAX_BODY_BYTES, "the control plane's limit")
            doc = json.loads(body)
            model_dir = doc["model_dir"]
            config_name = doc.get("config_name")
            if not isinstance(model_dir, str) or not model_dir or not (
                    config_name is None or isinstance(config_name, str)):
                raise TypeError
        except BodyTooLarge as exc:
            return exc.response()
        except ClientDisconnect:
            return Response(status_code=400)
        except (ValueError, KeyError, TypeError, RecursionError, AttributeError):
            return error_response(400, "bad_request", 'Send {"model_dir": "<bundle folder>", '
                                                      '"config_name": "<endpoint config>"}.')
        try:
            folder = confine(model_dir, self.roots)
        except ValueError:
            return error_response(400, "bad_request", "model_dir is not a path (a NUL byte).")
        except PermissionError as exc:
            log.warning("Refused a swap of %r into %s: outside the model roots.", model_dir, name)
            return error_response(403, "forbidden_model_dir", str(exc))
        limit = self.models.load_timeout_s
        try:
            # the load runs on; past its limit the endpoint refuses to serve it (Endpoint.swap)
            with anyio.fail_after(None if limit is None else limit + 1):
                await anyio.to_thread.run_sync(self._deploy, name, folder, config_name,
                                               abandon_on_cancel=True)
        except TimeoutError:
            return error_response(504, "load_timeout", f"{model_dir} did not load within "
                                  f"{limit:g} s (SKIFF_SERVE_LOAD_TIMEOUT_S); endpoint {name} "
                                  "keeps its model.")
        except KindMismatch as exc:
            return error_response(409, "kind_mismatch", str(exc))
        except ModelLoadError as exc:
            return error_response(422, "model_load_failed", str(exc))
        except SkiffConfigError as exc:
            return error_response(400, "bad_request", str(exc))
        return JSONResponse(self.models.endpoint(name).describe(), headers=NO_STORE)

    def _deploy(self, name: str, model_dir: Path, config_name: str | None) -> Any:
        return self.models.deploy(name, model_dir, config_name)


def create_app(models: ModelServer, config: ServingConfig, token: str, *,
               roots: Sequence[str | Path]) -> Starlette:
    """The control plane's ASGI app.

    :param models: the endpoints it changes.
    :param config: the serving settings (requests at once).
    :param token: the bearer token every request must carry (:func:`control_token`).
    :param roots: the folders a swap may load a model from (:func:`model_roots`).
    :return: the Starlette app.
    :raises SkiffConfigError: the token is too short.
    """
    if len(token) < MIN_TOKEN_CHARS:
        raise SkiffConfigError(f"The control-plane token has {len(token)} characters; use at "
                               f"least {MIN_TOKEN_CHARS}.")
    plane = _ControlPlane(models, [Path(root).resolve() for root in roots])
    return Starlette(
        routes=[Route("/endpoints", plane.endpoints, methods=["GET"]),
                Route("/endpoints/{name}/model", plane.swap, methods=["POST"])],
        # the token is checked first: the limit then counts only authenticated callers
        middleware=[Middleware(BearerAuth, token=token),
                    Middleware(ConcurrencyLimit, limit=config.max_requests,
                               setting="SKIFF_SERVE_MAX_REQUESTS")],
        exception_handlers=exception_handlers("use GET /endpoints or POST "
                                              "/endpoints/<name>/model"),
    )
