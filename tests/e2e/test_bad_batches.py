"""skiff_hourly on bad batches, with dag.test(): the run stops at the validate task meant to
catch the defect, names it, keeps a report, runs nothing downstream and fires the alerts.

The raw log is the good history plus the interval's bad delivery (``tests/bad_batches.py``);
the replay ingest is off (``SKIFF_REPLAY=off``), so the bad delivery is the hour's only one.
Two representative defects run by default (raw values stopped before dbt, a mart defect found
after it); the whole corpus and the good batch run with ``-m slow``
(``tests/e2e/test_hourly_run.py`` runs the good path by default).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_batches import (
    END,
    LABEL,
    MART_TASKS,
    SEED,
    TASK_SUITES,
    interval_data,
    make_log,
)

from skiff.data import DEFECTS, build_bad_batch

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
REPRESENTATIVE = ("null_timestamps", "unknown_skus")


def _run_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log) -> tuple[object, dict]:
    """dag.test() of the interval on ``log``; returns the run and its task states."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SKIFF_REPLAY", "off")
    monkeypatch.setenv("SKIFF_INGEST_SOURCE", "replay")  # with replay off: no ingest at all
    monkeypatch.setenv("SKIFF_DUCKDB_PATH", str(log.path))
    monkeypatch.setenv("SKIFF_GX_DIR", str(tmp_path / "gx"))
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["skiff_hourly"]  # parsed with this env
    run = dag.test(logical_date=END)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run, states


def _bad_run(defect, source, tmp_path, monkeypatch, alerts) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    bad = build_bad_batch(defect, interval_data(source), seed=SEED)
    log = make_log(tmp_path / "log", source, bad)
    run, states = _run_dag(tmp_path, monkeypatch, log)
    task_id, expect = DEFECTS[defect].task_id, DEFECTS[defect].expect

    assert run.state == DagRunState.FAILED
    assert states[task_id] == TaskInstanceState.FAILED, states  # failed, not up for retry
    prepare = {t: s for t, s in states.items() if t.startswith("prepare.")}
    if task_id in MART_TASKS:
        assert set(prepare.values()) == {TaskInstanceState.SUCCESS}, prepare
    else:  # a bad hour never reaches dbt
        assert set(prepare.values()) == {TaskInstanceState.UPSTREAM_FAILED}, prepare
    # no release task runs on a data problem: the endpoints are not touched (no rollback)
    release = {t: s for t, s in states.items()
               if t.startswith(("gate_", "deploy_", "smoke_test_", "promote_", "rollback_"))}
    assert release and set(release.values()) == {TaskInstanceState.UPSTREAM_FAILED}, release
    report = json.loads(
        (tmp_path / "gx" / "results" / LABEL / f"{TASK_SUITES[task_id]}.json").read_text())
    assert expect in report["defects"]
    (task_alert,) = [a for a in alerts if f"task {task_id} of skiff_hourly failed" in a]
    assert f"[{expect}]" in task_alert and "Data validation failed:" in task_alert
    assert "Report: " in task_alert
    assert any(f"run {run.run_id} of skiff_hourly failed" in a for a in alerts), alerts


@pytest.mark.parametrize("defect", [pytest.param(d, id=d) for d in REPRESENTATIVE])
def test_bad_batch_stops_the_run_at_validate(defect, source, tmp_path, monkeypatch, alerts) -> None:
    _bad_run(defect, source, tmp_path, monkeypatch, alerts)


@pytest.mark.slow
@pytest.mark.parametrize(
    "defect", [pytest.param(d, id=d) for d in DEFECTS if d not in REPRESENTATIVE])
def test_every_bad_batch_stops_the_run_at_validate(
    defect, source, tmp_path, monkeypatch, alerts
) -> None:
    _bad_run(defect, source, tmp_path, monkeypatch, alerts)


@pytest.mark.slow
def test_good_batch_passes_every_validate_task(source, tmp_path, monkeypatch, alerts) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    run, states = _run_dag(tmp_path, monkeypatch, make_log(tmp_path / "log", source))
    assert run.state == DagRunState.SUCCESS, states
    assert {states[t] for t in TASK_SUITES} == {TaskInstanceState.SUCCESS}
    for suite in TASK_SUITES.values():
        assert (tmp_path / "gx" / "results" / LABEL / f"{suite}.json").exists()
    assert (tmp_path / "gx" / "data_docs" / "index.html").exists()
    assert alerts == []
