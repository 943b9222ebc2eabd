"""The Skiff page's data: the monitoring marts' recent hours and the registry, as one JSON file.

skiff_monitor writes it (:func:`build_snapshot`, then :func:`write_snapshot` to
``$SKIFF_MONITOR_DIR/snapshot.json``, atomically) after each hour skiff_hourly builds; the
page only reads that file (:func:`read_snapshot`). The page runs inside Airflow's
api-server, and DuckDB admits one writer: a page querying the warehouse would take or wait
for its lock while skiff_hourly writes, so it never opens the warehouse.

Per model (``rec``, ``intent``) the document holds the champion, its promotions (newest
first), the last gate decisions with their reasons, and, by hour over the last
``SKIFF_MONITOR_HISTORY_DAYS``: serving (requests, errors, latency), online quality against
the champion's offline value, and drift (PSI by feature). :func:`breaches` lists what is over
the thresholds of ``MonitorConfig`` in the last ``SKIFF_MONITOR_WINDOW_HOURS``: the page
highlights them; skiff_monitor's Great Expectations suites decide (the same thresholds).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skiff.config import MonitorConfig
from skiff.monitor.marts import DRIFT, MODELS, QUALITY, SERVING

__all__ = ["SNAPSHOT_FILE", "OFFLINE_METRICS", "build_snapshot", "write_snapshot",
           "read_snapshot", "breaches", "thresholds", "offline_value"]

#: The snapshot's file name in ``SKIFF_MONITOR_DIR``.
SNAPSHOT_FILE = "snapshot.json"
#: Online metric of ``mon_quality_hourly`` -> the champion's offline metric it is compared with.
OFFLINE_METRICS = {"hit_rate_at_20": "hit_rate@20"}

Records = Callable[[str], Sequence[tuple[Any, ...]]]


def _iso(value: Any) -> str:
    """A warehouse timestamp (naive means UTC) as ISO 8601 UTC."""
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)


def _num(value: Any) -> float | None:
    """A finite float, or None (SQL null, NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def offline_value(champion: Mapping[str, Any] | None, metric: str) -> float | None:
    """The champion's offline value of an online ``metric`` (None when it has none).

    :param champion: a champion record as a dict (its ``metrics``: the flow's layout, the
        model's values at the top level or under ``model``).
    :param metric: a ``mon_quality_hourly`` metric, e.g. ``hit_rate_at_20``.
    """
    name = OFFLINE_METRICS.get(metric)
    if not champion or not name:
        return None
    metrics = champion.get("metrics") or {}
    if name not in metrics and isinstance(metrics.get("model"), Mapping):
        metrics = metrics["model"]
    return _num(metrics.get(name))


def _model_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The model's own numbers of a metrics document (not the baselines', nor slices)."""
    own = metrics.get("model") if isinstance(metrics.get("model"), Mapping) else metrics
    return {k: float(v) for k, v in own.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "n"}


def _queries(schema: str, model: str, since: datetime) -> dict[str, str]:
    """The snapshot's SQL per mart: hourly, over the model's versions (literals only: the
    model is one of :data:`MODELS`, ``since`` a datetime). DuckDB and Snowflake alike."""
    if model not in MODELS:
        raise ValueError(f"model={model!r}: use one of {MODELS}")
    where = f"where model = '{model}' and hour_start >= '{since:%Y-%m-%d %H:%M:%S}'"
    return {
        "serving": f"""
            select hour_start, sum(requests), sum(errors),
                   sum(errors) / nullif(sum(requests), 0),
                   sum(fallback_rate * requests) / nullif(sum(requests), 0),
                   sum(unknown_sku_share * requests) / nullif(sum(requests), 0),
                   max(latency_p50_ms), max(latency_p99_ms), sum(dropped_events),
                   listagg(distinct model_version, ',')
            from {schema}.{SERVING.name} {where}
            group by hour_start order by hour_start""",
        "quality": f"""
            select hour_start, metric, sum(online_value * scored) / nullif(sum(scored), 0),
                   sum(scored), sum(mean_predicted * scored) / nullif(sum(scored), 0),
                   sum(observed_rate * scored) / nullif(sum(scored), 0)
            from {schema}.{QUALITY.name} {where}
            group by hour_start, metric order by hour_start, metric""",
        "drift": f"""
            select hour_start, feature, max(psi), sum(served_sessions)
            from {schema}.{DRIFT.name} {where}
            group by hour_start, feature order by hour_start, feature""",
    }


def _rows(kind: str, rows: Sequence[tuple[Any, ...]],
          champion: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if kind == "serving":
        return [{"hour": _iso(r[0]), "requests": int(r[1] or 0), "errors": int(r[2] or 0),
                 "error_rate": _num(r[3]), "fallback_rate": _num(r[4]),
                 "unknown_sku_share": _num(r[5]), "latency_p50_ms": _num(r[6]),
                 "latency_p99_ms": _num(r[7]), "dropped_events": int(r[8] or 0),
                 "versions": sorted(filter(None, str(r[9] or "").split(",")))} for r in rows]
    if kind == "quality":
        return [{"hour": _iso(r[0]), "metric": r[1], "online_value": _num(r[2]),
                 "scored": int(r[3] or 0), "mean_predicted": _num(r[4]),
                 "observed_rate": _num(r[5]), "offline_value": offline_value(champion, r[1])}
                for r in rows]
    return [{"hour": _iso(r[0]), "feature": r[1], "psi": _num(r[2]),
             "served_sessions": int(r[3] or 0)} for r in rows]


def _registry_part(registry: Any, model: str, decisions: int) -> dict[str, Any]:
    champion = registry.champion(model)
    history = registry.history(model)
    return {
        "champion": None if champion is None else {
            "pathspec": champion.pathspec, "model_version": champion.model_version or
            champion.pathspec, "promoted_at": champion.promoted_at, "reason": champion.reason,
            "previous": champion.previous, "endpoint_name": champion.endpoint_name,
            "metrics": champion.metrics, "shown_metrics": _model_metrics(champion.metrics)},
        "history": [{"pathspec": r.pathspec, "model_version": r.model_version or r.pathspec,
                     "promoted_at": r.promoted_at, "previous": r.previous, "reason": r.reason,
                     "metrics": _model_metrics(r.metrics)} for r in reversed(history)],
        "decisions": [{k: d.get(k) for k in ("decided_at", "pathspec", "promote", "reason",
                                              "metric", "candidate", "champion", "against",
                                              "run_id")}
                      for d in registry.decisions(model, limit=decisions)],
    }


def build_snapshot(records: Records, registry: Any, config: MonitorConfig, *, schema: str,
                   now: datetime | None = None, decisions: int = 10) -> dict[str, Any]:
    """Read the monitoring marts and the registry into the page's document.

    A mart that cannot be read (not built yet: the prediction log is empty) is noted in
    ``errors`` and its part left empty; the registry's part is there regardless.

    :param records: runs a SQL query on the warehouse, returns its rows (e.g.
        ``Warehouse.records``).
    :param registry: the champion registry (:class:`skiff.serve.ModelRegistry`).
    :param config: the monitor's settings (history kept, window and thresholds).
    :param schema: the schema of the monitoring marts (``SKIFF_MARTS_SCHEMA``).
    :param now: the snapshot's time (UTC); default now.
    :param decisions: gate decisions kept per model.
    :return: the document (JSON-ready).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = (now - timedelta(days=config.history_days)).replace(tzinfo=None)
    doc: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="seconds"),
        "window_hours": config.window_hours,
        "history_days": config.history_days,
        "thresholds": thresholds(config),
        "models": {},
        "errors": [],
    }
    failed: set[str] = set()
    for model in MODELS:
        part = _registry_part(registry, model, decisions)
        for kind, sql in _queries(schema, model, since).items():
            part[kind] = []
            if kind in failed:
                continue
            try:
                part[kind] = _rows(kind, records(sql), part["champion"])
            except Exception as exc:  # the mart is missing or unreadable: the page says so
                failed.add(kind)
                doc["errors"].append(f"{schema}.{_mart(kind)}: {str(exc).splitlines()[0]}")
        doc["models"][model] = part
    for model, part in doc["models"].items():
        part["breaches"] = breaches(part, config, now)
    return doc


def _mart(kind: str) -> str:
    return {"serving": SERVING.name, "quality": QUALITY.name, "drift": DRIFT.name}[kind]


def thresholds(config: MonitorConfig) -> dict[str, float]:
    """The thresholds the checks use, by name (shown on the page)."""
    return {"psi_max": config.psi_max, "error_rate_max": config.error_rate_max,
            "latency_p99_ms_max": config.latency_p99_ms_max,
            "quality_drop_max": config.quality_drop_max,
            "calibration_error_max": config.calibration_error_max,
            "min_requests": config.min_requests,
            "min_drift_sessions": config.min_drift_sessions}


def breaches(part: Mapping[str, Any], config: MonitorConfig, now: datetime) -> list[str]:
    """What is over a threshold in the last ``window_hours`` of one model's part.

    Hours with fewer than ``min_requests`` requests (or scored predictions), or for drift
    ``min_drift_sessions`` served sessions, are not judged.
    The same rules as skiff_monitor's suites (``include/gx/suites/mon_*.yml``).

    :return: one sentence per breach, e.g. ``"2026-11-27T10:00:00+00:00 drift: PSI of
        session_length 0.41 > 0.2"``.
    """
    start = now - timedelta(hours=config.window_hours)

    def recent(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [r for r in rows if datetime.fromisoformat(r["hour"]) >= start]

    found = []
    for r in recent(part.get("serving", [])):
        if r["requests"] < config.min_requests:
            continue
        if (r["error_rate"] or 0) > config.error_rate_max:
            found.append(f"{r['hour']} errors: error rate {r['error_rate']:.3f} > "
                         f"{config.error_rate_max}")
        if (r["latency_p99_ms"] or 0) > config.latency_p99_ms_max:
            found.append(f"{r['hour']} latency: p99 {r['latency_p99_ms']:.0f} ms > "
                         f"{config.latency_p99_ms_max:.0f} ms")
    for r in recent(part.get("quality", [])):
        value = r["online_value"]
        if r["scored"] < config.min_requests or value is None:
            continue
        if r["metric"] == "calibration_error" and abs(value) > config.calibration_error_max:
            found.append(f"{r['hour']} quality: calibration error {value:.3f} > "
                         f"{config.calibration_error_max}")
        offline = r.get("offline_value")
        if offline and value < offline * (1 - config.quality_drop_max):
            found.append(f"{r['hour']} quality: online {r['metric']} {value:.3f} < "
                         f"{1 - config.quality_drop_max:.2f} x offline {offline:.3f}")
    for r in recent(part.get("drift", [])):
        if r["served_sessions"] >= config.min_drift_sessions and (r["psi"] or 0) > config.psi_max:
            found.append(f"{r['hour']} drift: PSI of {r['feature']} {r['psi']:.2f} > "
                         f"{config.psi_max}")
    return found


def write_snapshot(doc: Mapping[str, Any], folder: str | Path) -> Path:
    """Write ``doc`` to ``<folder>/snapshot.json`` atomically (a reader never sees half of it).

    :return: the file written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SNAPSHOT_FILE
    tmp = folder / f".{SNAPSHOT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def read_snapshot(folder: str | Path) -> dict[str, Any] | None:
    """The last snapshot in ``folder``; None before skiff_monitor's first run.

    :raises ValueError: the file is not a snapshot (not JSON, or without ``models``).
    """
    path = Path(folder) / SNAPSHOT_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise ValueError(f"{path} is not a Skiff monitor snapshot (no 'models').")
    return doc
