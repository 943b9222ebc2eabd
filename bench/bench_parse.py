"""Parse time of the DAG folder, and Cosmos's manifest load mode against ``dbt ls``.

- cold: ``DagBag(dags/)`` in a fresh process after ``import airflow`` (what a new
  dag-processor pays once: Cosmos, provider and plugin imports included);
- warm: re-parsing in the same process (the dag-processor's steady state);
- load modes: the ``prepare`` task group rendered from the manifest (what the DAG does)
  and from ``dbt ls`` (Cosmos's default, which runs dbt at parse time), same process, same run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, Figure, skiff_env

_PARSE = """
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

_LOAD_MODES = """
import json, time
from datetime import datetime
from airflow.sdk import DAG
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode
from skiff.config import SkiffConfig

cfg = SkiffConfig.from_env()
profile = ProfileConfig(profile_name="skiff", target_name="duckdb",
                        profiles_yml_filepath=cfg.dbt.project_dir / "profiles.yml")
out = {}
for mode in ("dbt_manifest", "dbt_ls", "dbt_manifest", "dbt_ls"):
    load = LoadMode(mode)
    project = ProjectConfig(dbt_project_path=cfg.dbt.project_dir, manifest_path=cfg.dbt.manifest_path)
    started = time.perf_counter()
    with DAG(dag_id=f"bench_{mode}", start_date=datetime(2026, 1, 1), schedule=None):
        group = DbtTaskGroup(group_id="prepare", project_config=project, profile_config=profile,
                             execution_config=ExecutionConfig(
                                 execution_mode=ExecutionMode.LOCAL,
                                 invocation_mode=InvocationMode.DBT_RUNNER),
                             render_config=RenderConfig(load_method=load))
    out[mode] = time.perf_counter() - started  # the second of each mode is kept
    out[mode + "_tasks"] = len(group.children)
print(json.dumps(out))
"""


def _run(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(scale: str) -> list[Figure]:
    with tempfile.TemporaryDirectory() as home:
        env = skiff_env(Path(home), AIRFLOW__COSMOS__ENABLE_CACHE_DBT_LS="False")
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # dbt for dbt ls
        runs = [_run(_PARSE.format(dags=str(REPO / "dags")), env) for _ in range(3)]
        modes = _run(_LOAD_MODES, env)
    cold = statistics.median(r["cold"] for r in runs)
    warm = statistics.median(r["warm"] for r in runs)
    tasks = runs[0]["tasks"]
    manifest, dbt_ls = modes["dbt_manifest"], modes["dbt_ls"]
    return [
        Figure("parse", "DagBag cold parse (fresh process, after import airflow)", cold, "s", "< 1 s",
               f"{tasks} tasks, median of 3 processes"),
        Figure("parse", "DagBag warm re-parse (dag-processor steady state)", warm, "s", "< 1 s",
               "median of 5 re-parses"),
        Figure("parse", "Cosmos render, LoadMode.DBT_MANIFEST", manifest, "s", "",
               f"{modes['dbt_manifest_tasks']} nodes in the task group"),
        Figure("parse", "Cosmos render, LoadMode.DBT_LS (dbt ls at parse time, cache off)", dbt_ls, "s", "",
               f"{modes['dbt_ls_tasks']} nodes in the task group"),
        Figure("parse", "dbt ls / manifest render time", dbt_ls / manifest, "x", "",
               "same process, same run"),
    ]
