"""Set environment variables for a block of test code, restoring them after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set inside the block (pytest's monkeypatch, as a context)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        yield
