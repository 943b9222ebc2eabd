"""ServingConfig: defaults, environment overrides, errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.config import ServingConfig, SkiffConfig
from skiff.exceptions import SkiffConfigError
from skiff_api import handler

AWS = {"SKIFF_SERVING": "sagemaker", "SKIFF_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sm",
       "SKIFF_ARTIFACT_BUCKET": "skiff-artifacts"}


def test_defaults_are_the_local_backend(skiff_home: Path) -> None:
    cfg = SkiffConfig.from_env().serving
    assert cfg.backend == "local" and cfg.registry == str(skiff_home / "registry")
    assert cfg.endpoint("rec") == "skiff-rec" and cfg.endpoint("intent") == "skiff-intent"
    assert cfg.gate_metric("rec") == "mrr@20" and cfg.gate_metric("intent") == "roc_auc"
    assert cfg.local_url == "http://127.0.0.1:8080" and cfg.api_port == 8000
    assert cfg.image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.19-cpu"


def test_sagemaker_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**AWS, "SKIFF_AWS_REGION": "eu-west-1", "SKIFF_ENDPOINT_NAME": "shop",
                       "SKIFF_ARTIFACT_PREFIX": "/ml/", "SKIFF_GATE_MARGIN": "0.01",
                       "SKIFF_SERVE_MAX_BATCH": "8"}.items():
        monkeypatch.setenv(key, value)
    cfg = ServingConfig.from_env()
    assert cfg.registry == "s3://skiff-artifacts/ml/registry"
    assert cfg.image.startswith("763104351884.dkr.ecr.eu-west-1.")
    assert cfg.endpoint("rec") == "shop-rec" and cfg.gate_margin == 0.01 and cfg.max_batch == 8


def test_model_roots_are_folders_separated_like_path(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.delenv("SKIFF_SERVE_MODEL_ROOTS", raising=False)
    assert ServingConfig.from_env().model_roots == ()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKIFF_SERVE_MODEL_ROOTS", "/srv/bundles: ::rel/models/../b")
    assert ServingConfig.from_env().model_roots == (Path("/srv/bundles"), tmp_path / "rel" / "b")


def test_lambda_environment_is_what_the_handler_reads() -> None:
    cfg = ServingConfig(endpoint_name="shop", max_tokens=50, top_k=7, region="eu-west-1")
    settings = handler.Settings(cfg.lambda_environment())
    assert (settings.endpoint("rec"), settings.max_tokens, settings.top_k, settings.region) == \
        ("shop-rec", 50, 7, "eu-west-1")
    cfg = ServingConfig(predict_connect_timeout=0.5, predict_read_timeout=4.0, predict_attempts=3)
    settings = handler.Settings(cfg.lambda_environment())
    assert (settings.connect_timeout, settings.read_timeout, settings.attempts) == (0.5, 4.0, 3)
    # the handler's own defaults (a Lambda deployed without these variables) are the config's
    default, bare = ServingConfig(), handler.Settings({})
    assert (bare.connect_timeout, bare.read_timeout, bare.attempts, bare.max_tokens, bare.top_k) \
        == (default.predict_connect_timeout, default.predict_read_timeout,
            default.predict_attempts, default.max_tokens, default.top_k)


@pytest.mark.parametrize(("env", "match"), [
    pytest.param({"SKIFF_SERVING": "kserve"}, "SKIFF_SERVING", id="unknown-backend"),
    pytest.param({"SKIFF_SERVING": "sagemaker"}, "SKIFF_SAGEMAKER_ROLE_ARN, SKIFF_ARTIFACT_BUCKET",
                 id="sagemaker-needs-role-and-bucket"),
    pytest.param({**AWS, "SKIFF_SAGEMAKER_ROLE_ARN": "sm-role"}, "must be a role ARN",
                 id="role-not-an-arn"),
    pytest.param({"SKIFF_ENDPOINT_NAME": "my_endpoint"}, "SKIFF_ENDPOINT_NAME", id="bad-name"),
    pytest.param({"SKIFF_SERVE_PORT": "70000"}, "SKIFF_SERVE_PORT", id="bad-port"),
    pytest.param({"SKIFF_PREDICT_TOP_K": "0"}, "SKIFF_PREDICT_TOP_K", id="top-k-zero"),
    pytest.param({"SKIFF_GATE_MARGIN": "-0.1"}, "SKIFF_GATE_MARGIN", id="negative-margin"),
])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                      match: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SkiffConfigError, match=match):
        ServingConfig.from_env()
    with pytest.raises(SkiffConfigError, match="model='ranker'"):
        ServingConfig().endpoint("ranker")
