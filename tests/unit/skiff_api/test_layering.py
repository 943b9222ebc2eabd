"""``skiff_api`` builds on ``skiff``, never the other way round (no loop, nothing loaded by path).

The one exception is ``skiff.cli``: the ``skiff serve`` command wires the model server to the
``/predict`` adapter (:mod:`skiff_api.local_stack`), the application over both packages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from import_graph import imported_modules

INCLUDE = Path(__file__).resolve().parents[3] / "include"



def _top(name: str) -> str:
    return name.split(".")[0]


def test_skiff_imports_skiff_api_only_in_the_cli() -> None:
    importers = sorted(str(path.relative_to(INCLUDE)) for path in (INCLUDE / "skiff").rglob("*.py")
                       if any(_top(m) == "skiff_api" for m in imported_modules(path)))
    assert importers == ["skiff/cli.py"]


@pytest.mark.parametrize("folder", ["skiff", "skiff_api"])
def test_nothing_is_loaded_by_file_path(folder: str) -> None:
    loaders = [str(path.relative_to(INCLUDE)) for path in (INCLUDE / folder).rglob("*.py")
               if "spec_from_file_location" in path.read_text()]
    assert loaders == []


def test_the_handler_needs_the_standard_library_boto3_and_the_gateway_only() -> None:
    outside = {m for m in imported_modules(INCLUDE / "skiff_api" / "handler.py")
               if _top(m) not in sys.stdlib_module_names}
    assert outside <= {"boto3", "botocore", "botocore.config", "skiff_api.gateway"}, outside
    gateway = {m for m in imported_modules(INCLUDE / "skiff_api" / "gateway.py")
               if _top(m) not in sys.stdlib_module_names}
    assert gateway == set(), gateway
    assert imported_modules(INCLUDE / "skiff_api" / "__init__.py") == set()
