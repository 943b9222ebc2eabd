"""``skiff serve``: the local model server and the ``GET /predict`` adapter in one process.

The embedded serving path: :class:`skiff.serve.ModelServer` (SageMaker's container contract,
loaded from the local control plane) and, in front of it, the API Gateway stand-in of
:mod:`skiff_api.local_adapter` calling the ``/predict`` handler with an in-process runtime
client (:class:`skiff.serve.LocalRuntimeClient`), so a request never leaves the process twice.
It lives here, not in ``skiff.serve``, because it needs both: ``skiff_api`` builds on
``skiff``, never the other way round.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from skiff.serve import EndpointStore, LocalRuntimeClient, ModelServer, configure_tensorflow

from skiff_api import handler
from skiff_api.local_adapter import make_server

__all__ = ["LocalStack", "serve_forever"]


def serve_forever(servers: Sequence[ThreadingHTTPServer],
                  on_ready: Callable[[], None] | None = None) -> None:
    """Run HTTP servers in threads until Ctrl-C, then shut them down.

    :param servers: bound servers.
    :param on_ready: called once they all accept connections.
    """
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    if on_ready:
        on_ready()
    try:
        while all(t.is_alive() for t in threads):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@dataclass
class LocalStack:
    """The embedded serving path in one process: model server + ``GET /predict`` adapter.

    :param models: the model server (endpoints loaded from the store and the command line).
    :param http: its HTTP face (``/ping``, ``/invocations``, ...).
    :param api: the ``/predict`` adapter, calling the Lambda handler with an in-process
        runtime client (None when not wanted).
    """

    models: ModelServer
    http: ThreadingHTTPServer
    api: ThreadingHTTPServer | None

    @classmethod
    def build(cls, config: Any, *, bundles: dict[str, str | Path] | None = None,
              store: EndpointStore | None = None, with_api: bool = True,
              port: int | None = None, api_port: int | None = None) -> LocalStack:
        """Load the recorded endpoints (and ``bundles``), bind both servers.

        :param config: a :class:`skiff.config.ServingConfig`.
        :param bundles: more endpoints to serve, ``{endpoint name: bundle folder}``.
        :param store: the local control plane; default ``$SKIFF_HOME/serving``.
        :param with_api: also bind the ``/predict`` adapter.
        :param port: model server port instead of the config's (0: a free one).
        :param api_port: adapter port instead of the config's (0: a free one).
        :return: the bound, not yet serving, stack.
        :raises ModelLoadError: a bundle of ``bundles`` does not load.
        """
        configure_tensorflow(config.tf_threads)
        models = ModelServer(max_batch=config.max_batch, batch_wait_ms=config.batch_wait_ms)
        models.load_store(store or EndpointStore())
        for name, path in (bundles or {}).items():
            models.deploy(name, path, "cli")
        http = models.http_server(config.host, config.port if port is None else port)
        api = None
        if with_api:
            env = {**os.environ, **config.lambda_environment()}
            api = make_server(
                config.host, config.api_port if api_port is None else api_port,
                client_factory=lambda: LocalRuntimeClient(models), settings=handler.Settings(env))
        return cls(models, http, api)

    @property
    def urls(self) -> dict[str, str]:
        """Base URLs: ``models`` and, with the adapter, ``api``."""
        host, port = self.http.server_address[:2]
        out = {"models": f"http://{host}:{port}"}
        if self.api is not None:
            host, port = self.api.server_address[:2]
            out["api"] = f"http://{host}:{port}"
        return out

    def start(self) -> LocalStack:
        """Serve in background threads (tests, benchmarks); :meth:`close` stops them."""
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
        return self

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C."""
        try:
            serve_forever(self._servers, on_ready)
        finally:
            self.models.close()

    def close(self) -> None:
        """Stop serving and release the ports."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self.models.close()

    @property
    def _servers(self) -> list[ThreadingHTTPServer]:
        return [self.http] + ([self.api] if self.api is not None else [])
