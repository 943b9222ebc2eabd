"""Hook giving Airflow tasks Skiff's warehouse (DuckDB file or Snowflake connection)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow.sdk.bases.hook import BaseHook

if TYPE_CHECKING:
    from skiff.config import WarehouseConfig
    from skiff.data import Warehouse

__all__ = ["SkiffWarehouseHook"]


class SkiffWarehouseHook(BaseHook):
    """Build the :class:`skiff.data.warehouse.Warehouse` the configuration names.

    DuckDB needs no connection; Snowflake uses the Airflow connection
    ``snowflake_conn_id`` through the Snowflake provider's hook, so credentials stay in
    Airflow.

    :param config: warehouse settings; default :meth:`WarehouseConfig.from_env`.
    """

    conn_name_attr = "snowflake_conn_id"
    default_conn_name = "snowflake_default"
    hook_name = "Skiff warehouse"

    def __init__(self, config: WarehouseConfig | None = None) -> None:
        super().__init__()
        from skiff.config import WarehouseConfig

        self.config = config or WarehouseConfig.from_env()

    @cached_property
    def warehouse(self) -> Warehouse:
        from skiff.data import DuckDBWarehouse, SnowflakeWarehouse

        if self.config.backend == "duckdb":
            return DuckDBWarehouse(self.config.duckdb_path, self.config.raw_schema)
        from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

        snowflake = SnowflakeHook(snowflake_conn_id=self.config.snowflake_conn_id)
        return SnowflakeWarehouse(snowflake.get_conn, self.config.raw_schema)

    @staticmethod
    def release_dbt_duckdb() -> None:
        """Close the DuckDB database dbt-duckdb keeps open in this process after a dbt run.

        Cosmos runs dbt in the task's process, and dbt-duckdb caches its database handle
        (with the file lock) at class level. When several tasks share one process
        (``airflow dags test``, ``dag.test()``), a later step in another process (a Metaflow
        flow) could not open the file. A no-op when dbt-duckdb holds nothing.
        """
        try:
            from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        except ImportError:
            return
        with DuckDBConnectionManager._LOCK:
            if DuckDBConnectionManager._ENV is not None:
                DuckDBConnectionManager._ENV.close()
                DuckDBConnectionManager._ENV = None
