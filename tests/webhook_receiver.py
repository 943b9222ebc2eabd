"""A Slack Incoming Webhook stand-in on 127.0.0.1 (Starlette on uvicorn), for tests and the soak.

It records every ``POST`` (path, JSON body, time, the status it answered) and answers 200
``ok``; 503 while :attr:`WebhookReceiver.down`; the status of :attr:`WebhookReceiver.failing`
on those paths. ``tests/integration/test_slack_alerts.py`` and ``bench/soak.py`` use it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from skiff.web import ServerGroup, guarded, uvicorn_server

__all__ = ["Post", "WebhookReceiver"]

DEFAULT_PATH = "/services/T000/B000/XXXX"


@dataclass(frozen=True)
class Post:
    """One webhook call: its path, JSON body, arrival time (epoch s) and the status answered."""

    path: str
    body: dict[str, Any]
    at: float
    status: int


class WebhookReceiver:
    """Serving from construction until :meth:`close` (also a context manager).

    :param failing: ``{path: status}`` answered instead of 200 on those paths.
    """

    def __init__(self, failing: dict[str, int] | None = None) -> None:
        self.failing = dict(failing or {})
        self.down = False
        self.posts: list[Post] = []
        app = Starlette(routes=[Route("/{path:path}", self._post, methods=["POST"])])
        server = uvicorn_server(app, guarded(head_timeout_s=10, body_timeout_s=10),
                                keep_alive_s=5, graceful_s=1)
        self._group = ServerGroup([("webhook", server, "127.0.0.1", 0)]).start()

    async def _post(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        path = request.url.path
        status = 503 if self.down else self.failing.get(path, 200)
        self.posts.append(Post(path, json.loads(body or b"{}"), time.time(), status))
        return PlainTextResponse("ok" if status == 200 else "internal_error", status)

    def url(self, path: str = DEFAULT_PATH) -> str:
        """The webhook URL of ``path``."""
        return "http://127.0.0.1:{}{}".format(self._group.address("webhook")[1], path)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._group.stop()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
