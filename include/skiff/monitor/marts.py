"""The monitoring marts skiff_monitor reads: their names and columns, as dbt builds them.

``include/dbt/models/monitoring`` builds them hourly from the prediction log
(``raw.predictions``) in the marts' schema (``SKIFF_MARTS_SCHEMA``); one row per hour (UTC),
model (``rec`` or ``intent``) and model version, plus a metric or a feature where named.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MonitorMart", "MONITOR_TABLES", "SERVING", "QUALITY", "DRIFT", "MODELS"]

#: The served models.
MODELS = ("rec", "intent")


@dataclass(frozen=True)
class MonitorMart:
    """One monitoring mart.

    :param name: the dbt model (and table) name.
    :param columns: its columns, in order.
    """

    name: str
    columns: tuple[str, ...]


SERVING = MonitorMart("mon_serving_hourly", (
    "hour_start", "model", "model_version", "requests", "errors", "error_rate", "fallback_rate",
    "unknown_sku_share", "latency_p50_ms", "latency_p99_ms", "dropped_events"))
QUALITY = MonitorMart("mon_quality_hourly", (
    "hour_start", "model", "model_version", "metric", "online_value", "scored",
    "mean_predicted", "observed_rate"))
DRIFT = MonitorMart("mon_drift_hourly", (
    "hour_start", "model", "model_version", "feature", "psi", "served_sessions"))

#: Every monitoring mart, the order skiff_monitor checks them in.
MONITOR_TABLES = (SERVING, QUALITY, DRIFT)
