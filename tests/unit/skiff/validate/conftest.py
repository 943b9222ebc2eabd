"""What the validate stage's unit tests share: the configuration, the suite files, one window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skiff.config import SkiffConfig
from skiff.validate.parameters import ValidationWindow, VolumeReference, suite_parameters
from skiff.validate.suites import SUITES, SuiteSpec

START = datetime(2026, 11, 20, 11, tzinfo=UTC)
END = START + timedelta(hours=1)
NOW = datetime(2026, 11, 25, 8, tzinfo=UTC)


@pytest.fixture(scope="session")
def window() -> ValidationWindow:
    """The interval 2026-11-20 11:00 .. 12:00 UTC, validated five days later."""
    return ValidationWindow(START, END, NOW)


@pytest.fixture(scope="session")
def config() -> SkiffConfig:
    return SkiffConfig()


@pytest.fixture(scope="session")
def specs(config: SkiffConfig) -> dict[str, SuiteSpec]:
    return {name: SuiteSpec.load(name, config.validation.suites_dir) for name in SUITES}


@pytest.fixture(scope="session")
def params(config: SkiffConfig, window: ValidationWindow) -> Callable[..., dict[str, Any]]:
    """``suite_parameters`` of the window, by default with 24 hours of 1,000 events each."""

    def make(cfg: SkiffConfig = config, volume: VolumeReference | None = VolumeReference(24, 1000.0),
             win: ValidationWindow = window) -> dict[str, Any]:
        return suite_parameters(cfg, win, volume)

    return make
