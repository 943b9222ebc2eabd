"""dbt on DuckDB: a full refresh of the largest log, then hourly runs at three log sizes.

An hourly run must cost what its hour costs, not what the log holds: the three logs bring
the same events per hour (``bench.data``), so their hourly times should be flat.
"""

from __future__ import annotations

import json
import statistics

from bench.common import Figure
from bench.data import LOGS, build_marts, dbt, get_log, interval_vars


def _per_model(log) -> list[Figure]:
    """Each model's share of the last dbt invocation (its run_results.json): the profile."""
    results = json.loads((log.root / "target" / "run_results.json").read_text())["results"]
    return [Figure("transform", f"  {r['unique_id'].split('.')[-1]}", r["execution_time"], "s", "",
                   "full refresh, per model")
            for r in sorted(results, key=lambda r: -r["execution_time"]) if r["execution_time"] > 1]


def run(scale: str) -> list[Figure]:
    logs = [get_log(name, *spec) for name, spec in LOGS[scale].items()]
    figures: list[Figure] = []
    hourly = {}
    for log in logs:
        full = build_marts(log)  # dbt run --full-refresh, recorded for the other benches
        if log is logs[-1]:
            figures.append(Figure("transform", f"dbt run --full-refresh, {log.name} events", full,
                                  "s", "< 60 s" if scale == "full" else "",
                                  f"{log.sessions:,} sessions; 2 threads, models in parallel"))
            figures += _per_model(log)
            tests = dbt(log, "test")
            figures.append(Figure("transform", f"dbt test (all data tests), {log.name} events",
                                  tests, "s", "", "after the full refresh"))
        start, end = log.last_hour
        hour = interval_vars(start, end)
        hourly[log.name] = statistics.median(dbt(log, "run", "--vars", hour) for _ in range(3))
        figures.append(Figure("transform", f"hourly dbt run, {log.name}-event log", hourly[log.name],
                              "s", "flat", "median of 3 runs of the last hour; fresh dbt process"))
    small, large = hourly[logs[0].name], hourly[logs[-1].name]
    figures.append(Figure("transform", f"hourly run time ratio {logs[-1].name} / {logs[0].name} log",
                          large / small, "x", "~1 (flat)",
                          f"log {LOGS[scale][logs[-1].name][0] / LOGS[scale][logs[0].name][0]:.0f}x larger"))
    return figures
