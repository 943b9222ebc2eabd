"""``skiff serve``: the model server and the ``GET /predict`` adapter in one process.

:class:`LocalStack` loads the recorded endpoints, binds the model server (SageMaker's
container contract) and the adapter in front of the Lambda handler, which reaches the
models through an in-process :class:`~skiff.serve.client.LocalRuntimeClient`.
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

from skiff.exceptions import ServingError
from skiff.serve.client import LocalRuntimeClient
from skiff.serve.model import configure_tensorflow
from skiff.serve.server import ModelServer
from skiff.serve.store import EndpointStore

__all__ = ["LocalStack", "load_local_adapter", "serve_forever"]


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


def load_local_adapter() -> Any:
    """``include/lambda/local_adapter.py`` (the Lambda code is no package: it ships as a zip)."""
    import importlib.util
    import sys

    from skiff.config import REPO_ROOT

    name = "skiff_lambda_local_adapter"
    if name not in sys.modules:
        path = REPO_ROOT / "include" / "lambda" / "local_adapter.py"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ServingError(f"The /predict adapter is missing: {path}.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


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
            adapter = load_local_adapter()
            handler = adapter.load_handler()
            env = {**os.environ, **config.lambda_environment()}
            api = adapter.make_server(
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
