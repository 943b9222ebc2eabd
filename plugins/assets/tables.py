"""Skiff's Airflow assets: the warehouse tables skiff_hourly updates and skiff_monitor waits for.

An asset names a table the pipeline maintains, whichever warehouse holds it (a DuckDB file
here, a Snowflake account in production): ``x-skiff://warehouse/<schema>/<table>``, named
``<schema>.<table>``. The ``x-`` scheme is Airflow 3's for URIs no provider normalises; an
asset the same in every environment keeps the DAGs scheduled on it unchanged from a laptop
to production. skiff_hourly's tasks declare them as outlets (``ingest_events`` the raw
tables, each dbt model's task its mart) in place of Cosmos's own dataset URIs, which it
turns off (``RenderConfig(emit_datasets=False)``).
"""

from __future__ import annotations

from airflow.sdk import Asset

__all__ = ["RAW_TABLES", "MART_TABLES", "MONITOR_MARTS", "table_asset", "raw_assets",
           "mart_assets", "monitor_schedule"]

#: The raw log's tables ingest_events appends to (predictions: the /predict answers logged).
RAW_TABLES = ("browsing_train", "search_train", "sku_to_content", "predictions")
#: The marts dbt builds (models/marts), each an outlet of its model's task.
MART_TABLES = ("fct_sessions", "fct_session_sequences", "dim_products")
#: The monitoring marts (models/monitoring): skiff_monitor runs once all were updated.
MONITOR_MARTS = ("mon_serving_hourly", "mon_quality_hourly", "mon_drift_hourly")


def table_asset(schema: str, table: str) -> Asset:
    """The asset of ``<schema>.<table>``.

    :raises ValueError: a name that is not a plain SQL identifier.
    """
    for part in (schema, table):
        if not part.replace("_", "").isalnum():
            raise ValueError(f"{schema}.{table}: schema and table must be plain identifiers")
    return Asset(name=f"{schema}.{table}", uri=f"x-skiff://warehouse/{schema}/{table}",
                 group="skiff")


def raw_assets(raw_schema: str) -> list[Asset]:
    """The raw tables' assets (:data:`RAW_TABLES`)."""
    return [table_asset(raw_schema, t) for t in RAW_TABLES]


def mart_assets(marts_schema: str) -> dict[str, Asset]:
    """Each mart's and monitoring mart's asset, by dbt model name."""
    return {t: table_asset(marts_schema, t) for t in (*MART_TABLES, *MONITOR_MARTS)}


def monitor_schedule(raw_schema: str, marts_schema: str):
    """skiff_monitor's schedule: the prediction log and every monitoring mart updated."""
    condition = table_asset(raw_schema, "predictions")
    for table in MONITOR_MARTS:
        condition = condition & table_asset(marts_schema, table)
    return condition
