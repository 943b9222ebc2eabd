"""skiff_hourly when a dbt test fails, in both of Cosmos's execution modes, with dag.test().

The dbt project is a copy of ``include/dbt`` with one planted singular test on
``fct_sessions`` that fails on any row (``SKIFF_DBT_PROJECT_DIR`` points at the copy). In
``watcher`` mode (the default) the failure happens inside the producer's one ``dbt build``;
in ``local`` mode inside the ``fct_sessions`` test task's own ``dbt test``. Either way the
model's test task fails (after its retry, which runs ``dbt test`` for that model alone), the
run fails and alerts, and nothing downstream (the mart checks, training, release) runs. The
raw checks are marked successful unrun (``mark_success_pattern``): they are not under test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from bad_batches import END, make_log

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
PLANTED = "planted_failure_on_fct_sessions"
#: The raw checks, marked successful unrun (dag.test's mark_success_pattern).
RAW_CHECKS = r"validate_raw_\w+|validate_volume|validate_event_mix"


@pytest.fixture(scope="module")
def failing_project(tmp_path_factory) -> Path:
    """``include/dbt`` plus a singular test on ``fct_sessions`` that fails, and its manifest."""
    project = tmp_path_factory.mktemp("dbt") / "dbt"
    shutil.copytree(REPO / "include" / "dbt", project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (project / "tests" / f"{PLANTED}.sql").write_text(
        "-- planted by tests/e2e/test_dbt_test_failure.py: fails on any session\n"
        "select session_id from {{ ref('fct_sessions') }}\n")
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run([str(dbt), "parse", "--quiet", "--profiles-dir", str(project),
                    "--project-dir", str(project)], check=True, cwd=project)
    return project


# watcher (the default) in `make test`, local (the other mode) with -m slow
@pytest.mark.parametrize("mode", ["watcher", pytest.param("local", marks=pytest.mark.slow)])
def test_a_failing_dbt_test_fails_its_model_task_and_the_run(
    mode, failing_project, source, alerts, tmp_path, monkeypatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState, TaskInstanceState

    log = make_log(tmp_path / "log", source)
    for name, value in {"SKIFF_DBT_EXECUTION_MODE": mode,
                        "SKIFF_DBT_PROJECT_DIR": str(failing_project),
                        "SKIFF_REPLAY": "off", "SKIFF_INGEST_SOURCE": "replay",
                        "SKIFF_DUCKDB_PATH": str(log.path),
                        "SKIFF_GX_DIR": str(tmp_path / "gx")}.items():
        monkeypatch.setenv(name, value)
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["skiff_hourly"]  # parsed with this env
    for task in dag.tasks:  # one retry, right away (the DAG waits 2 min, then 4)
        task.retries, task.retry_delay, task.retry_exponential_backoff = 1, timedelta(0), 0
    run = dag.test(logical_date=END, mark_success_pattern=RAW_CHECKS)
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    states = {task_id: ti.state for task_id, ti in tis.items()}

    assert run.state == DagRunState.FAILED, states
    owner = tis["prepare.fct_sessions.test"]
    assert owner.state == TaskInstanceState.FAILED, states
    assert owner.try_number == 2, "the test task's retry ran (dbt test of fct_sessions alone)"
    assert states["prepare.fct_sessions.run"] == TaskInstanceState.SUCCESS, states
    assert states["prepare.int_session_events.test"] == TaskInstanceState.SUCCESS, states
    if mode == "watcher":
        # the build failed: its retry is Cosmos's skip (no second build), and the task that
        # absorbs it lets nothing through that the failed test task does not stop itself
        assert states["prepare.dbt_producer_watcher"] == TaskInstanceState.SKIPPED, states
    else:
        assert "prepare.dbt_producer_watcher" not in states
    downstream = {t: s for t, s in states.items()
                  if t in ("validate_session_events", "validate_sessions", "validate_products",
                           "train_intent", "train_rec")
                  or t.startswith(("gate_", "deploy_", "smoke_test_", "promote_", "rollback_"))}
    assert len(downstream) == 15, downstream
    assert set(downstream.values()) == {TaskInstanceState.UPSTREAM_FAILED}, downstream
    (alert,) = [a for a in alerts if "task prepare.fct_sessions.test of skiff_hourly" in a]
    assert PLANTED in alert  # dbt's own failure: the retry's `dbt test` of fct_sessions
    assert any(f"run {run.run_id} of skiff_hourly failed" in a for a in alerts), alerts
