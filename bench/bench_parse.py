"""Parse time of the DAG folder: cold (fresh process) and warm (re-parse in one process)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, Figure, skiff_env

_CODE = """
import json, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
t2 = time.perf_counter()
warm = []
for _ in range(5):
    s = time.perf_counter(); DagBag(dag_folder={dags!r}); warm.append(time.perf_counter() - s)
assert not bag.import_errors, bag.import_errors
print(json.dumps({{"airflow_import": t1 - t0, "cold": t2 - t1, "warm": sorted(warm)[2],
                  "tasks": len(bag.dags["skiff_hourly"].tasks)}}))
"""


def _measure(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _CODE.format(dags=str(REPO / "dags"))], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(scale: str) -> list[Figure]:
    with tempfile.TemporaryDirectory() as home:
        env = skiff_env(Path(home))
        runs = [_measure(env) for _ in range(3)]
    cold = statistics.median(r["cold"] for r in runs)
    warm = statistics.median(r["warm"] for r in runs)
    tasks = runs[0]["tasks"]
    return [
        Figure("parse", "DagBag cold parse (fresh process, Cosmos import included)", cold, "s", "< 1 s",
               f"{tasks} tasks, median of 3 processes"),
        Figure("parse", "DagBag warm re-parse (dag-processor steady state)", warm, "s", "< 1 s",
               "median of 5 re-parses"),
    ]
