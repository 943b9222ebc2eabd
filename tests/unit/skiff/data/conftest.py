"""Fixtures of the data tests: ASGI apps served by uvicorn on 127.0.0.1 (real sockets)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn


@pytest.fixture
def serve_app() -> Iterator[Callable[[object], str]]:
    """Serve ASGI apps with uvicorn on free ports of 127.0.0.1 in threads; ``start(app)``
    returns the base URL. They stop when the test ends."""
    servers = []

    def start(app: object) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                  daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started, "the server did not start"
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)
