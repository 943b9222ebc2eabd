"""The local control plane's records: endpoint configs (bundle copies) and endpoints, as JSON files.

The local twin of SageMaker's endpoint configs and endpoints, kept as JSON files in
``$SKIFF_HOME/serving`` so a restarted ``skiff serve`` and a deploy task agree.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.exceptions import ServingError
from skiff.serve.bundle import read_bundle_meta

__all__ = ["EndpointRecord", "EndpointStore"]


@dataclass(frozen=True)
class EndpointRecord:
    """What a local endpoint serves: the local twin of SageMaker's endpoint + endpoint config.

    :param endpoint_name: the endpoint.
    :param endpoint_config_name: the config it serves now.
    :param model_dir: the bundle of that config.
    :param model_version: the bundle's version.
    :param previous_config_name: the config served before (what a rollback returns to).
    :param updated_at: when the record last changed (ISO 8601).
    """

    endpoint_name: str
    endpoint_config_name: str
    model_dir: str
    model_version: str
    previous_config_name: str | None = None
    updated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class EndpointStore:
    """Endpoint configs and endpoints of the local backend, as JSON files.

    ``<root>/configs/<config>.json`` holds a config (its bundle, copied under
    ``<root>/models/<config>/`` so cleaning a flow's output never breaks serving);
    ``<root>/endpoints/<endpoint>.json`` names the config each endpoint serves. Writes are
    atomic (temporary file + rename).

    :param root: the store folder, default ``$SKIFF_HOME/serving``.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        from skiff.config import skiff_home

        self.root = Path(root) if root else skiff_home() / "serving"

    @property
    def models_root(self) -> Path:
        """The folder of the configs' bundle copies, ``<root>/models`` (the model server's
        control plane loads from under it)."""
        return self.root / "models"

    def _write(self, path: Path, doc: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)

    def create_config(self, config_name: str, model_dir: str | Path) -> dict[str, Any]:
        """Copy a bundle into the store and record it as endpoint config ``config_name``.

        :param config_name: a new config name.
        :param model_dir: the bundle folder.
        :return: the config record.
        :raises ModelLoadError: ``model_dir`` is not a bundle.
        :raises ServingError: the config already exists.
        """
        meta = read_bundle_meta(model_dir)
        target = self.models_root / config_name
        if (self.root / "configs" / f"{config_name}.json").exists():
            raise ServingError(f"Endpoint config {config_name!r} already exists in {self.root}.")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target)
        doc = {"endpoint_config_name": config_name, "model_dir": str(target),
               "model_version": meta["version"], "kind": meta["kind"],
               "source": str(model_dir), "created_at": datetime.now(UTC).isoformat()}
        self._write(self.root / "configs" / f"{config_name}.json", doc)
        return doc

    def config(self, config_name: str) -> dict[str, Any]:
        """A config record.

        :raises ServingError: there is no such config.
        """
        try:
            return json.loads((self.root / "configs" / f"{config_name}.json").read_text())
        except FileNotFoundError:
            raise ServingError(f"No endpoint config {config_name!r} in {self.root}.") from None

    def endpoint(self, endpoint_name: str) -> EndpointRecord | None:
        """The record of an endpoint, None if it was never deployed."""
        path = self.root / "endpoints" / f"{endpoint_name}.json"
        if not path.exists():
            return None
        return EndpointRecord(**json.loads(path.read_text()))

    def endpoints(self) -> Iterable[EndpointRecord]:
        """Every endpoint record, by name."""
        for path in sorted((self.root / "endpoints").glob("*.json")):
            yield EndpointRecord(**json.loads(path.read_text()))

    def set_endpoint(self, endpoint_name: str, config_name: str) -> EndpointRecord:
        """Point an endpoint at a config (create or update), remembering the previous one.

        :return: the new record.
        :raises ServingError: the config does not exist.
        """
        config = self.config(config_name)
        current = self.endpoint(endpoint_name)
        previous = current.endpoint_config_name if current else None
        if previous == config_name:
            previous = current.previous_config_name if current else None
        record = EndpointRecord(endpoint_name, config_name, config["model_dir"],
                                config["model_version"], previous)
        self._write(self.root / "endpoints" / f"{endpoint_name}.json", record.__dict__)
        return record
