"""Hook giving Airflow tasks Skiff's warehouse (DuckDB file or Snowflake connection)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

if TYPE_CHECKING:
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    from skiff.config import WarehouseConfig
    from skiff.data import Warehouse

__all__ = ["SkiffWarehouseHook"]


class SkiffWarehouseHook(BaseHook):
    """Build the :class:`skiff.data.warehouse.Warehouse` the configuration names.

    DuckDB needs no connection; Snowflake uses the Airflow connection
    ``snowflake_conn_id`` through the Snowflake provider's hook, so credentials stay in
    Airflow. A process this task starts outside Airflow (a training flow) gets the
    resolved connection from :meth:`connect_env`, never the connection's format.

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
        return SnowflakeWarehouse(self.snowflake.get_conn, self.config.raw_schema)

    @cached_property
    def snowflake(self) -> SnowflakeHook:
        """The Snowflake provider's hook on ``snowflake_conn_id``."""
        from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

        return SnowflakeHook(snowflake_conn_id=self.config.snowflake_conn_id)

    def snowflake_params(self) -> dict[str, Any]:
        """``snowflake.connector.connect`` arguments of ``snowflake_conn_id``, as the provider
        resolves them for its own ``get_conn`` (login, extras, key pair, OAuth token)."""
        # the provider's one resolution of a connection into connector arguments; public
        # get_conn() is exactly connect(**_get_conn_params()) (provider pinned in requirements)
        return self.snowflake._get_conn_params()

    def connect_env(self) -> dict[str, str]:
        """Environment giving a process outside Airflow this warehouse's connection.

        On Snowflake ``SKIFF_SNOWFLAKE_CONNECT`` (the connector arguments as JSON, read by
        :func:`skiff.data.warehouse.snowflake_params_from_env`); nothing on DuckDB, whose file
        the process finds from the configuration. The value holds credentials: pass it to
        the child process only, never log it or hand it to a trigger (triggers are stored).
        """
        if self.config.backend == "duckdb":
            return {}
        from skiff.data import snowflake_connect_env

        return snowflake_connect_env(self.snowflake_params())

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
