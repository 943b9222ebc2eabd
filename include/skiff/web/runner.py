"""uvicorn servers of Skiff's ASGI apps: bound sockets, one event loop, started and stopped as one.

:func:`uvicorn_server` makes a uvicorn server of an app with Skiff's protocol
(:func:`skiff.web.protocol.guarded`) and no banner, access log or lifespan of its own;
:class:`ServerGroup` binds several of them (port 0 picks a free one, known before serving)
and runs them on one event loop (uvloop when installed) in a background thread, so a process
can serve a data plane and a control plane side by side and stop both on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from skiff.web.protocol import GuardedHttpToolsProtocol

__all__ = ["ServerGroup", "uvicorn_server"]


def uvicorn_server(app: Any, protocol: type[GuardedHttpToolsProtocol], *, keep_alive_s: float,
                   graceful_s: float = 5.0, lifespan: str = "off") -> Any:
    """A uvicorn server of ``app`` (not started).

    :param app: the ASGI app.
    :param protocol: the HTTP protocol class (:func:`skiff.web.protocol.guarded`).
    :param keep_alive_s: seconds an idle keep-alive connection stays open.
    :param graceful_s: seconds requests in progress get to finish at shutdown.
    :param lifespan: uvicorn's ``lifespan`` (``"on"`` when the app has one to run).
    :return: the ``uvicorn.Server``.
    """
    import uvicorn

    return uvicorn.Server(uvicorn.Config(
        app, http=protocol, loop="auto", lifespan=lifespan, access_log=False,
        server_header=False, timeout_keep_alive=keep_alive_s,
        timeout_graceful_shutdown=graceful_s, log_config=None))


class ServerGroup:
    """uvicorn servers bound now, served together on one event loop in a background thread.

    :param servers: ``(name, uvicorn server, host, port)`` each; port 0 picks a free one.
    :raises OSError: an address cannot be bound (in use, not local …).
    """

    def __init__(self, servers: list[tuple[str, Any, str, int]]) -> None:
        self.servers: dict[str, Any] = {}
        self.sockets: dict[str, socket.socket] = {}
        try:
            for name, server, host, port in servers:
                self.sockets[name] = socket.create_server((host, port))
                self.servers[name] = server
        except OSError:
            self.close_sockets()
            raise
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def address(self, name: str) -> tuple[str, int]:
        """``(host, port)`` a server listens on."""
        host, port = self.sockets[name].getsockname()[:2]
        return host, port

    def start(self, timeout: float = 10.0) -> ServerGroup:
        """Serve in a background thread; return once every server accepts connections.

        :param timeout: seconds to wait for them.
        :raises RuntimeError: a server did not start.
        """
        self._thread = threading.Thread(target=self._run, name="skiff-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self.servers.values()):
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"a server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the servers did not start within {timeout:g} s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        config = next(iter(self.servers.values())).config
        factory: Callable[[], asyncio.AbstractEventLoop] | None = config.get_loop_factory()
        loop = factory() if factory is not None else asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve_all())
        except BaseException as exc:  # noqa: BLE001  (reported by start/wait)
            self._error = exc
        finally:
            loop.close()

    async def _serve_all(self) -> None:
        await asyncio.gather(*(server.serve(sockets=[self.sockets[name]])
                               for name, server in self.servers.items()))

    def wait(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C (or SIGTERM, or a server stops), then stop every server.

        :param on_ready: called once they all accept connections.
        """
        import signal

        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            self.start()
            if on_ready is not None:
                on_ready()
            while not stop.is_set() and self._thread is not None and self._thread.is_alive():
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask every server to finish (requests in progress get ``graceful_s``) and wait."""
        for server in self.servers.values():
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.close_sockets()

    def close_sockets(self) -> None:
        """Release the bound ports."""
        for sock in self.sockets.values():
            sock.close()
