"""Hook for the local model server: its control plane (endpoint configs, swaps) and its runtime.

The server has two listeners (``skiff.serve.app``, ``skiff.serve.control``): the data plane
(``/ping``, invocations; ``SKIFF_SERVE_HOST:SKIFF_SERVE_PORT``) and the control plane
(swaps; ``SKIFF_SERVE_CONTROL_HOST:SKIFF_SERVE_CONTROL_PORT``), which wants
``Authorization: Bearer <token>``. The token comes from the Airflow connection
``skiff_model_server`` (its password; its host and port, when set, are the control plane's
address), else from the serving settings (``SKIFF_SERVE_TOKEN``, else the file
``SKIFF_SERVE_TOKEN_FILE``, as the server reads it).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from skiff.config import ServingConfig
    from skiff.serve import EndpointRecord, EndpointStore

__all__ = ["LocalModelServerHook", "LocalDeployFailed"]


class LocalDeployFailed(RuntimeError):
    """The model did not load (or the server refused it); the endpoint serves what it did."""


class LocalModelServerHook(BaseHook):
    """Deploy to, roll back and invoke the local model server (``skiff serve``).

    The local twin of SageMaker's control plane: an endpoint config is a bundle copied into
    ``$SKIFF_HOME/serving``, an endpoint points at one config
    (:class:`skiff.serve.store.EndpointStore`).
    When a server is running at ``base_url`` it swaps the model in at once (and refuses a
    model that does not load); when none is running, the model is loaded here once to
    prove it works, and the server picks the endpoint up when it starts.

    :param config: serving settings; default :meth:`ServingConfig.from_env`.
    :param base_url: the data plane's URL; default ``http://<SKIFF_SERVE_HOST>:<SKIFF_SERVE_PORT>``.
    :param store_root: the local control plane's folder; default ``$SKIFF_HOME/serving``. A
        running server swaps in only folders under its own store's ``models`` (or its
        ``SKIFF_SERVE_MODEL_ROOTS``), so this must be the folder the server loads (the same
        ``SKIFF_HOME``, as in Docker's shared volume); elsewhere it answers 403.
    :param timeout: HTTP timeout toward the server, in seconds (a swap loads a model).
    :param conn_id: the Airflow connection holding the control plane's token (password) and,
        optionally, its host and port; when it does not exist, the serving settings give both.
    :param control_url: the control plane's URL; default the connection's host and port, else
        ``http://<SKIFF_SERVE_CONTROL_HOST>:<SKIFF_SERVE_CONTROL_PORT>``.
    """

    default_conn_name = "skiff_model_server"
    conn_name_attr = "conn_id"
    conn_type = "http"
    hook_name = "Skiff local model server"

    def __init__(self, config: ServingConfig | None = None, base_url: str | None = None,
                 store_root: str | Path | None = None, timeout: float | None = None,
                 conn_id: str = default_conn_name, control_url: str | None = None) -> None:
        super().__init__()
        from skiff.config import ServingConfig

        self.config = config or ServingConfig.from_env()
        self.base_url = (base_url or self.config.local_url).rstrip("/")
        self.store_root = store_root
        # a swap loads a model: wait out the server's own load limit, which then answers 504
        self.timeout = timeout or self.config.load_timeout_s + 30
        self.conn_id = conn_id
        self._control_url = control_url

    @cached_property
    def _control(self) -> tuple[str, str]:
        """The control plane's URL and token: the connection's, else the serving settings'."""
        from skiff.serve import control_token

        try:
            conn = self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            conn = None
        url = self._control_url
        if url is None and conn is not None and conn.host:
            url = f"http://{conn.host}:{conn.port or self.config.control_port}"
        url = (url or self.config.control_url).rstrip("/")
        if conn is not None and conn.password:
            return url, conn.password
        return url, control_token(self.config)

    @property
    def control_url(self) -> str:
        """The control plane's base URL."""
        return self._control[0]

    @cached_property
    def store(self) -> EndpointStore:
        from skiff.serve import EndpointStore

        return EndpointStore(self.store_root)

    # -- HTTP toward a running server --------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 timeout: float | None = None, control: bool = False
                 ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        base = self.base_url
        if control:
            base, token = self._control
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"{}")
            except ValueError:
                return error.code, {"message": error.reason}

    def is_running(self) -> bool:
        """Whether a model server answers at ``base_url`` (healthy or not)."""
        try:
            self._request("GET", "/ping", timeout=2)
        except (urllib.error.URLError, OSError):
            return False
        return True

    # -- control plane -----------------------------------------------------------------------

    def endpoint(self, endpoint_name: str) -> EndpointRecord | None:
        """The endpoint's record (None before its first deploy)."""
        return self.store.endpoint(endpoint_name)

    def served(self, endpoint_name: str) -> dict[str, Any] | None:
        """What the running server says the endpoint serves (``GET /endpoints`` of its control
        plane): ``endpoint_config_name``, ``model_version`` ...; None when no server runs or it
        has no such endpoint.

        :raises LocalDeployFailed: the control plane refused the token or did not answer.
        """
        if not self.is_running():
            return None
        try:
            status, answer = self._request("GET", "/endpoints", control=True, timeout=10)
        except (urllib.error.URLError, OSError) as exc:
            raise LocalDeployFailed(f"The model server's control plane at {self.control_url} "
                                    f"is not reachable ({exc}).") from exc
        if status != 200:
            raise LocalDeployFailed(f"GET /endpoints at {self.control_url} answered {status}: "
                                    f"{answer.get('message')}")
        return next((e for e in answer.get("endpoints", [])
                     if e.get("endpoint_name") == endpoint_name), None)

    def deploy(self, endpoint_name: str, model_dir: str | Path, config_name: str) -> dict[str, Any]:
        """Create endpoint config ``config_name`` from a bundle and point the endpoint at it.

        :return: ``{"endpoint_name", "endpoint_config_name", "previous_endpoint_config_name",
            "model_dir", "model_version", "swapped"}``; ``swapped`` says whether a running
            server took the model at once.
        :raises LocalDeployFailed: the model does not load; the endpoint is unchanged.
        """
        config = self.store.create_config(config_name, model_dir)
        return self._point(endpoint_name, config_name, config["model_dir"])

    def rollback(self, endpoint_name: str, config_name: str) -> dict[str, Any]:
        """Point the endpoint back at an existing config (and swap it in a running server).

        :raises LocalDeployFailed: that config's model no longer loads.
        """
        config = self.store.config(config_name)
        return self._point(endpoint_name, config_name, config["model_dir"])

    def _point(self, endpoint_name: str, config_name: str, model_dir: str) -> dict[str, Any]:
        before = self.store.endpoint(endpoint_name)
        swapped = False
        if self.is_running():
            try:
                status, answer = self._request("POST", f"/endpoints/{endpoint_name}/model",
                                               {"model_dir": model_dir,
                                                "config_name": config_name}, control=True)
            except (urllib.error.URLError, OSError) as exc:
                raise LocalDeployFailed(f"The model server's control plane at {self.control_url} "
                                        f"is not reachable ({exc}); set SKIFF_SERVE_CONTROL_HOST/"
                                        f"_PORT or the {self.conn_id} connection.") from exc
            if status == 401:
                raise LocalDeployFailed(f"The model server at {self.control_url} refused the "
                                        f"control-plane token: give it the server's "
                                        f"SKIFF_SERVE_TOKEN (the {self.conn_id} connection's "
                                        "password, or the same SKIFF_SERVE_TOKEN / _FILE).")
            if status != 200:
                raise LocalDeployFailed(f"The model server at {self.control_url} refused "
                                        f"{model_dir} for {endpoint_name} ({status}): "
                                        f"{answer.get('message')}")
            swapped = True
        else:
            from skiff.exceptions import ModelLoadError
            from skiff.serve import LoadedModel

            self.log.info("No model server at %s: loading %s here to check it.", self.base_url,
                          model_dir)
            try:
                LoadedModel.load(model_dir)
            except ModelLoadError as exc:
                raise LocalDeployFailed(str(exc)) from exc
        record = self.store.set_endpoint(endpoint_name, config_name)
        self.log.info("Endpoint %s -> %s (%s), was %s; %s.", endpoint_name, config_name,
                      record.model_version, before.endpoint_config_name if before else None,
                      "swapped in the running server" if swapped else "served at the next start")
        return {"endpoint_name": endpoint_name, "endpoint_config_name": config_name,
                "previous_endpoint_config_name": before.endpoint_config_name if before else None,
                "model_dir": model_dir, "model_version": record.model_version,
                "swapped": swapped}

    # -- runtime -----------------------------------------------------------------------------

    def runtime_client(self) -> Any:
        """A ``sagemaker-runtime``-like client for the endpoints.

        boto3's client toward the running server (the real contract), or, when no server
        runs, an in-process :class:`skiff.serve.client.LocalRuntimeClient` over the recorded
        endpoints.
        """
        if self.is_running():
            import boto3
            import botocore
            from botocore.config import Config

            return boto3.client("sagemaker-runtime", endpoint_url=self.base_url,
                                region_name=self.config.region,
                                config=Config(signature_version=botocore.UNSIGNED,
                                              retries={"max_attempts": 1}))
        from skiff.serve import LocalRuntimeClient, ModelServer

        server = ModelServer(max_batch=1)
        server.load_store(self.store)
        return LocalRuntimeClient(server)
