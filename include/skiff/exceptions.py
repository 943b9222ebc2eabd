"""Skiff's exceptions.

The tree, so callers know what to catch::

    SkiffError
     ├── SkiffConfigError (also a ValueError)   a setting is invalid; the message names the env var
     ├── DataContractError                       input data breaks the Coveo schema contract
     │    └── MissingInputError                  an expected input file or table is absent
     ├── DeliveryError                           the collector refused events, or stayed down too long
     ├── ServingError                            the model server or an endpoint failed
     │    └── ModelLoadError                     a model bundle cannot be loaded (never swapped in)
     └── RegistryError                           the champion registry is missing or inconsistent
"""

from __future__ import annotations

__all__ = [
    "SkiffError",
    "SkiffConfigError",
    "DataContractError",
    "MissingInputError",
    "DeliveryError",
    "ServingError",
    "ModelLoadError",
    "RegistryError",
]


class SkiffError(Exception):
    """Base class of every error Skiff raises on purpose."""


class SkiffConfigError(SkiffError, ValueError):
    """A configuration value is invalid; the message says which variable to change."""


class DataContractError(SkiffError):
    """Input data does not match the contract (columns, types, values)."""


class MissingInputError(DataContractError):
    """An expected input (file, folder, table) does not exist."""


class DeliveryError(SkiffError):
    """Events could not be delivered: the collector refused them, or was down past the give-up time."""


class ServingError(SkiffError):
    """The model server or an endpoint failed (not the caller's request)."""


class ModelLoadError(ServingError):
    """A model bundle could not be loaded or failed its warm-up; it was not swapped in."""


class RegistryError(SkiffError):
    """The champion registry is missing a record or holds an inconsistent one."""
