"""Write the Skiff page's snapshot: the monitoring marts' recent hours and the registry.

skiff_monitor's checks of the marts are :class:`operators.validate.MonitorValidateOperator`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from hooks.model_registry import ModelRegistryHook
from hooks.warehouse import SkiffWarehouseHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from skiff.config import SkiffConfig

__all__ = ["MonitorSnapshotOperator", "read_only_records"]

def read_only_records(path: Any, wait_s: float, log: Any) -> Callable[[str], list[tuple]]:
    """Query a DuckDB file read-only, waiting up to ``wait_s`` for its writer's lock.

    DuckDB admits one writing process; while skiff_hourly writes, opening the file fails
    at once with a lock error. The query is retried every 2 s meanwhile.
    """
    import duckdb

    def records(sql: str) -> list[tuple]:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with duckdb.connect(str(path), read_only=True) as con:
                    return con.execute(sql).fetchall()
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                log.info("The warehouse is being written; reading again in 2 s (%s)", exc)
                time.sleep(2)

    return records


class MonitorSnapshotOperator(BaseOperator):
    """Write the Skiff page's snapshot: the monitoring marts' recent hours and the registry.

    Reads the monitoring marts (:func:`skiff.monitor.build_snapshot`; on DuckDB read-only,
    waiting for skiff_hourly's writes) and the champion registry (champions, promotions,
    gate decisions), and writes ``$SKIFF_MONITOR_DIR/snapshot.json`` atomically: the page in
    the api-server reads only that file, never the warehouse.

    :param lock_wait_s: seconds to wait for DuckDB's writer, in seconds. Default 120.
    :return: ``{"path", "errors", "breaches"}``: the file, the marts not read, and the
        breaches by model.
    """

    ui_color = "#e7f5ff"

    def __init__(self, *, lock_wait_s: float = 120, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if lock_wait_s < 0:
            raise ValueError(f"lock_wait_s={lock_wait_s} must be >= 0")
        self.lock_wait_s = lock_wait_s

    @cached_property
    def config(self) -> SkiffConfig:
        from skiff.config import SkiffConfig

        return SkiffConfig.from_env()

    @cached_property
    def registry_hook(self) -> ModelRegistryHook:
        return ModelRegistryHook(self.config.serving)

    @cached_property
    def warehouse_hook(self) -> SkiffWarehouseHook:
        return SkiffWarehouseHook(self.config.warehouse)

    def records(self) -> Callable[[str], list[tuple]]:
        """The query function of the warehouse (DuckDB: read-only, waiting for the writer)."""
        wh = self.config.warehouse
        if wh.backend == "duckdb":
            return read_only_records(wh.duckdb_path, self.lock_wait_s, self.log)
        return self.warehouse_hook.warehouse.records

    def execute(self, context: Context) -> dict[str, Any]:
        from skiff.monitor import build_snapshot, write_snapshot

        doc = build_snapshot(self.records(), self.registry_hook.registry, self.config.monitor,
                             schema=self.config.warehouse.marts_schema)
        path = write_snapshot(doc, self.config.monitor.snapshot_dir)
        for error in doc["errors"]:
            self.log.warning("Not in the snapshot: %s", error)
        found = {m: part["breaches"] for m, part in doc["models"].items()}
        for model, lines in found.items():
            for line in lines:
                self.log.warning("%s: %s", model, line)
        self.log.info("Wrote the Skiff page's snapshot %s (%d breaches).", path,
                      sum(map(len, found.values())))
        return {"path": str(path), "errors": doc["errors"], "breaches": found}
