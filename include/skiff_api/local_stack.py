"""``skiff serve``: the model server's two planes and the ``GET /predict`` adapter in one process.

The embedded serving path: :class:`skiff.serve.ModelServer` (loaded from the local control
plane's store) behind three listeners on one uvicorn event loop:

- ``models``, the data plane (:mod:`skiff.serve.app`: SageMaker's container contract), on
  ``SKIFF_SERVE_HOST:SKIFF_SERVE_PORT``;
- ``control``, the control plane (:mod:`skiff.serve.control`: swaps, ``GET /endpoints``,
  bearer token), on ``SKIFF_SERVE_CONTROL_HOST:SKIFF_SERVE_CONTROL_PORT``;
- ``api``, the API Gateway stand-in of :mod:`skiff_api.local_adapter` calling the
  ``/predict`` handler with an in-process runtime client
  (:class:`skiff.serve.LocalRuntimeClient`), so a request never leaves the process twice,
  on ``SKIFF_SERVE_HOST:SKIFF_API_PORT``.

With ``SKIFF_PREDLOG_URL`` set, the model server logs every answer (both paths) to the
collector (:mod:`skiff.serve.predlog`).

It lives here, not in ``skiff.serve``, because it needs both: ``skiff_api`` builds on
``skiff``, never the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from skiff.serve import EndpointStore, LocalRuntimeClient, ModelServer, configure_tensorflow
from skiff.serve import app as data_plane
from skiff.serve import control
from skiff.serve.predlog import PredictionLog
from skiff.web.runner import ServerGroup
from skiff_api import handler, local_adapter

__all__ = ["LocalStack"]


@dataclass
class LocalStack:
    """The embedded serving path in one process: model server (two planes) + ``/predict`` adapter.

    :param models: the model server (endpoints loaded from the store and the command line).
    :param group: the bound listeners, by name: ``models``, ``control`` and, unless left out,
        ``api``.
    :param token: the control plane's bearer token.
    """

    models: ModelServer
    group: ServerGroup
    token: str

    @classmethod
    def build(cls, config: Any, *, bundles: dict[str, str | Path] | None = None,
              store: EndpointStore | None = None, with_api: bool = True,
              port: int | None = None, api_port: int | None = None,
              control_port: int | None = None) -> LocalStack:
        """Load the recorded endpoints (and ``bundles``), bind the listeners.

        :param config: a :class:`skiff.config.ServingConfig`.
        :param bundles: more endpoints to serve, ``{endpoint name: bundle folder}``.
        :param store: the local control plane's records; default ``$SKIFF_HOME/serving``.
        :param with_api: also bind the ``/predict`` adapter.
        :param port: data plane port instead of the config's (0: a free one).
        :param api_port: adapter port instead of the config's (0: a free one).
        :param control_port: control plane port instead of the config's (0: a free one).
        :return: the bound, not yet serving, stack.
        :raises ModelLoadError: a bundle of ``bundles`` does not load.
        :raises KindMismatch: a bundle of ``bundles`` is not of its endpoint's kind.
        :raises SkiffConfigError: the control-plane token is missing or too short.
        :raises OSError: a port cannot be bound.
        """
        config = replace(config, **{name: value for name, value in (
            ("port", port), ("api_port", api_port), ("control_port", control_port))
            if value is not None})
        token = control.control_token(config)
        configure_tensorflow(config.tf_threads)
        models = ModelServer(max_batch=config.max_batch, batch_wait_ms=config.batch_wait_ms,
                             predict_timeout_s=config.predict_timeout_s,
                             load_timeout_s=config.load_timeout_s,
                             predlog=PredictionLog.from_config(config))
        store = store or EndpointStore()
        models.load_store(store)
        for name, path in (bundles or {}).items():
            models.deploy(name, path, "cli")
        listeners = [
            ("models", data_plane.create_app(models, config), config.host, config.port),
            ("control", control.create_app(models, config, token,
                                           roots=control.model_roots(config, store)),
             config.control_host, config.control_port)]
        if with_api:
            env = {**os.environ, **config.lambda_environment()}
            api = local_adapter.create_app(client_factory=lambda: LocalRuntimeClient(models),
                                           settings=handler.Settings(env), config=config)
            listeners.append(("api", api, config.host, config.api_port))
        group = ServerGroup([(name, data_plane.serving_server(app, config), host, port)
                             for name, app, host, port in listeners])
        return cls(models, group, token)

    @property
    def urls(self) -> dict[str, str]:
        """Base URLs: ``models``, ``control`` and, with the adapter, ``api``."""
        return {name: "http://{}:{}".format(*self.group.address(name))
                for name in self.group.sockets}

    def port(self, name: str) -> int:
        """The port a listener (``models``, ``control``, ``api``) is bound to."""
        return self.group.address(name)[1]

    def start(self) -> LocalStack:
        """Serve in a background thread (tests, benchmarks); :meth:`close` stops it."""
        self.group.start()
        return self

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM.

        :param on_ready: called once every listener accepts connections.
        """
        try:
            self.group.wait(on_ready)
        finally:
            self.models.close()

    def close(self) -> None:
        """Stop serving and release the ports."""
        self.group.stop()
        self.models.close()
