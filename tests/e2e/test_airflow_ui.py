"""skiff_hourly in a running Airflow, as ``make airflow`` starts it and a person uses it.

``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; SQLite, LocalExecutor)
runs on a free port of 127.0.0.1 with its own AIRFLOW_HOME and SKIFF_HOME, over a small
generated sample whose history is loaded up to ``HISTORY_END``. The tests talk to it through
the REST API the UI uses (``skiff.ops.local_airflow``), and through the UI itself in headless
Chromium (``skiff.ops.browser``; ``make test`` installs Debian's ``chromium`` when missing):

- the trigger form's params: their JSON schemas are valid, the defaults validate, a bad value
  is refused by name, and the form's request creates the run it asked for;
- in the browser: the login form; the trigger form shows the params, and what a person types
  in it is the conf of the run it creates; the "Skiff" entry of the navigation opens the Skiff
  page (champion, history, gate decisions, charts, breaches), which refuses requests without
  Airflow's login;
- (slow) a run triggered that way succeeds, and its conf reached dbt and the training flow;
- (slow) ``airflow backfill create`` over three hours runs them one by one, oldest first;
  clearing an hour's ingest and dbt tasks (a re-run) changes nothing; and the marts equal
  one full refresh of the same raw log. In watcher mode (the default) the cleared producer
  does not build again (Cosmos skips a producer's second try): each model's task and its
  tests' task run dbt for their model, as in local mode.

Only the runs a test asks for exist: the scheduler creates no scheduled runs here
(:func:`skiff.ops.local_airflow.sandbox_env`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from jsonschema import FormatChecker
from jsonschema.validators import validator_for

from dbt_models import Dbt, assert_same, query
from skiff.data import generate
from skiff.data import load_dir
from skiff.ops import LocalAirflow, free_port, sandbox_env
from skiff.ops.browser import chromium, open_trigger_form, sign_in
from skiff.data import DuckDBWarehouse

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAG_ID = "skiff_hourly"
RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"
HOUR = timedelta(hours=1)
#: The sample: ``SPAN_HOURS`` of sessions ending at ``END``; the raw log holds it up to
#: ``HISTORY_END``, the hours after it are the DAG's to ingest.
END = datetime(2026, 11, 20, 12, tzinfo=UTC)
SPAN_HOURS = 8
SESSIONS = 1500
HISTORY_END = END - 4 * HOUR
#: The hour a test triggers from the "UI", then the three hours the backfill runs.
TRIGGERED = (HISTORY_END, HISTORY_END + HOUR)
BACKFILLED = [(HISTORY_END + k * HOUR, HISTORY_END + (k + 1) * HOUR) for k in (1, 2, 3)]
#: A small training sample keeps each run to a few minutes.
CONF = {"train_sample_sessions": 200}
RUN_TIMEOUT_S = 1500


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """SKIFF_HOME with the sample's source files and its history in the raw log."""
    home = tmp_path_factory.mktemp("airflow-ui")
    generate(home / "source", sessions=SESSIONS, seed=5, end=END, span_hours=SPAN_HOURS)
    load_dir(home / "source", DuckDBWarehouse(home / "warehouse.duckdb"), batch_id="history",
             until_ms=_ms(HISTORY_END), arrival="event")
    return home


@pytest.fixture(scope="module")
def airflow(home: Path) -> Iterator[LocalAirflow]:
    """``airflow standalone`` on a free port, ready, with skiff_hourly parsed (about 20 s)."""
    # the generated sample is the replay source: the runs slice its hours (the landing path
    # under a scheduler is tests/e2e/test_soak.py's)
    env = {**sandbox_env(home), "SKIFF_INGEST_SOURCE": "replay"}
    with LocalAirflow(home / "airflow", port=free_port(), env=env) as airflow:
        airflow.wait_ready(DAG_ID)
        yield airflow


@pytest.fixture(scope="module")
def page(airflow: LocalAirflow, home: Path) -> Iterator[Any]:
    """A headless Chromium tab signed in through the login form (about 3 s)."""
    with chromium(home / "chromium") as browser:
        tab = browser.new_page()
        tab.set_default_timeout(20_000)
        sign_in(tab, airflow)  # ends on the home page, signed in
        yield tab


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def form_request(interval: tuple[datetime, datetime], conf: dict[str, Any]) -> dict[str, Any]:
    """The body the UI's trigger form posts: logical date now (its default), the data interval
    specified manually (Data Interval > Specify Manually), the params' values as the conf."""
    start, end = interval
    return {"conf": conf, "logical_date": _iso(datetime.now(UTC)),
            "data_interval_start": _iso(start), "data_interval_end": _iso(end),
            "note": "triggered by test_airflow_ui", "partition_key": None}


def set_paused(airflow: LocalAirflow, paused: bool) -> None:
    """The DAG's pause switch (the trigger form's "Unpause" checkbox sets it too)."""
    dag = airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": paused})
    assert dag["is_paused"] is paused


def task_states(airflow: LocalAirflow, run_id: str) -> dict[str, str | None]:
    tis = airflow.api("GET", f"{RUNS}/{run_id}/taskInstances?limit=200")["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in tis}


def wait_for_success(airflow: LocalAirflow, run_id: str) -> dict[str, Any]:
    run = airflow.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT_S)
    states = task_states(airflow, run_id)
    not_done = {t: s for t, s in states.items() if s not in ("success", "skipped")}
    assert run["state"] == "success" and not not_done, (run_id, run["state"], not_done)
    return run


def task_log(airflow: LocalAirflow, run_id: str, task_id: str, try_number: int = 1) -> str:
    answer = airflow.api("GET", f"{RUNS}/{run_id}/taskInstances/{task_id}/logs/{try_number}")
    return "\n".join(str(line.get("event", "")) for line in answer["content"])


def test_trigger_form_params_and_request(airflow: LocalAirflow) -> None:
    """The params render as a form (valid JSON schemas whose defaults validate); the form's
    request is validated against them and creates a run of the chosen interval and conf."""
    set_paused(airflow, True)  # the run is created, not started
    params = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/details")["params"]
    assert set(params) == {"full_refresh", "session_lookback_hours", "train_sample_sessions",
                           "full_retrain"}
    for name, param in params.items():
        schema = param["schema"]
        validator = validator_for(schema)
        validator.check_schema(schema)  # raises SchemaError on an invalid schema
        validator(schema, format_checker=FormatChecker()).validate(param["value"])
        assert schema["title"] and param["description"], f"{name}: the form shows no label/help"

    status, answer = airflow.request("POST", RUNS, form_request(TRIGGERED, {
        "session_lookback_hours": 0}))
    assert status == 400 and "session_lookback_hours" in answer["detail"], (status, answer)

    run = airflow.api("POST", RUNS, form_request(TRIGGERED, CONF))
    try:
        assert (run["run_type"], run["state"], run["conf"]) == ("manual", "queued", CONF)
        interval = (run["data_interval_start"], run["data_interval_end"])
        assert interval == tuple(map(_iso, TRIGGERED))
    finally:
        airflow.api("DELETE", f"{RUNS}/{run['dag_run_id']}")


def test_trigger_form_in_the_browser(airflow: LocalAirflow, page: Any) -> None:
    """The trigger form, as a person fills it: the params' fields with their labels, and the
    run it creates carries what was typed (the DAG stays paused: the run is not started)."""
    set_paused(airflow, True)
    dialog = open_trigger_form(page, airflow, DAG_ID)
    for label in ("Full refresh", "Session lookback (hours)", "Training sample (sessions)"):
        dialog.get_by_label(label).first.wait_for(state="attached")  # the form's fields
    dialog.get_by_label("Training sample (sessions)").fill("123")
    unpause = dialog.get_by_label(f"Unpause {DAG_ID} on trigger")
    if unpause.is_checked():
        unpause.uncheck(force=True)  # created, not run
    before = {r["dag_run_id"] for r in airflow.api("GET", f"{RUNS}?limit=100")["dag_runs"]}
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    page.get_by_text("Dag Run Triggered").first.wait_for()
    (run,) = [r for r in airflow.api("GET", f"{RUNS}?limit=100")["dag_runs"]
              if r["dag_run_id"] not in before]
    try:
        assert run["conf"]["train_sample_sessions"] == 123, run["conf"]
        assert run["conf"]["full_refresh"] is False and run["run_type"] == "manual"
        assert airflow.api("GET", f"/api/v2/dags/{DAG_ID}")["is_paused"] is True
    finally:
        airflow.api("DELETE", f"{RUNS}/{run['dag_run_id']}")


def test_skiff_page_from_the_navigation(airflow: LocalAirflow, page: Any, home: Path,
                                        tmp_path: Path) -> None:
    """The "Skiff" entry of the UI's navigation shows the page (in the UI's frame) with what
    skiff_monitor's snapshot holds; without Airflow's login the page is refused."""
    from monitor_marts import MonitorMarts, registry_with_history
    from skiff.config import MonitorConfig
    from skiff.monitor import build_snapshot, write_snapshot

    now = datetime.now(UTC)
    marts = MonitorMarts(tmp_path / "warehouse.duckdb")
    marts.calm(now.replace(minute=0) - HOUR, hours=30)
    marts.hour(now - HOUR, psi=0.6, drift_feature="session_length")
    doc = build_snapshot(DuckDBWarehouse(marts.path).records,
                         registry_with_history(tmp_path / "registry"),
                         MonitorConfig(snapshot_dir=home / "monitor"), schema="marts")
    write_snapshot(doc, home / "monitor")  # where the api-server's page reads it

    page.goto(airflow.url + "/")
    page.get_by_text("Skiff", exact=True).click()  # the navigation's entry
    page.wait_for_url(f"{airflow.url}/plugin/skiff")
    frame = page.frame_locator("iframe[title='Skiff']")
    frame.get_by_text("Model: rec").wait_for()
    text = frame.locator("body").inner_text()
    for part in ("Model: intent", "RecFlow/2", "RecFlow/1", "IntentFlow/1", "keep champion",
                 "not above margin", "drift: PSI of session_length 0.60 > 0.2",
                 "Requests per hour", "Drift (PSI)"):
        assert part in text, part
    assert frame.locator("svg polyline").count() >= 8  # the charts have lines to show
    page.screenshot(path=str(tmp_path / "skiff-page.png"))

    status, answer = airflow.request("GET", "/skiff/", auth=False)
    assert status == 401, (status, answer)
    status, answer = airflow.request("GET", "/skiff/snapshot.json")  # bearer token
    assert status == 200 and answer["models"]["rec"]["champion"]["pathspec"] == "RecFlow/2"


@pytest.mark.slow
def test_triggered_run_succeeds_with_its_conf(airflow: LocalAirflow) -> None:
    """A run triggered as the UI does runs every task of its hour, with the conf it was given."""
    conf = {**CONF, "session_lookback_hours": 12}
    run_id = airflow.api("POST", RUNS, form_request(TRIGGERED, conf))["dag_run_id"]
    set_paused(airflow, False)
    wait_for_success(airflow, run_id)

    # the one `dbt build` (SKIFF_DBT_EXECUTION_MODE=watcher, the default) got the run's vars
    # and, in its environment, its interval
    build = airflow.api("GET", f"{RUNS}/{run_id}/taskInstances/prepare.dbt_producer_watcher")
    assert build["rendered_fields"]["vars"]["session_lookback_hours"] == "12"
    assert build["rendered_fields"]["env"]["SKIFF_DBT_INTERVAL_START"] == TRIGGERED[0].isoformat()
    assert build["rendered_fields"]["full_refresh"] == "False"
    launch = task_log(airflow, run_id, "train_intent")
    assert f"--interval_end {TRIGGERED[1].isoformat()} --max_sessions 200 " in launch, launch


@pytest.mark.slow
def test_backfill_reruns_and_full_refresh_agree(airflow: LocalAirflow, home: Path,
                                                tmp_path: Path) -> None:
    """``airflow backfill create`` over three hours, then a re-run of the middle hour's
    ingest and dbt tasks (Clear): the raw log and the marts equal one full refresh."""
    airflow.cli("backfill", "create", "--dag-id", DAG_ID,
                "--from-date", BACKFILLED[0][0].isoformat(),
                "--to-date", BACKFILLED[-1][0].isoformat(),
                "--max-active-runs", "1", "--dag-run-conf", json.dumps(CONF))
    set_paused(airflow, False)

    runs = [r for r in airflow.api("GET", f"{RUNS}?limit=100")["dag_runs"]
            if r["run_type"] == "backfill"]
    runs.sort(key=lambda r: r["data_interval_start"])
    assert [(r["data_interval_start"], r["data_interval_end"]) for r in runs] == [
        tuple(map(_iso, hour)) for hour in BACKFILLED]
    assert all(r["conf"] == CONF for r in runs)
    finished = [wait_for_success(airflow, r["dag_run_id"]) for r in runs]
    for earlier, later in pairwise(finished):  # one at a time, oldest first
        assert later["start_date"] >= earlier["end_date"], (earlier, later)

    db = home / "warehouse.duckdb"
    backfilled = Dbt(db, tmp_path / "backfilled").copy("before-rerun")
    raw_sql = "select count(*), count(distinct batch_id) from raw.browsing_train"
    raw = query(db, raw_sql)

    # Clear (re-run) the middle hour's ingest and dbt tasks, as the UI's Clear does
    middle = finished[1]["dag_run_id"]
    rerun = ["ingest_events",
             *(task for task in task_states(airflow, middle) if task.startswith("prepare."))]
    cleared = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": middle, "task_ids": rerun, "only_failed": False,
        "reset_dag_runs": True})["task_instances"]
    assert sorted(ti["task_id"] for ti in cleared) == sorted(rerun)
    wait_for_success(airflow, middle)
    ingest = airflow.api("GET", f"{RUNS}/{middle}/taskInstances/ingest_events")
    assert ingest["try_number"] == 2  # it ran again
    # watcher mode: no second build; the model's task ran dbt for its model itself
    producer = airflow.api("GET", f"{RUNS}/{middle}/taskInstances/prepare.dbt_producer_watcher")
    assert (producer["try_number"], producer["state"]) == (2, "skipped")
    model = airflow.api("GET", f"{RUNS}/{middle}/taskInstances/prepare.fct_sessions.run")
    assert (model["try_number"], model["state"]) == (2, "success")
    assert "dbt run completed successfully on retry" in task_log(
        airflow, middle, "prepare.fct_sessions.run", try_number=2)
    assert query(db, raw_sql) == raw  # the hour's events were not appended again
    assert_same(db, backfilled.db_path)  # nor did the marts change

    full = backfilled.copy("full-refresh")
    full("run", "--full-refresh")
    assert_same(db, full.db_path)
