"""Fixtures of the e2e runs on the bad-batch corpus: its generated source, and the alerts sent."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from bad_batches import make_source


@pytest.fixture(scope="module")
def source(tmp_path_factory, airflow_db) -> Path:
    """The corpus's generated source data (one per test module)."""
    return make_source(tmp_path_factory.mktemp("source"))


class _Alerts(logging.Handler):
    """Keeps the text of every record logged to ``skiff.alerts``."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


@pytest.fixture
def alerts() -> Iterator[list[str]]:
    """The alerts' texts, as the logged-alert backend (``skiff.alerts``) sends them."""
    handler = _Alerts()
    logger = logging.getLogger("skiff.alerts")
    logger.addHandler(handler)
    yield handler.texts
    logger.removeHandler(handler)
