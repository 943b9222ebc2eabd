"""dbt on DuckDB: a full refresh of the largest log, then hourly runs at three log sizes.

An hourly run must cost what its hour costs, not what the log holds: the three logs bring
the same events per hour (``bench.data``), so their hourly times should be flat.

With ``BENCH_DBT_BASELINE=<git revision>`` (e.g. ``main``) the dbt project of that revision
runs first on the largest log, its full refresh, its data tests and one hourly ``dbt build``
as the DAG ran it then (the interval in ``--vars``), so that the figures before and after a
change of the project come from one run on one machine state ("before: ..." figures).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

from bench.common import REPO, Figure
from bench.data import LOGS, Log, build_marts, dbt, get_log, interval_env, interval_vars

#: Environment variable naming the git revision whose dbt project is measured first.
BASELINE = "BENCH_DBT_BASELINE"


def _per_model(log: Log, target: str = "target", prefix: str = "") -> list[Figure]:
    """Each model's share of the last dbt invocation (its run_results.json): the profile."""
    results = json.loads((log.root / target / "run_results.json").read_text())["results"]
    return [Figure("transform", f"  {prefix}{r['unique_id'].split('.')[-1]}", r["execution_time"],
                   "s", "", "full refresh, per model (2 threads: models run side by side)")
            for r in sorted(results, key=lambda r: -r["execution_time"]) if r["execution_time"] > 1]


def _baseline_project(log: Log, revision: str) -> Path:
    """The dbt project of ``revision``, exported under the log's root."""
    root = log.root / "baseline"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "include/dbt"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root / "include" / "dbt"


def _before(log: Log, revision: str) -> list[Figure]:
    """The baseline project on the largest log: full refresh, data tests, one hourly build."""
    project = _baseline_project(log, revision)
    target = "target-baseline"
    full = dbt(log, "run", "--full-refresh", project=project, target=target)
    figures = [Figure("transform", f"before: dbt run --full-refresh, {log.name} events", full,
                      "s", "", f"the dbt project of {revision}; same run, same log")]
    figures += _per_model(log, target, "before: ")
    tests = dbt(log, "test", project=project, target=target)
    figures.append(Figure("transform", f"before: dbt test (all data tests), {log.name} events",
                          tests, "s", "", f"{revision}; after its full refresh"))
    start, end = log.last_hour
    build = dbt(log, "build", "--vars", interval_vars(start, end), project=project, target=target)
    figures.append(Figure("transform", f"before: hourly dbt build, {log.name}-event log", build,
                          "s", "", f"{revision}: models and every data test on whole tables, "
                          "the interval in --vars (a full parse); fresh dbt process"))
    return figures


def run(scale: str) -> list[Figure]:
    logs = [get_log(name, *spec) for name, spec in LOGS[scale].items()]
    figures: list[Figure] = []
    revision = os.environ.get(BASELINE, "")
    if revision:
        figures += _before(logs[-1], revision)
    hourly = {}
    for log in logs:
        full = build_marts(log)  # dbt run --full-refresh, recorded for the other benches
        start, end = log.last_hour
        if log is logs[-1]:
            figures.append(Figure("transform", f"dbt run --full-refresh, {log.name} events", full,
                                  "s", "< 60 s" if scale == "full" else "",
                                  f"{log.sessions:,} sessions; 2 threads, models in parallel"))
            figures += _per_model(log)
            tests = dbt(log, "test")
            figures.append(Figure("transform", f"dbt test (all data tests), {log.name} events",
                                  tests, "s", "", "after the full refresh"))
            # the hour before warms dbt's partial parse, as the previous hourly run does
            dbt(log, "build", env=interval_env(start - (end - start), start))
            build = dbt(log, "build", env=interval_env(start, end))
            figures.append(Figure("transform", f"hourly dbt build, {log.name}-event log", build,
                                  "s", "", "models and their data tests on the rebuilt "
                                  "sessions, the interval in the environment (partial parse); "
                                  "fresh dbt process"))
        hour = interval_env(start, end)
        hourly[log.name] = statistics.median(dbt(log, "run", env=hour) for _ in range(3))
        figures.append(Figure("transform", f"hourly dbt run, {log.name}-event log", hourly[log.name],
                              "s", "flat", "median of 3 runs of the last hour; fresh dbt process"))
    small, large = hourly[logs[0].name], hourly[logs[-1].name]
    figures.append(Figure("transform", f"hourly run time ratio {logs[-1].name} / {logs[0].name} log",
                          large / small, "x", "~1 (flat)",
                          f"log {LOGS[scale][logs[-1].name][0] / LOGS[scale][logs[0].name][0]:.0f}x larger"))
    return figures
