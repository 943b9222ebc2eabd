"""``make soak``: skiff_hourly run by a real scheduler, interval after interval, on live shoppers.

In a fresh home (``build/soak``): ``skiff init`` writes the shoppers' history; the collector
and the live emitter start (:class:`skiff.ops.shoppers.LiveShoppers`); ``airflow standalone``
starts on 127.0.0.1 with the job schedule on and ``SKIFF_SCHEDULE`` every ``--minutes``, the
DAG is unpaused, and the soak watches ``--intervals`` scheduled runs go by, injecting faults
on the way (unless ``--no-faults``):

* **bad delivery** (2nd interval): a landing file of events timestamped two days ahead lands
  in the interval; the run must fail at a validate task and alert, while the Slack stand-in
  (a webhook receiver on 127.0.0.1, the ``slack_alerts`` connection) answers 503: Slack down.
  The next interval must be green.
* **task killed mid-dbt** (3rd): SIGKILL to the process of a running ``prepare.*`` task; its
  retry must recover and the run end green.
* **collector killed** (4th): SIGKILL to ``skiff collect`` mid-interval, restarted 10 s later;
  no acknowledged event may be lost.

Then it stops everything and checks: every event the shoppers posted (distinct, as the
emitter's deterministic deliveries over the live span) is in the raw log, none missing, and
the raw log holds nothing else but the history and the planted bad file; the marts equal a
``dbt build --full-refresh`` of the same raw log (``EXCEPT ALL`` both ways; the sessions of
the interval that failed on purpose are left out, its re-run being an operator's call); the
wall time of each run (p50, max) and the peak memory of every process (RSS sum). JSON goes to
``bench/results/soak.json`` and a chart (duration and rows per interval) to
``docs/img/soak.png``; ``--quick`` (the slow test) skips the comparison with a full refresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import REPO, skiff_env

if TYPE_CHECKING:
    from tests.webhook_receiver import WebhookReceiver

RESULTS = REPO / "bench" / "results"
CHART = REPO / "docs" / "img" / "soak.png"
DAG_ID = "skiff_hourly"
MARTS = ("fct_sessions", "fct_session_sequences", "dim_products")
#: Interval (1-based, in scheduled order) of each fault.
FAULTS = {2: "bad_delivery", 3: "kill_task_mid_dbt", 4: "kill_collector"}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _environment(home: Path, minutes: int, slack_url: str) -> dict[str, str]:
    from skiff.ops.local_airflow import scheduled_env

    env = skiff_env(home)
    scheduled = scheduled_env(home, minutes)  # what it sets wins (its DB, not one a test runner exported)
    env.update({k: v for k, v in scheduled.items() if os.environ.get(k) != v})
    env.update({
        "SKIFF_RUN_DURATION_ALERT_MINUTES": "0",
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook",
                                                 "password": slack_url}),
    })
    return env


class _Memory:
    """Peak of the summed RSS of this process's children (Airflow, tasks, the shoppers)."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peak = 0

    def sample(self) -> None:
        import psutil

        total = 0
        for proc in self.me.children(recursive=True):
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)


def _bad_delivery(landing: Path, seed: int) -> tuple[Path, int]:
    """A landing file arriving now whose events are timestamped two days ahead."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from skiff.data.contract import BROWSING
    from skiff.data.emitter import ARRIVAL, Emitter, Events
    from skiff.data.emitter_files import write_landing

    now = datetime.now(UTC)
    events = Emitter(seed=seed + 1).events(now.replace(minute=0, second=0, microsecond=0))
    table = events.browsing.slice(0, 300)
    ahead = pc.add(table[BROWSING.time_column], pa.scalar(2 * 86_400_000, pa.int64()))
    table = table.set_column(table.schema.get_field_index(BROWSING.time_column),
                             BROWSING.time_column, ahead)
    arrival = pa.array([int(now.timestamp() * 1000)] * table.num_rows, pa.int64())
    no_search = events.search.slice(0, 0).append_column(ARRIVAL, pa.array([], pa.int64()))
    delivered = Events(table.append_column(ARRIVAL, arrival), no_search)
    (path,) = write_landing(landing, delivered, prefix="soak-bad")
    return path, table.num_rows


def _kill_task_mid_dbt(airflow: Any, run_id: str) -> str | None:
    """SIGKILL the process of a running ``prepare.*`` task instance of ``run_id``."""
    tis = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
    for ti in tis["task_instances"]:
        if ti["task_id"].startswith("prepare.") and ti["state"] == "running" and ti.get("pid"):
            try:
                os.kill(int(ti["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                continue
            return ti["task_id"]
    return None


def _task_states(airflow: Any, run_id: str) -> dict[str, dict[str, Any]]:
    tis = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
    return {ti["task_id"]: {"state": ti["state"], "try_number": ti["try_number"]}
            for ti in tis["task_instances"]}


def soak(intervals: int, minutes: int, *, faults: bool = True, quick: bool = False,
         home: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the soak; return its report (see the module docstring)."""
    from skiff.data.history import History
    from skiff.ops.local_airflow import LocalAirflow, free_port
    from skiff.ops.shoppers import LiveShoppers, run_skiff

    home = home or REPO / "build" / "soak"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    from tests.webhook_receiver import WebhookReceiver

    slack = WebhookReceiver()  # Slack's stand-in on 127.0.0.1: 503 while down
    env = _environment(home, minutes, slack.url("/services/T000/B000/SOAK"))
    say = (lambda text: print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)) if progress \
        else (lambda text: None)
    started = time.monotonic()
    say(f"soak: {intervals} intervals of {minutes} min in {home} (faults {'on' if faults else 'off'})")
    shoppers = LiveShoppers(home, port=int(env["SKIFF_COLLECT_PORT"]), env=env)
    airflow = LocalAirflow(home / "airflow", port=free_port(), env=env,
                           log_path=home / "logs" / "airflow.log")
    memory = _Memory()
    runs: dict[str, dict[str, Any]] = {}
    injected: dict[int, dict[str, Any]] = {}
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up as Ctrl-C does
    try:
        airflow.start()
        airflow.wait_ready(DAG_ID)
        # the history up to the schedule's last complete interval, which the scheduler runs
        # first once unpaused (catchup is off): done now, not before Airflow's minute of start
        run_skiff(env, "init")
        live_from = History.read(home / "landing" / "_skiff_history.json").emitted_to.isoformat()
        shoppers.start()
        airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        say(f"Airflow on {airflow.url}, collector on {shoppers.url}; {DAG_ID} unpaused")
        order: list[str] = []
        deadline = time.monotonic() + (intervals + 3) * max(minutes, 12) * 60
        while True:
            memory.sample()
            shoppers.check()
            if airflow.process.poll() is not None:
                raise airflow.error("airflow standalone exited")
            listed = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100"
                                        "&order_by=logical_date")["dag_runs"]
            for run in listed:
                if run["run_type"] != "scheduled":
                    continue
                if run["dag_run_id"] not in runs:
                    order.append(run["dag_run_id"])
                    say(f"interval {len(order)}: {run['data_interval_start']} .. "
                        f"{run['data_interval_end']} started")
                record = runs.setdefault(run["dag_run_id"], {"index": order.index(run["dag_run_id"]) + 1})
                if record.get("state") not in ("success", "failed"):
                    record.update(state=run["state"], start=run["start_date"], end=run["end_date"],
                                  interval=[run["data_interval_start"], run["data_interval_end"]])
                    if run["state"] in ("success", "failed"):
                        record["seconds"] = (datetime.fromisoformat(run["end_date"]) -
                                             datetime.fromisoformat(run["start_date"])).total_seconds()
                        record["tasks"] = _task_states(airflow, run["dag_run_id"])
                        say(f"interval {record['index']}: {run['state']} in "
                            f"{record['seconds']:.0f}s")
                        if faults and FAULTS.get(record["index"]) == "bad_delivery":
                            slack.down = False
            finished = [r for r in runs.values() if r.get("state") in ("success", "failed")]
            upcoming = len(order) + 1  # the interval now filling up
            if faults and FAULTS.get(upcoming) == "bad_delivery" and upcoming not in injected \
                    and order and runs[order[-1]].get("interval"):
                path, rows = _bad_delivery(home / "landing", int(env.get("SKIFF_EMIT_SEED", "42")))
                slack.down = True
                injected[upcoming] = {"fault": "bad_delivery", "file": path.name, "rows": rows}
                say(f"fault: bad delivery {path.name} ({rows} events two days ahead); Slack down")
            current = len(order)
            if faults and FAULTS.get(current) == "kill_task_mid_dbt" and current not in injected:
                killed = _kill_task_mid_dbt(airflow, order[-1])
                if killed:
                    injected[current] = {"fault": "kill_task_mid_dbt", "task": killed}
                    say(f"fault: SIGKILL to the process of {killed}")
            if faults and FAULTS.get(upcoming) == "kill_collector" and upcoming not in injected \
                    and len(finished) >= current - 1 >= 0 and order:
                shoppers.kill_collector()
                say("fault: SIGKILL to skiff collect; restart in 10 s")
                time.sleep(10)
                shoppers.start_collector()
                injected[upcoming] = {"fault": "kill_collector"}
            if len(finished) >= intervals and len(finished) == len(runs):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(finished)} of {intervals} intervals finished")
            time.sleep(5)
        airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        try:
            airflow.stop()
        finally:
            shoppers.stop()
            slack.close()
    say("stopped; checking the raw log and the marts")
    report = _report(home, env, runs, injected, live_from, slack, memory.peak, faults, quick)
    report.update(intervals=intervals, minutes=minutes,
                  wall_minutes=round((time.monotonic() - started) / 60, 1),
                  load_average=os.getloadavg())
    return report


def _report(home: Path, env: dict[str, str], runs: dict[str, dict[str, Any]],
            injected: dict[int, dict[str, Any]], live_from: str, slack: WebhookReceiver,
            peak_rss: int, faults: bool, quick: bool) -> dict[str, Any]:
    import duckdb

    from skiff.data import DuckDBWarehouse, Emitter, LandingZone, ingest_arrivals
    from skiff.data.history import History
    from skiff.times import to_epoch_ms

    ordered = sorted(runs.values(), key=lambda r: r["index"])
    expected_fail = {i for i, f in FAULTS.items() if f == "bad_delivery"} if faults else set()
    intervals = [{"index": r["index"], "interval": r["interval"], "state": r["state"],
                  "seconds": r.get("seconds"), "fault": injected.get(r["index"], {}).get("fault"),
                  "failed_tasks": sorted(t for t, s in r.get("tasks", {}).items()
                                         if s["state"] == "failed"),
                  "retried_tasks": sorted(t for t, s in r.get("tasks", {}).items()
                                          if s["try_number"] > 1 and s["state"] == "success")}
                 for r in ordered]
    db = home / "warehouse.duckdb"
    history = History.read(home / "landing" / "_skiff_history.json")
    live_from_ms, reached_ms = to_epoch_ms(live_from), to_epoch_ms(history.emitted_to)
    emitter = Emitter(seed=int(env.get("SKIFF_EMIT_SEED", "42")),
                      sessions_per_hour=float(env["SKIFF_EMIT_SESSIONS_PER_HOUR"]))
    keys = ("session_id_hash", "event_type", "product_action", "product_sku_hash",
            "server_timestamp_epoch_ms", "hashed_url")
    posted = set()
    for delivered in emitter.deliveries(live_from_ms, reached_ms):
        posted |= set(zip(*(delivered.browsing[k].to_pylist() for k in keys)))
    # the marts first, against a full refresh of the raw log the runs built them from
    compared = None if quick else _compare_full_refresh(home, env, ordered, expected_fail)
    # what arrived after the last run's interval waits for the next run: ingest it now, so
    # that everything the shoppers posted can be looked for in the raw log
    ran_to = max(datetime.fromisoformat(r["interval"][1].replace("Z", "+00:00")) for r in ordered)
    late = ingest_arrivals(DuckDBWarehouse(db), LandingZone.from_uri(home / "landing"), ran_to,
                           datetime.now(UTC) + timedelta(hours=2))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            f"select {', '.join(keys)} from raw.browsing_train where arrival_ts_ms >= ?",
            [live_from_ms]).fetchall()
        per_interval = con.execute(
            "select batch_id, count(*) from raw.browsing_train group by 1").fetchall()
    bad_ms = to_epoch_ms(datetime.now(UTC) + timedelta(days=1))  # the planted file's events
    live = [r for r in rows if r[4] < bad_ms]
    in_raw = set(live)
    with duckdb.connect(str(db), read_only=True) as con:
        ((bad_rows,),) = con.execute("select count(*) from raw.browsing_train where "
                                     "server_timestamp_epoch_ms >= ?", [bad_ms]).fetchall()
    report: dict[str, Any] = {
        "intervals_run": len(ordered),
        "green": sum(r["state"] == "success" for r in ordered),
        "failed": sum(r["state"] == "failed" for r in ordered),
        "failed_as_expected": sorted(r["index"] for r in ordered
                                     if r["state"] == "failed" and r["index"] in expected_fail),
        "failed_unexpectedly": sorted(r["index"] for r in ordered
                                      if r["state"] == "failed" and r["index"] not in expected_fail),
        "faults": {str(k): v for k, v in injected.items()},
        "alerts": {"posted": sum(p.status == 200 for p in slack.posts),
                   "refused_while_slack_down": sum(p.status == 503 for p in slack.posts)},
        "events": {"posted_distinct": len(posted), "raw_rows_live": len(live),
                   "raw_distinct_live": len(in_raw), "missing": len(posted - in_raw),
                   "raw_not_posted": len(in_raw - posted),
                   "bad_rows_ingested": bad_rows,
                   "ingested_after_the_last_run": sum(late.rows.values())},
        "rows_per_batch": {b: n for b, n in per_interval if b and b.startswith("landing:")},
        "seconds_p50": statistics.median(r["seconds"] for r in ordered if r.get("seconds")),
        "seconds_max": max(r["seconds"] for r in ordered if r.get("seconds")),
        "peak_rss_mb": round(peak_rss / 2**20),
        "per_interval": intervals,
    }
    if compared is not None:
        report["marts_vs_full_refresh"] = compared
    return report


def _compare_full_refresh(home: Path, env: dict[str, str], ordered: list[dict[str, Any]],
                          expected_fail: set[int]) -> dict[str, Any]:
    """The marts against ``dbt build --full-refresh`` of a copy of the same raw log."""
    import duckdb

    from skiff.times import to_epoch_ms

    copy = home / "full-refresh.duckdb"
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("checkpoint")
    shutil.copy(home / "warehouse.duckdb", copy)
    dbt_dir = REPO / "include" / "dbt"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--full-refresh", "--project-dir",
         str(dbt_dir), "--profiles-dir", str(dbt_dir), "--target-path", str(home / "dbt-target"),
         "--log-path", str(home / "dbt-logs")],
        env={**env, "SKIFF_DUCKDB_PATH": str(copy)}, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"dbt run --full-refresh failed:\n{done.stdout[-3000:]}")
    failed = [r["interval"] for r in ordered if r["index"] in expected_fail]
    # the sessions of an interval that failed on purpose (its re-run is an operator's call),
    # and those with rows arriving after the last run's interval: ingested with its files
    # (a file belongs to the interval of its first arrival), rebuilt by the next run
    ran_to = max(to_epoch_ms(r["interval"][1]) for r in ordered)
    skip = " or ".join([f"(arrival_ts_ms >= {to_epoch_ms(a)} and arrival_ts_ms < {to_epoch_ms(b)})"
                        for a, b in failed] + [f"arrival_ts_ms >= {ran_to}"])
    out: dict[str, Any] = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{home / 'warehouse.duckdb'}' as hourly (read_only)")
        con.execute(f"attach '{copy}' as refreshed (read_only)")
        con.execute("create temp table left_out as select distinct session_id_hash as s "
                    f"from hourly.raw.browsing_train where {skip} union select distinct "
                    f"session_id_hash from hourly.raw.search_train where {skip}")
        for mart in MARTS:
            cols = [c[0] for c in con.execute(f"describe hourly.marts.{mart}").fetchall()]
            where = ("where session_id not in (select s from left_out)"
                     if "session_id" in cols else "")
            a, b = f"(select * from hourly.marts.{mart} {where})", \
                   f"(select * from refreshed.marts.{mart} {where})"
            out[mart] = dict(zip(("rows_hourly", "rows_full_refresh", "only_hourly",
                                  "only_full_refresh"), con.execute(
                f"select (select count(*) from {a}), (select count(*) from {b}), "
                f"(select count(*) from (from {a} except all from {b})), "
                f"(select count(*) from (from {b} except all from {a}))").fetchall()[0]))
        out["sessions_left_out"] = con.execute("select count(*) from left_out").fetchall()[0][0]
        out["sessions_compared"] = con.execute(
            "select count(*) from hourly.marts.fct_sessions where session_id not in "
            "(select s from left_out)").fetchall()[0][0]
    out["equal"] = all(v["only_hourly"] == v["only_full_refresh"] == 0
                       for k, v in out.items() if k in MARTS)
    return out


def write_chart(report: dict[str, Any], path: Path) -> Path:
    """Duration and rows ingested per interval, the faults marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["per_interval"]
    index = [r["index"] for r in rows]
    canvas = Figure(figsize=(10, 4.2), layout="constrained")
    FigureCanvasAgg(canvas)
    ax = canvas.subplots()
    colours = ["#3a9d5d" if r["state"] == "success" else "#d64545" for r in rows]
    ax.bar(index, [r["seconds"] or 0 for r in rows], color=colours)
    ax.set_xlabel("scheduled interval")
    ax.set_ylabel("run wall time (s)")
    for r in rows:
        if r["fault"]:
            ax.annotate(r["fault"].replace("_", " "), (r["index"], r["seconds"] or 0),
                        xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7)
    batches = report["rows_per_batch"]
    by_start = {b.split(":", 1)[1].split("/")[0]: n for b, n in batches.items()}
    counts = [by_start.get(_iso(r["interval"][0]), 0) for r in rows]
    twin = ax.twinx()
    twin.plot(index, counts, "o-", color="#3366aa", markersize=3)
    twin.set_ylabel("browsing rows ingested", color="#3366aa")
    canvas.suptitle(f"make soak: {report['intervals_run']} intervals of {report['minutes']} min, "
                    f"{report['green']} green, failed as planned {report['failed_as_expected']}; "
                    f"p50 {report['seconds_p50']:.0f}s", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.savefig(path, dpi=110)
    return path


def _iso(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals", type=int, default=24)
    parser.add_argument("--minutes", type=int, default=10, help="length of an interval")
    parser.add_argument("--no-faults", dest="faults", action="store_false")
    parser.add_argument("--quick", action="store_true",
                        help="skip the comparison with a full refresh")
    parser.add_argument("--home", type=Path, default=REPO / "build" / "soak",
                        help="the soak's SKIFF_HOME (emptied first)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    report = soak(args.intervals, args.minutes, faults=args.faults, quick=args.quick,
                  home=args.home)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"report: {args.out}; chart: {write_chart(report, CHART)}")
    ok = not report["failed_unexpectedly"] and report["events"]["missing"] == 0 and \
        report.get("marts_vs_full_refresh", {}).get("equal", True)
    print(json.dumps({k: report[k] for k in ("intervals_run", "green", "failed_as_expected",
                                              "failed_unexpectedly", "events", "seconds_p50",
                                              "seconds_max", "peak_rss_mb")}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
