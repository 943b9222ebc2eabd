"""Take the docs' pictures of the Airflow UI on a live run: ``docs/img/airflow-trigger.png``
(the trigger form with skiff_hourly's params), ``docs/img/airflow-graph.png`` (the graph of a
finished run) and ``docs/img/airflow-skiff.png`` (the Skiff page once models were served).

Nothing in the pictures is planted. In a throwaway home, on free ports of 127.0.0.1, it starts
what ``make airflow`` and ``make serve`` start, with the scheduler on and ``SKIFF_SCHEDULE``
every ``--minutes`` (:func:`skiff.ops.local_airflow.scheduled_env`, as ``make soak``): Airflow,
``skiff init``'s history, the collector, ``skiff serve`` with its prediction log posting to
the collector, and the live shoppers, a share of whom ask ``GET /predict`` as they browse. In
headless Chromium (Playwright driving Debian's ``chromium``) it signs in through the login form
and photographs the trigger form; then it unpauses skiff_hourly and skiff_monitor. The first
scheduled run trains and deploys the models into the running server, the shoppers' requests
are answered and logged, the run of the interval they landed in ingests the prediction log
with the shoppers' events and builds the monitoring marts, and skiff_monitor (scheduled on those assets) writes the page's
snapshot. Then the graph of that run and the Skiff page, which must show at least one hour of
online quality for both models, or the script fails saying what is missing. About 30 minutes
on 2 cores.

``make screenshot`` runs it; it needs ``apt-get install chromium`` (``make test`` installs it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.ops import LocalAirflow, LocalAirflowError, free_port, scheduled_env
from skiff.ops.browser import (
    BrowserError,
    chromium,
    chromium_path,
    expand_task_groups,
    open_trigger_form,
    sign_in,
)
from skiff.ops.shoppers import LiveShoppers, LiveShoppersError, run_skiff

if TYPE_CHECKING:
    from playwright.sync_api import Page

DAG_ID = "skiff_hourly"
MONITOR_ID = "skiff_monitor"
#: Scheduled runs waited for at most: the first deploys, one of the next ones must show the
#: answers served since.
RUNS = 4


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def start_server(env: dict[str, str], logs: Path, timeout: float = 120) -> subprocess.Popen[bytes]:
    """``skiff serve`` (models, control plane, ``/predict``), once it answers ``/health``."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "serve.log", "ab") as log:
        server = subprocess.Popen([sys.executable, "-m", "skiff.cli", "serve"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    health = f"http://127.0.0.1:{env['SKIFF_SERVE_PORT']}/health"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.terminate()
                raise LocalAirflowError(f"skiff serve did not answer {health}: "
                                        f"see {logs / 'serve.log'}") from None
            time.sleep(1)


def trigger_form(page: Page, airflow: LocalAirflow, train_sessions: int, out: Path) -> None:
    """The DAG's trigger form, its params filled in; closed without triggering."""
    size = page.viewport_size
    page.set_viewport_size({"width": 1300, "height": 1150})  # the whole form, unscrolled
    dialog = open_trigger_form(page, airflow, DAG_ID)
    dialog.get_by_label("Training sample (sessions)").fill(str(train_sessions))
    dialog.screenshot(path=str(out))
    page.keyboard.press("Escape")
    page.set_viewport_size(size)


def scheduled_run(airflow: LocalAirflow, index: int, timeout: float) -> dict[str, Any]:
    """The ``index``-th (0-based) scheduled run of skiff_hourly once it finished; it must succeed."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        runs = [r for r in airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=20"
                                              "&order_by=logical_date")["dag_runs"]
                if r["run_type"] == "scheduled"]
        for run in runs[:index + 1]:
            key = f"{run['dag_run_id']}:{run['state']}"
            if key not in seen:
                seen.add(key)
                say(f"{DAG_ID} {run['data_interval_start'][11:16]}-"
                    f"{run['data_interval_end'][11:16]}: {run['state']}")
        if len(runs) > index and runs[index]["state"] == "failed":
            raise LocalAirflowError(f"{runs[index]['dag_run_id']} failed: task logs under "
                                    f"{airflow.home / 'logs'}")
        if len(runs) > index and runs[index]["state"] == "success":
            return runs[index]
        if time.monotonic() > deadline:
            raise LocalAirflowError(f"scheduled run {index + 1} not done after {timeout:.0f}s")
        time.sleep(5)


def monitor_after(airflow: LocalAirflow, after: str, timeout: float) -> dict[str, Any]:
    """The first skiff_monitor run queued at or after ``after`` (ISO time), once it finished."""
    deadline = time.monotonic() + timeout
    while True:
        runs = airflow.api("GET", f"/api/v2/dags/{MONITOR_ID}/dagRuns?limit=50")["dag_runs"]
        later = sorted((r for r in runs if (r.get("queued_at") or "") >= after),
                       key=lambda r: r["queued_at"])
        if later and later[0]["state"] in ("success", "failed"):
            return later[0]
        if time.monotonic() > deadline:
            raise LocalAirflowError(f"no finished {MONITOR_ID} run queued after {after} "
                                    f"in {timeout:.0f}s")
        time.sleep(5)


def online_hours(snapshot: Path) -> dict[str, int]:
    """Hours of online quality per model in skiff_monitor's snapshot."""
    doc = json.loads(snapshot.read_text())
    return {model: len({row["hour"] for row in part.get("quality", [])
                        if row.get("online_value") is not None})
            for model, part in doc["models"].items()}


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
    """The Skiff page: the champions, their history, the gate's decisions, the hours' charts."""
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
                        help="where the airflow-*.png pictures go")
    parser.add_argument("--chromium", default=None,
                        help="Chromium executable (default: chromium on the PATH)")
    parser.add_argument("--minutes", type=int, default=10,
                        help="SKIFF_SCHEDULE's interval, in minutes (an hour's traffic each)")
    parser.add_argument("--train-sessions", type=int, default=0,
                        help="the trigger form's train_sample_sessions (0: all sessions)")
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
    env = scheduled_env(home, args.minutes)
    collect = int(env["SKIFF_COLLECT_PORT"])
    env["SKIFF_PREDLOG_URL"] = f"http://127.0.0.1:{collect}/collect"
    airflow = LocalAirflow(home / "airflow", port=free_port(), env=env,
                           log_path=home / "logs" / "airflow.log")
    shoppers = LiveShoppers(home, port=collect, env=env,
                            predict_url=f"http://127.0.0.1:{env['SKIFF_API_PORT']}/predict")
    pictures = [args.out_dir / f"airflow-{name}.png" for name in ("trigger", "graph", "skiff")]
    server = None
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up as Ctrl-C does
    try:
        with airflow, chromium(home / "chromium", width=width, height=height, scale=1.5,
                               executable=executable) as browser:
            say(f"Airflow on {airflow.url}, home {home} (logs in {home / 'logs'})")
            airflow.wait_ready(DAG_ID)
            page = browser.new_page()
            sign_in(page, airflow)
            trigger_form(page, airflow, args.train_sessions, pictures[0])
            run_skiff(env, "init")  # now, not before Airflow's start: its last interval runs first
            server = start_server(env, home / "logs")
            shoppers.start()
            for dag_id in (DAG_ID, MONITOR_ID):
                airflow.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            say(f"{DAG_ID} and {MONITOR_ID} unpaused; the shoppers ask {shoppers.env['SKIFF_EMIT_PREDICT_URL']}")
            # the first run deploys the models; the shoppers' requests land from then on, and
            # a later run ingests them and builds the monitoring marts that skiff_monitor reads
            for index in range(RUNS):
                run = scheduled_run(airflow, index, timeout=args.minutes * 60 + 1800)
                # the marts update during the run: skiff_monitor is queued before its end
                monitor = monitor_after(airflow, run["start_date"], timeout=900)
                hours = online_hours(home / "monitor" / "snapshot.json")
                say(f"{MONITOR_ID} ended {monitor['state']}; hours of online quality: {hours}")
                if hours.get("rec") and hours.get("intent"):
                    break
            else:
                raise LocalAirflowError(f"no hour of online quality after {RUNS} runs "
                                        f"(emit.log: {shoppers.logs / 'emit.log'})")
            graph(page, airflow, run["dag_run_id"], pictures[1])
            skiff_page(page, airflow, pictures[2])
    except (LocalAirflowError, BrowserError, LiveShoppersError) as exc:
        print(f"screenshot: {exc}\n(kept {home})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"screenshot: interrupted (kept {home})", file=sys.stderr)
        return 130
    finally:
        shoppers.stop()
        if server is not None:
            server.terminate()
            server.wait(30)
    shutil.rmtree(home, ignore_errors=True)
    say("wrote " + ", ".join(map(str, pictures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
