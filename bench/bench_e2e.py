"""One hourly ``skiff_hourly`` run on the largest log of the scale (36M events at ``full``).

``airflow dags test skiff_hourly <end of the log>`` runs the log's last hour in a fresh
process on the log's warehouse, as ``make run`` does, with its own ``SKIFF_HOME`` and
``AIRFLOW_HOME`` (SQLite metadata DB) in ``$SKIFF_HOME/bench/e2e-<mode>``, kept after the run
for its logs. The marts are built from the whole log first (:func:`bench.data.ensure_marts`),
so the run is a steady-state hour: the incremental models read one hour (and the session
lookback), not the log. ``SKIFF_REPLAY=off``: the log holds the hour already, so there is
no ingest task. Training reads the latest ``train_sample_sessions`` sessions (the DAG
param, set with ``-c``: 5,000 at ``small``, 20,000 at ``full``), which bounds it whatever
the log's size. The model server ports are free ones, so no running ``skiff serve`` is
touched. Each run has its own Cosmos cache (``[cosmos] cache_dir``), which holds, before the
run, a ``dbt parse`` made as the DAG's dbt tasks invoke dbt: the partial parse an hourly run
finds after the one before it, so the hour does not pay a first run's full parse.

Both of Cosmos's execution modes of ``prepare`` (``SKIFF_DBT_EXECUTION_MODE``) run, one after
the other on the same log and hour: first the configured one (``watcher`` by default), the
whole DAG, whose stages are the figures; then the other, with the train and release tasks
marked successful (``--mark-success-pattern``), for its ``prepare``. The second run finds the
log in the OS cache the first one warmed.

Per stage (the DAG's top-level task groups, read from the parsed DAG) the figure is the sum
of its task instances' durations in the metadata DB; tasks run one at a time, so the run's
span (first task start to last task end) is the stages plus Airflow's time between tasks. A
``prepare`` figure also gives the stage's own span, Airflow's time between its tasks included
(16 tasks in either mode).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.common import REPO, Figure, run_worker, skiff_env
from bench.data import END, LOGS, Log, bench_home, ensure_marts, get_log
from skiff.ops import free_port

#: This module, as the worker process imports it.
WORKER = "bench.bench_e2e"
DAG_ID = "skiff_hourly"
#: ``train_sample_sessions`` of the run, by scale.
TRAIN_SAMPLE = {"small": 5_000, "full": 20_000}
#: Stages in the DAG's order; ``release_intent`` and ``release_rec`` count as ``release``.
STAGES = ("ingest", "validate_raw", "prepare", "validate", "train", "release")
#: ``SKIFF_DBT_EXECUTION_MODE``'s values, both measured.
MODES = ("watcher", "local")


def worker(request: str) -> None:
    """Entry point of a worker process: each task's top-level task group, as JSON.

    :param request: path of a JSON file ``{"out"}``.
    """
    from airflow.dag_processing.dagbag import DagBag

    spec = json.loads(Path(request).read_text())
    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    stages = {}
    for task in dag.tasks:
        group = task.task_group
        while group is not None and group.parent_group is not None \
                and group.parent_group.group_id is not None:
            group = group.parent_group
        stages[task.task_id] = group.group_id if group is not None and group.group_id \
            else task.task_id
    # what the dbt tasks give dbt for the log's last hour: the environment and the vars
    from jinja2 import Template

    dbt_task = next(t for t in dag.tasks if t.task_id.startswith("prepare.") and hasattr(t, "vars"))
    context = {"data_interval_start": END - timedelta(hours=1), "data_interval_end": END,
               "params": {name: dag.params[name] for name in dag.params}}
    render = {key: Template(str(value)).render(context) for key, value in dbt_task.env.items()}
    dbt_vars = {key: Template(str(value)).render(context)
                for key, value in (dbt_task.vars or {}).items()}
    Path(spec["out"]).write_text(json.dumps({"stages": stages, "dbt_env": render,
                                             "dbt_vars": dbt_vars}))


def _warm_partial_parse(env: dict[str, str], cache: Path, dbt_env: dict[str, str],
                        dbt_vars: dict[str, str]) -> float:
    """``dbt parse`` as the DAG's dbt tasks invoke dbt, into Cosmos's cache: seconds.

    A deployment parses the project once, on its first run (its parse keyed on the profile,
    target and vars differs from the one ``make install`` wrote); each run then leaves its
    parse in Cosmos's cache (``[cosmos] cache_dir``) for the next. This puts the steady
    state's parse there, so the measured hour does not pay a first run's full parse.
    """
    project = REPO / "include" / "dbt"
    command = [str(Path(sys.executable).with_name("dbt")), "parse", "--project-dir", str(project),
               "--profiles-dir", str(project), "--profile", "skiff", "--target", "duckdb",
               "--vars", json.dumps(dbt_vars), "--no-static-parser", "--quiet",
               "--target-path", str(cache / "target"), "--log-path", str(cache / "logs")]
    started = time.perf_counter()
    done = subprocess.run(command, env={**env, **dbt_env}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dbt parse failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - started


def _airflow(env: dict[str, str], log_file: Path, *args: str) -> tuple[float, int]:
    """Run ``airflow <args>``, output to ``log_file``: ``(wall seconds, exit code)``."""
    command = [str(Path(sys.executable).with_name("airflow")), *args]
    with open(log_file, "w") as output:
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    return time.perf_counter() - started, done.returncode


def _last_error(log_file: Path) -> str:
    """The last ``SomeError: message`` line of a log, or its last line."""
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return (errors or lines or ["(no output)"])[-1][:300]


def _stage(group: str) -> str:
    if group == "ingest_events":
        return "ingest"
    return "release" if group.startswith("release_") else group


def _task_instances(db_file: Path) -> list[tuple[str, str, float, float, float]]:
    """``(task_id, state, duration, start, end)`` of the run's task instances, times in days."""
    with sqlite3.connect(db_file) as db:
        return db.execute(
            "select task_id, state, coalesce(duration, 0), julianday(start_date), "
            "julianday(end_date) from task_instance where dag_id = ?", (DAG_ID,)).fetchall()


@dataclass
class HourlyRun:
    """One ``airflow dags test`` of the hour in one execution mode of ``prepare``."""

    mode: str
    tasks: list[tuple[str, str, float, float, float]]  # (task_id, state, duration, start, end)
    groups: dict[str, str]  # task_id -> its top-level group (or itself)
    wall: float
    code: int
    log_file: Path

    def stages(self) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
        """Seconds in tasks, tasks and skipped tasks, by stage."""
        seconds: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        skipped: dict[str, int] = defaultdict(int)
        for task_id, state, duration, _, _ in self.tasks:
            stage = _stage(self.groups[task_id])
            seconds[stage] += duration
            counts[stage] += 1
            skipped[stage] += state == "skipped"
        unknown = set(seconds) - set(STAGES)
        if unknown:
            raise RuntimeError(f"tasks outside the known stages {STAGES}: {sorted(unknown)}")
        return seconds, counts, skipped

    def span(self, stage: str | None = None) -> float:
        """Seconds from the first task start to the last task end (of ``stage``, or all)."""
        times = [(t[3], t[4]) for t in self.tasks
                 if stage is None or _stage(self.groups[t[0]]) == stage]
        return (max(end for _, end in times) - min(start for start, _ in times)) * 86400


def _hourly_run(mode: str, log: Log, sample: int, *, train: bool) -> HourlyRun:
    """``airflow dags test`` of the log's last hour with ``SKIFF_DBT_EXECUTION_MODE=mode``.

    :param train: run the train and release tasks; False marks them successful unrun.
    :raises RuntimeError: a task did not end green.
    """
    home = bench_home() / f"e2e-{mode}"  # kept after the run: its logs and Airflow DB
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    # SKIFF_RUN_DURATION_ALERT_MINUTES=0: `dags test` cannot finish a DAG with a Deadline Alert
    env = skiff_env(home, SKIFF_DUCKDB_PATH=str(log.db), SKIFF_REPLAY="off",
                    SKIFF_RUN_DURATION_ALERT_MINUTES="0", SKIFF_DBT_EXECUTION_MODE=mode,
                    SKIFF_SERVE_PORT=str(free_port()), SKIFF_API_PORT=str(free_port()))
    if _airflow(env, home / "migrate.log", "db", "migrate")[1]:
        raise RuntimeError(f"airflow db migrate failed: {_last_error(home / 'migrate.log')}")
    # Cosmos's cache (partial parse) of this run only, holding the steady state's parse
    env["AIRFLOW__COSMOS__CACHE_DIR"] = str(home / "cosmos")
    dag_spec = run_worker(WORKER, home / "stages", env)
    groups = dag_spec["stages"]
    _warm_partial_parse(env, home / "cosmos" / f"{DAG_ID}__prepare", dag_spec["dbt_env"],
                        dag_spec["dbt_vars"])
    args = ["dags", "test", DAG_ID, END.isoformat(),
            "-c", json.dumps({"train_sample_sessions": sample})]
    if not train:
        unrun = [t for t, g in groups.items() if _stage(g) in ("train", "release")]
        args += ["--mark-success-pattern", "|".join(re.escape(t) for t in unrun)]
    log_file = home / "dags-test.log"
    wall, code = _airflow(env, log_file, *args)
    tasks = _task_instances(home / "airflow" / "airflow.db")
    not_green = sorted(t[0] for t in tasks if t[1] not in ("success", "skipped"))
    if not tasks or not_green:
        raise RuntimeError(f"the {DAG_ID} run ({mode}) did not end green (tasks "
                           f"{not_green or 'none'}); {_last_error(log_file)}; log {log_file}")
    return HourlyRun(mode, tasks, groups, wall, code, log_file)


def _prepare_note(run: HourlyRun, counts: dict[str, int]) -> str:
    return (f"SKIFF_DBT_EXECUTION_MODE={run.mode}: {counts['prepare']} tasks, span "
            f"{run.span('prepare'):.1f} s; incremental dbt on the last hour (marts built from "
            "the whole log)")


def run(scale: str) -> list[Figure]:
    from skiff.config import DbtConfig

    name = list(LOGS[scale])[-1]
    log = ensure_marts(get_log(name, *LOGS[scale][name]))
    sample = TRAIN_SAMPLE[scale]
    first = DbtConfig.from_env().execution_mode  # the configured mode: the whole DAG
    other = next(m for m in MODES if m != first)  # then prepare in the other mode
    main = _hourly_run(first, log, sample, train=True)
    side = _hourly_run(other, log, sample, train=False)

    seconds, counts, skipped = main.stages()
    figures = []
    for stage in STAGES:
        if stage not in seconds:
            note = "SKIFF_REPLAY=off: the log holds the hour" if stage == "ingest" else "no tasks"
            figures.append(Figure("e2e", f"stage {stage}", 0.0, "s", "", note))
            continue
        note = f"{counts[stage]} tasks" + (f", {skipped[stage]} skipped" if skipped[stage] else "")
        note = {"validate_raw": f"{note}; the first task imports GX (tasks run in one process)",
                "prepare": _prepare_note(main, counts),
                "train": f"{note}; train_sample_sessions={sample:,} (-c), both flows",
                }.get(stage, note)
        figures.append(Figure("e2e", f"stage {stage}", seconds[stage], "s", "", note))
    side_seconds, side_counts, _ = side.stages()
    figures.append(Figure("e2e", f"stage prepare, {other} mode", side_seconds["prepare"], "s",
                          "", _prepare_note(side, side_counts) + "; the next run, train and "
                          "release marked successful"))
    ratio = {first: seconds["prepare"], other: side_seconds["prepare"]}
    figures.append(Figure("e2e", "prepare: local mode / watcher mode",
                          ratio["local"] / ratio["watcher"], "x", "",
                          f"{ratio['local']:.1f} s / {ratio['watcher']:.1f} s, same log and hour"))
    exit_note = "" if main.code == 0 else (f"; airflow dags test EXITED {main.code} after every "
                                           f"task ended green: {_last_error(main.log_file)}")
    figures += [
        Figure("e2e", "hourly run: first task start to last task end", main.span(), "s", "",
               f"{name}-event log, last hour, {first} mode; {sum(seconds.values()):.0f} s in "
               "tasks, the rest between them"),
        Figure("e2e", "airflow dags test wall time", main.wall, "s", "",
               f"the CLI process: start, DAG parse, the run{exit_note}"),
    ]
    return figures


if __name__ == "__main__":  # python -m bench.bench_e2e [full]
    print(Figure.table(run(sys.argv[1] if len(sys.argv) > 1 else "small")))
