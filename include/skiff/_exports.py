"""Lazy re-exports for the stage packages' public faces (PEP 562).

A stage's ``__init__`` names what other stages may use; the module behind a name is
imported on first use, so ``import skiff.data`` stays cheap (no pandas, no TensorFlow).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose names live in its modules.

    :param package: the package's ``__name__``.
    :param exports: public name -> the module (relative to ``package``) that defines it.
    :return: the two module-level functions to assign in the package's ``__init__``.
    """

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
