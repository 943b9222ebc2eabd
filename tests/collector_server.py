"""A ``skiff collect`` server on 127.0.0.1 in a thread, for the tests that post to a real one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skiff.config import CollectConfig
from skiff.data.collector import make_server

__all__ = ["running_collector"]


@contextmanager
def running_collector(root: Path) -> Iterator[str]:
    """The collector's ``/collect`` URL while it runs; landing files under ``root/landing``.

    Its log rolls once an hour, so what it accepted lands when it stops (the exit rolls it).
    """
    collect = CollectConfig(landing_uri=str(root / "landing"), log_dir=root / "log", port=0,
                            roll_seconds=3600)
    server, sock = make_server(collect)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield "http://127.0.0.1:%d/collect" % sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
