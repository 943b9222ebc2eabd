"""The monitoring marts in a DuckDB file, with chosen values: what skiff_monitor and the page read.

Until the prediction log and its dbt models (``include/dbt/models/monitoring``) build them,
the tests create the tables themselves with the marts' columns
(:data:`skiff.monitor.marts.MONITOR_TABLES`); the values are the test's to choose: a calm
history, then a planted drift, error burst or quality drop. :func:`registry_with_history`
fills a champion registry with two promotions and a rejected challenger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skiff.monitor.marts import DRIFT, QUALITY, SERVING

__all__ = ["MonitorMarts", "registry_with_history", "FEATURES"]

FEATURES = ("session_length", "event_type_mix", "sku_popularity")
_TYPES = {
    "hour_start": "timestamp", "model": "varchar", "model_version": "varchar",
    "metric": "varchar", "feature": "varchar", "requests": "bigint", "errors": "bigint",
    "scored": "bigint", "served_sessions": "bigint", "dropped_events": "bigint",
}


class MonitorMarts:
    """The three monitoring marts in ``<schema>`` of a DuckDB file, rows added hour by hour.

    :param path: the DuckDB file (created).
    :param schema: the marts' schema (``SKIFF_MARTS_SCHEMA``).
    """

    def __init__(self, path: Path, schema: str = "marts") -> None:
        import duckdb

        self.path, self.schema = Path(path), schema
        with duckdb.connect(str(self.path)) as con:
            con.execute(f"create schema if not exists {schema}")
            for mart in (SERVING, QUALITY, DRIFT):
                cols = ", ".join(f"{c} {_TYPES.get(c, 'double')}" for c in mart.columns)
                con.execute(f"create table if not exists {schema}.{mart.name} ({cols})")

    def _insert(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Insert rows by table, in one connection (DuckDB admits one writer)."""
        import duckdb

        with duckdb.connect(str(self.path)) as con:
            for table, values in rows.items():
                for row in values:
                    marks = ", ".join("?" * len(row))
                    con.execute(f"insert into {self.schema}.{table} values ({marks})", row)

    @staticmethod
    def rows(start: datetime, *, model: str = "rec", version: str = "RecFlow/2",
             requests: int = 200, error_rate: float = 0.0, p99_ms: float = 40.0,
             hit_rate: float = 0.3, calibration_error: float = 0.02, psi: float = 0.02,
             drift_feature: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
        """The rows of one served hour of ``model``, by mart.

        :param psi: PSI of every feature, or only of ``drift_feature`` when given (the others
            stay calm at 0.02).
        """
        hour = start.astimezone(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        errors = round(requests * error_rate)
        metric, value = (("hit_rate_at_20", hit_rate) if model == "rec"
                         else ("calibration_error", calibration_error))
        return {
            SERVING.name: [(hour, model, version, requests, errors, error_rate, 0.01, 0.02,
                            p99_ms / 3, p99_ms, 0)],
            QUALITY.name: [(hour, model, version, metric, value, requests // 2, 0.3,
                            0.3 - (value if model == "intent" else 0))],
            DRIFT.name: [(hour, model, version, f,
                          psi if drift_feature in (None, f) else 0.02, requests)
                         for f in FEATURES],
        }

    def hour(self, start: datetime, **kwargs: Any) -> None:
        """Add one served hour (:meth:`rows`' arguments)."""
        self._insert(self.rows(start, **kwargs))

    def calm(self, end: datetime, hours: int, **kwargs: Any) -> None:
        """Add ``hours`` calm hours of both models before ``end``."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for k in range(hours, 0, -1):
            start = end - timedelta(hours=k)
            for part in (self.rows(start, model="rec", version="RecFlow/2", **kwargs),
                         self.rows(start, model="intent", version="IntentFlow/1",
                                   requests=150)):
                for table, values in part.items():
                    rows.setdefault(table, []).extend(values)
        self._insert(rows)


def registry_with_history(root: Path) -> Any:
    """A local registry: rec promoted twice (RecFlow/1, RecFlow/2) and a rejected RecFlow/3;
    intent once (IntentFlow/1)."""
    from skiff.serve import ChampionRecord, ModelRegistry, open_storage
    from skiff.serve.bundle import BundleRef

    registry = ModelRegistry(open_storage(str(root)))
    promotions = [("rec", "RecFlow/1", 0.21, "2026-11-26T08:00:00+00:00"),
                  ("rec", "RecFlow/2", 0.25, "2026-11-27T08:00:00+00:00"),
                  ("intent", "IntentFlow/1", 0.71, "2026-11-26T09:00:00+00:00")]
    for model, pathspec, value, at in promotions:
        metric = "mrr@20" if model == "rec" else "roc_auc"
        metrics = {"model": {metric: value, "hit_rate@20": 0.4}, metric: value,
                   "baselines": {"most_popular": {metric: value / 2}}}
        registry.record_decision(model, {"pathspec": pathspec, "promote": True, "metric": metric,
                                         "reason": f"Promote: {pathspec} beats the champion."},
                                 at=at)
        registry.promote(ChampionRecord(
            model=model, pathspec=pathspec, metrics=metrics,
            bundle=BundleRef(pathspec=pathspec, folder=str(root / pathspec), tarball=""),
            artifact_uri=str(root / pathspec), endpoint_name=f"skiff-{model}",
            endpoint_config_name=f"skiff-{model}-{pathspec.replace('/', '-').lower()}",
            model_version=pathspec, promoted_at=at, reason=f"Promote: {pathspec} wins."))
    registry.record_decision("rec", {
        "pathspec": "RecFlow/3", "promote": False, "metric": "mrr@20",
        "reason": "Keep champion: mrr@20 gain 0.0010 is not above margin 0.0100."},
        at="2026-11-27T09:00:00+00:00")
    return registry
