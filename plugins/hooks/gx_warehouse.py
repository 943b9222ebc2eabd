"""Hook giving the validate stage its data: the rows a suite checks, on Skiff's warehouse."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

from hooks.warehouse import SkiffWarehouseHook

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

    from skiff.config import SkiffConfig, WarehouseConfig
    from skiff.data import Warehouse
    from skiff.validate import SuiteSpec, ValidationWindow
    from skiff.validate.whole_log import RangeResult

__all__ = ["GXWarehouseHook"]


class GXWarehouseHook(BaseHook):
    """Point Great Expectations at the rows a suite validates, on the configured warehouse.

    The same batch SQL runs on either backend:

    * **DuckDB** (embedded default): the SQL runs through Skiff's warehouse and GX validates
      the resulting pandas DataFrame (a GX SQL datasource on DuckDB does not work, see
      ``STACK.md``). The frame holds one data interval's slice, so its size follows the
      hour, not the log.
    * **Snowflake**: GX's own Snowflake datasource runs the SQL as a query asset, through
      the Airflow connection ``snowflake_conn_id``; no rows leave the warehouse except
      GX's metrics and examples.

    A range too long for a DataFrame (a full refresh's whole log) is validated inside DuckDB
    instead (:meth:`validate_in_warehouse`): GX's metrics computed by SQL, judged by GX.

    :param config: warehouse settings; default :meth:`WarehouseConfig.from_env`.
    """

    conn_name_attr = "snowflake_conn_id"
    default_conn_name = "snowflake_default"
    conn_type = "snowflake"
    hook_name = "Skiff GX warehouse"

    #: GX datasource name, per backend.
    DATASOURCE = "skiff_{backend}"

    def __init__(self, config: WarehouseConfig | None = None) -> None:
        super().__init__()
        self.warehouse_hook = SkiffWarehouseHook(config)
        self.config = self.warehouse_hook.config

    @property
    def backend(self) -> str:
        return self.config.backend

    @property
    def warehouse(self) -> Warehouse:
        """Skiff's warehouse, for the questions a suite's parameters need (event counts)."""
        return self.warehouse_hook.warehouse

    @cached_property
    def snowflake(self) -> Any:
        """The Snowflake provider's hook on ``snowflake_conn_id``."""
        return self.warehouse_hook.snowflake

    def records(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a small query over a suite's batch SQL (aggregates), on either backend.

        :param sql: one SELECT statement.
        :return: the rows as tuples.
        """
        if self.backend == "duckdb":
            with self.warehouse_hook.warehouse.connect() as con:
                return con.execute(sql).fetchall()
        return [tuple(row) for row in self.snowflake.get_records(sql)]

    def dataframe(self, sql: str) -> pd.DataFrame:
        """The rows of ``sql`` as a pandas DataFrame (DuckDB).

        :param sql: one SELECT statement.
        """
        with self.warehouse_hook.warehouse.connect() as con:
            return con.execute(sql).df()

    def batch_parameters(self, sql: str) -> dict[str, Any]:
        """GX batch parameters for the rows of ``sql``: the DataFrame on DuckDB, none on
        Snowflake (the query asset holds the SQL).

        :param sql: the suite's batch SQL.
        """
        if self.backend == "duckdb":
            frame = self.dataframe(sql)
            self.log.info("Read %d rows x %d columns to validate.", len(frame), frame.shape[1])
            return {"dataframe": frame}
        return {}

    def batch_definition(
        self, gx_context: AbstractDataContext, name: str, sql: str
    ) -> BatchDefinition:
        """Register the batch of ``sql`` in a GX context: a DataFrame asset on DuckDB, a query
        asset of GX's Snowflake datasource on Snowflake.

        :param gx_context: the (ephemeral) GX context of the validation.
        :param name: asset and batch definition name (the suite's).
        :param sql: the suite's batch SQL.
        :return: the batch definition to validate.
        """
        datasource_name = self.DATASOURCE.format(backend=self.backend)
        if self.backend == "duckdb":
            datasource = gx_context.data_sources.add_or_update_pandas(name=datasource_name)
            asset = datasource.add_dataframe_asset(name=name)
            return asset.add_batch_definition_whole_dataframe(name)
        datasource = gx_context.data_sources.add_or_update_snowflake(
            name=datasource_name, connection_string=self.snowflake_connection_string()
        )
        asset = datasource.add_query_asset(name=name, query=sql)
        return asset.add_batch_definition_whole_table(name)

    def validate_in_warehouse(self, spec: SuiteSpec, config: SkiffConfig,
                              window: ValidationWindow, *, label: str,
                              data_docs: bool = True) -> RangeResult:
        """Render ``spec`` for a long range and validate its rows where they are, in DuckDB,
        in bounded memory (``SKIFF_VALIDATE_MEMORY_LIMIT``), keeping the report
        (:mod:`skiff.validate.whole_log`).

        :param spec: the suite.
        :param config: Skiff's configuration (memory limit, report folder, thresholds).
        :param window: the range.
        :param label: the report's folder (the run's interval).
        :param data_docs: also render the Data Docs page.
        :return: the rendered suite, GX's result and the report.
        """
        from skiff.validate.whole_log import bounded, render_for_range, validate_suite

        if self.backend != "duckdb":
            raise ValueError("validate_in_warehouse runs on DuckDB; on Snowflake GX's own "
                             "datasource pushes the suite down (batch_definition)")
        with self.warehouse_hook.warehouse.connect() as con:
            bounded(con, config)  # the rendering's queries (the range's counts) share it
            suite = render_for_range(spec, config, window, self.warehouse)
            self.log.info("Validating %s for %s (the whole log) with suite %s inside DuckDB; "
                          "rows:\n%s", suite.table, window, suite.name, suite.sql)
            return validate_suite(con, suite, config, window, label=label, data_docs=data_docs,
                                  progress=self.log.info)

    def snowflake_connection_string(self) -> str:
        """SQLAlchemy URL of ``snowflake_conn_id``, as the GX provider builds it."""
        from great_expectations_provider.common.external_connections import (
            build_snowflake_connection_string,
        )

        return build_snowflake_connection_string(self.config.snowflake_conn_id)
