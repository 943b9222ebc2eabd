"""skiff_hourly end to end with dag.test(): ingest (landing) -> validate -> dbt -> validate -> train on DuckDB.

One hour runs in ``make test``; its re-run (idempotent marts, the gate against the champion
re-scored on the same held-out sessions) runs with ``-m slow``, after the first hour in the
same module (the first hour's run is a module fixture).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skiff.config import SkiffConfig
from skiff.data import DuckDBWarehouse, Emitter, LandingZone, init_history

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

END = datetime(2026, 11, 20, 12, tzinfo=UTC)
MARTS = ("fct_sessions", "fct_session_sequences", "dim_products")


def _marts(warehouse: DuckDBWarehouse) -> dict[str, list[tuple]]:
    with warehouse.connect() as con:
        return {t: sorted(con.execute(f"select * from marts.{t}").fetchall(), key=repr) for t in MARTS}


@dataclass
class _Hour:
    """The first hour's run, and what the re-run compares with."""

    dag: Any
    run: Any
    warehouse: DuckDBWarehouse
    raw_after: int
    marts: dict[str, list[tuple]]
    served: list[str]


@pytest.fixture(scope="module")
def first_hour(airflow_db) -> _Hour:
    from airflow.dag_processing.dagbag import DagBag

    cfg = SkiffConfig.from_env()
    warehouse = DuckDBWarehouse(cfg.warehouse.duckdb_path)
    # `skiff init` as `make run` does: six hours of shoppers in the landing zone, all but the
    # last hour ingested; the DAG's ingest takes that hour (SKIFF_INGEST_SOURCE=landing)
    history, _ = init_history(Emitter(seed=3, sessions_per_hour=1500),
                              LandingZone.from_uri(cfg.collect.landing_uri), warehouse,
                              span_hours=6, now=END + timedelta(minutes=10))
    assert cfg.ingest.source == "landing" and history.end == END
    end = END
    raw_before = warehouse.row_counts("raw", ["browsing_train"])["browsing_train"]

    dag = DagBag(dag_folder=str(cfg.dbt.project_dir.parents[1] / "dags")).dags["skiff_hourly"]
    run = dag.test(logical_date=end)  # Airflow 3: the manual run's interval ends at its date
    raw_after = warehouse.row_counts("raw", ["browsing_train"])["browsing_train"]
    assert raw_after > raw_before  # the interval's events were appended
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    served = [m for m in ("intent", "rec") if states.get(f"deploy_{m}") == "success"]
    return _Hour(dag, run, warehouse, raw_after, _marts(warehouse), served)


def test_one_hour(first_hour: _Hour) -> None:
    from airflow.utils.state import DagRunState

    run, warehouse, first = first_hour.run, first_hour.warehouse, first_hour.marts
    start, end = END - timedelta(hours=1), END
    assert run.state == DagRunState.SUCCESS
    assert (run.data_interval_start, run.data_interval_end) == (start, end)

    assert all(first[t] for t in MARTS)
    with warehouse.connect() as con:
        in_log = con.execute("select count(distinct session_id_hash) from raw.browsing_train").fetchall()[0][0]
    assert len(first["fct_sessions"]) == in_log  # every session of the log, built in one run

    for task_id, headline in (("train_intent", "roc_auc"), ("train_rec", "mrr@20")):
        (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
        assert ti.state == "success"
        result = ti.xcom_pull(task_ids=task_id)
        assert result["pathspec"].split("/")[0] in ("IntentFlow", "RecFlow")
        assert 0 <= result["metrics"][headline] <= 1 and result["metrics"]["baselines"]

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    served = []
    for model in ("intent", "rec"):
        # the gate decides: promoted (deployed, smoke-tested through /predict) or rejected green
        assert states[f"gate_{model}"] == "success", states
        chain = [states[f"{step}_{model}"] for step in ("deploy", "smoke_test", "promote")]
        assert chain in (["success"] * 3, ["skipped"] * 3), (model, states)
        assert states[f"rollback_{model}"] in ("skipped", "removed", None), states
        served += [model] if chain[0] == "success" else []
    assert served, "on a first run at least one model beats its baselines and is served"
    assert served == first_hour.served


@pytest.mark.slow
def test_a_rerun_of_the_hour_changes_nothing_and_gates_against_the_champion(
    first_hour: _Hour,
) -> None:
    from airflow.utils.state import DagRunState

    warehouse = first_hour.warehouse
    rerun = first_hour.dag.test(logical_date=END, run_conf={"full_refresh": False})
    assert rerun.state == DagRunState.SUCCESS
    assert warehouse.row_counts("raw", ["browsing_train"])["browsing_train"] == first_hour.raw_after
    assert _marts(warehouse) == first_hour.marts  # idempotent: same rows, no duplicates
    assert first_hour.served
    for model in first_hour.served:
        # the rerun's flow re-scored the champion on its own held-out sessions; the gate
        # compared the two there (not with the champion's score at its promotion)
        (gate,) = [ti for ti in rerun.get_task_instances() if ti.task_id == f"gate_{model}"]
        decision = gate.xcom_pull(task_ids=f"gate_{model}")
        assert decision["against"] == "champion", decision
        assert decision["champion_pathspec"] == decision["metrics"]["champion"]["pathspec"]
