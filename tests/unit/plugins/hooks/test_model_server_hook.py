"""LocalModelServerHook's control-plane address and token: the connection, else the settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hooks.model_server import LocalDeployFailed, LocalModelServerHook
from skiff.config import ServingConfig


@pytest.fixture
def config(tmp_path: Path) -> ServingConfig:
    return ServingConfig(control_host="127.0.0.1", control_port=8079,
                         token_file=tmp_path / "serving" / "control.token")


def test_token_and_address_from_the_connection(config: ServingConfig,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SKIFF_MODEL_SERVER", json.dumps(
        {"conn_type": "http", "host": "model-server", "port": 9079,
         "password": "from-the-connection-0123456789"}))
    hook = LocalModelServerHook(config)
    assert hook._control == ("http://model-server:9079", "from-the-connection-0123456789")
    assert not Path(config.token_file).exists()  # nothing generated


def test_without_a_connection_the_settings_token_then_the_file(
        config: ServingConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SKIFF_MODEL_SERVER", raising=False)
    from dataclasses import replace

    with_env = LocalModelServerHook(replace(config, token="from-the-environment-0123"))
    assert with_env._control == ("http://127.0.0.1:8079", "from-the-environment-0123")
    from_file = LocalModelServerHook(config)
    url, token = from_file._control
    assert url == "http://127.0.0.1:8079" and len(token) >= 40  # generated once, 0600
    assert Path(config.token_file).read_text().strip() == token
    assert Path(config.token_file).stat().st_mode & 0o777 == 0o600
    assert LocalModelServerHook(config)._control[1] == token  # read back, not regenerated


def test_a_short_token_is_refused(config: ServingConfig,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from skiff.exceptions import SkiffConfigError
    from skiff.serve import control_token

    with pytest.raises(SkiffConfigError, match="at least 16"):
        control_token(replace(config, token="short"))


def test_a_wrong_token_fails_the_deploy_naming_the_remedy(
        config: ServingConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running server refusing the token: LocalDeployFailed says where the token comes from."""
    monkeypatch.delenv("AIRFLOW_CONN_SKIFF_MODEL_SERVER", raising=False)
    from dataclasses import replace

    from serving_models import rec_bundle
    from skiff.serve import EndpointStore
    from skiff_api.local_stack import LocalStack

    bundle = rec_bundle(tmp_path / "rec")
    server_config = replace(config, token="the-servers-token-0123456789")
    stack = LocalStack.build(server_config, store=EndpointStore(tmp_path / "store"), port=0,
                             control_port=0, with_api=False).start()
    try:
        client = replace(config, port=stack.port("models"), control_port=stack.port("control"),
                         token="another-token-0123456789")
        hook = LocalModelServerHook(client, store_root=tmp_path / "store")
        with pytest.raises(LocalDeployFailed, match="refused the control-plane token"):
            hook.deploy("skiff-rec", bundle, "cfg-1")
        assert "skiff-rec" not in stack.models.endpoints
    finally:
        stack.close()
