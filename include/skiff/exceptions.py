"""Skiff's exceptions.

The tree, so callers know what to catch::

    SkiffError
     ├── SkiffConfigError (also a ValueError)   a setting is invalid; the message names the env var
     └── DataContractError                       input data breaks the Coveo schema contract
          └── MissingInputError                  an expected input file or table is absent
"""

from __future__ import annotations

__all__ = ["SkiffError", "SkiffConfigError", "DataContractError", "MissingInputError"]


class SkiffError(Exception):
    """Base class of every error Skiff raises on purpose."""


class SkiffConfigError(SkiffError, ValueError):
    """A configuration value is invalid; the message says which variable to change."""


class DataContractError(SkiffError):
    """Input data does not match the contract (columns, types, values)."""


class MissingInputError(DataContractError):
    """An expected input (file, folder, table) does not exist."""
