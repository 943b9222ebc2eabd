"""Take the docs' pictures of the Airflow UI: ``docs/img/airflow-trigger.png`` (the trigger
form with skiff_hourly's params), ``docs/img/airflow-graph.png`` (the graph of a finished run)
and ``docs/img/airflow-skiff.png`` (the Skiff page after skiff_monitor ran).

Starts Airflow as ``make airflow`` does (:class:`skiff.ops.local_airflow.LocalAirflow`), in a
throwaway home on a free port, over a small generated sample. In headless Chromium (Playwright
driving Debian's ``chromium``) it signs in through the login form and opens the trigger form;
then it triggers the sample's last hour as that form does (with a small training sample),
waits for the run to succeed and opens the run's graph with every task group expanded; then
runs skiff_monitor and opens the Skiff page. The browser steps are :mod:`skiff.ops.browser`'s,
as the UI tests' (``tests/e2e/test_airflow_ui.py``).

``make screenshot`` runs it; it needs ``apt-get install chromium`` (``make test`` installs it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from skiff.ops import LocalAirflow, LocalAirflowError, free_port, sandbox_env
from skiff.ops.browser import (
    BrowserError,
    chromium,
    chromium_path,
    expand_task_groups,
    open_trigger_form,
    sign_in,
)
from skiff.data import init_source
from skiff.data import DuckDBWarehouse

if TYPE_CHECKING:
    from playwright.sync_api import Page

DAG_ID = "skiff_hourly"


def sample_run(airflow: LocalAirflow, home: Path, sessions: int, train_sessions: int) -> str:
    """Load a sample and trigger its last hour as the trigger form does; the run's id once it
    succeeded."""
    info = init_source(home / "source", DuckDBWarehouse(home / "warehouse.duckdb"),
                       sessions=sessions, seed=42, span_hours=8)
    start, end = (t.isoformat() for t in info.last_interval)
    run = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {
        "logical_date": datetime.now(UTC).isoformat(), "data_interval_start": start,
        "data_interval_end": end, "conf": {"train_sample_sessions": train_sessions},
        "note": "docs/screenshot.py"})
    airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    print(f"triggered {run['dag_run_id']} for {start} .. {end}; waiting for it", flush=True)
    run = airflow.wait_for_run(DAG_ID, run["dag_run_id"], timeout=1800)
    if run["state"] != "success":
        tis = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
                                 "/taskInstances?limit=200")["task_instances"]
        failed = sorted(ti["task_id"] for ti in tis if ti["state"] == "failed")
        raise LocalAirflowError(f"{run['dag_run_id']} ended {run['state']} (failed: {failed}); "
                                f"task logs under {airflow.home / 'logs'}")
    return run["dag_run_id"]


def trigger_form(page: Page, airflow: LocalAirflow, train_sessions: int, out: Path) -> None:
    """The DAG's trigger form, its params filled in; closed without triggering."""
    size = page.viewport_size
    page.set_viewport_size({"width": 1300, "height": 1150})  # the whole form, unscrolled
    dialog = open_trigger_form(page, airflow, DAG_ID)
    dialog.get_by_label("Training sample (sessions)").fill(str(train_sessions))
    dialog.screenshot(path=str(out))
    page.keyboard.press("Escape")
    page.set_viewport_size(size)


def graph(page: Page, airflow: LocalAirflow, run_id: str, out: Path) -> None:
    """The run's graph, every task group expanded."""
    # the DAG page opens on the grid unless the graph was the last view chosen
    page.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")
    page.goto(f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}")
    page.wait_for_selector(".react-flow__node")
    page.get_by_role("button", name="Collapse Details Panel").click()
    expand_task_groups(page)  # disabled (all open already) with recent UIs: not clicked then
    page.wait_for_load_state("networkidle")
    page.add_style_tag(content=".react-flow__minimap { display: none; }")  # it covers tasks
    page.get_by_role("button", name="Fit View").click()
    time.sleep(1)  # the fit is animated
    page.screenshot(path=str(out))


def skiff_page(page: Page, airflow: LocalAirflow, out: Path) -> None:
    """The Skiff page after skiff_monitor ran on what the sample run left (its champion, the
    gate's decisions, and the monitoring marts' hours)."""
    run = airflow.api("POST", "/api/v2/dags/skiff_monitor/dagRuns", {
        "logical_date": None, "note": "docs/screenshot.py"})
    airflow.api("PATCH", "/api/v2/dags/skiff_monitor", {"is_paused": False})
    run = airflow.wait_for_run("skiff_monitor", run["dag_run_id"], timeout=600)
    print(f"skiff_monitor ended {run['state']}", flush=True)  # a breach fails it: still shown
    size = page.viewport_size
    page.set_viewport_size({"width": 1300, "height": 1400})
    page.goto(f"{airflow.url}/plugin/skiff")
    page.frame_locator("iframe[title='Skiff']").get_by_text("Model: rec").wait_for()
    page.screenshot(path=str(out))
    page.set_viewport_size(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=Path("docs/img"),
                        help="where airflow-trigger.png and airflow-graph.png go")
    parser.add_argument("--chromium", default=None,
                        help="Chromium executable (default: chromium on the PATH)")
    parser.add_argument("--sessions", type=int, default=1500, help="sessions of the sample")
    parser.add_argument("--train-sessions", type=int, default=0,
                        help="the run's train_sample_sessions (0: all of the sample)")
    parser.add_argument("--size", default="1800x620", help="browser window, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    try:
        executable = Path(args.chromium) if args.chromium else chromium_path()
        if not executable.exists():
            raise BrowserError(f"No Chromium at {executable}: apt-get install chromium")
    except BrowserError as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split("x"))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="skiff-screenshot-"))
    airflow = LocalAirflow(home / "airflow", port=free_port(), env=sandbox_env(home))
    pictures = [args.out_dir / f"airflow-{name}.png" for name in ("trigger", "graph", "skiff")]
    try:
        with airflow, chromium(home / "chromium", width=width, height=height, scale=1.5,
                               executable=executable) as browser:
            print(f"Airflow on {airflow.url} (output in {airflow.log_path})", flush=True)
            airflow.wait_ready(DAG_ID)
            page = browser.new_page()
            sign_in(page, airflow)
            trigger_form(page, airflow, args.train_sessions, pictures[0])
            run_id = sample_run(airflow, home, args.sessions, args.train_sessions)
            graph(page, airflow, run_id, pictures[1])
            skiff_page(page, airflow, pictures[2])
    except (LocalAirflowError, BrowserError) as exc:
        print(f"screenshot: {exc}\n(kept {home})", file=sys.stderr)
        return 1
    shutil.rmtree(home, ignore_errors=True)
    print("wrote " + ", ".join(map(str, pictures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
