"""CollectConfig: defaults under SKIFF_HOME, environment overrides, errors that name the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skiff.config import CollectConfig, SkiffConfig
from skiff.exceptions import SkiffConfigError


def test_defaults_live_under_skiff_home(skiff_home: Path) -> None:
    cfg = SkiffConfig.from_env().collect
    assert cfg.landing_uri == str(skiff_home / "landing")
    assert cfg.log_dir == skiff_home / "collector"
    assert (cfg.host, cfg.port) == ("127.0.0.1", 8070)
    assert (cfg.roll_seconds, cfg.roll_bytes, cfg.max_body_bytes) == (60.0, 5 << 20, 1 << 20)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in {"SKIFF_LANDING_URI": "s3://shop-landing/events",
                       "SKIFF_COLLECT_LOG_DIR": str(tmp_path / "log"),
                       "SKIFF_COLLECT_PORT": "9070", "SKIFF_COLLECT_ROLL_SECONDS": "0.5",
                       "SKIFF_COLLECT_ROLL_BYTES": "1000"}.items():
        monkeypatch.setenv(key, value)
    cfg = CollectConfig.from_env()
    assert cfg.landing_uri == "s3://shop-landing/events" and cfg.log_dir == tmp_path / "log"
    assert (cfg.port, cfg.roll_seconds, cfg.roll_bytes) == (9070, 0.5, 1000)
    monkeypatch.setenv("SKIFF_LANDING_URI", "relative/landing")
    assert CollectConfig.from_env().landing_uri == str(Path("relative/landing").resolve())


@pytest.mark.parametrize("env, message", [
    pytest.param({"SKIFF_COLLECT_PORT": "70000"},
                 "SKIFF_COLLECT_PORT=70000 must be within [0, 65535]", id="port"),
    pytest.param({"SKIFF_COLLECT_ROLL_SECONDS": "0"},
                 "SKIFF_COLLECT_ROLL_SECONDS=0.0 must be >= 0.001", id="roll-seconds"),
    pytest.param({"SKIFF_COLLECT_ROLL_BYTES": "0"}, "SKIFF_COLLECT_ROLL_BYTES=0 must be >= 1",
                 id="roll-bytes"),
    pytest.param({"SKIFF_COLLECT_MAX_BODY_BYTES": "lots"}, "is not an integer", id="body"),
    pytest.param({"SKIFF_LANDING_URI": "gs://bucket/x"}, "use a folder or s3://bucket/prefix",
                 id="scheme"),
])
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                        message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SkiffConfigError, match=re.escape(message)):
        CollectConfig.from_env()
