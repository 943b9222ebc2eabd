"""Great Expectations on the largest log of the scale (36M events at ``full``): the validate
stage's suites for one hour, and the data-bearing suites on the whole log, read into pandas
(the hourly path) and inside DuckDB (``skiff validate --all``).

Each suite runs through the DAG's own operator (``GXValidateIntervalOperator.execute``,
outside Airflow, as ``tests/bad_batches.py`` does): it renders the suite, reads the rows into
a pandas DataFrame (the DuckDB backend), validates them with the GX provider and writes the
JSON report and Data Docs page, as the task does. The runs happen in worker processes with
their own ``SKIFF_HOME``, after a warm-up validation, so the figures are the validation's
cost without GX's import.

- **hour**: every suite of ``include/gx/suites`` on the log's last hour (median of 3 runs);
- **whole log**: ``browsing_train``, ``int_session_events`` and ``fct_sessions`` with the
  interval set to the whole log, one run each in its own process (peak RSS is reported).
  ``raw_schema`` and ``dim_products`` do not depend on the interval, and ``volume`` compares
  one interval with the hours before it, so a whole-log interval means nothing to them.
  On DuckDB the whole slice becomes one pandas DataFrame: when the estimated peak would not
  fit in half the available memory, the suite runs on the largest slice that does (the last
  N hours) and the whole log's time is projected from its rows/s, and says so.
- **whole log, in the warehouse**: the same suites over the whole log as ``skiff validate
  --all`` runs them (:func:`skiff.validate.whole_log.validate_range`: GX's metrics computed
  inside DuckDB under ``SKIFF_VALIDATE_MEMORY_LIMIT``, judged by GX), each in a fresh process
  after a warm-up, with its peak RSS; then every suite of ``include/gx/suites`` in one process,
  as the command runs them. At ``small`` scale, ``browsing_train`` runs once more under a
  small memory limit (:data:`SPILL_LIMIT`): what does not fit spills to disk, and the peak
  RSS shows the bound holds.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import REPO, Figure, run_worker, skiff_env
from bench.data import END, LOGS, ensure_marts, get_log

#: This module, as the worker processes import it.
WORKER = "bench.bench_validate"
WHOLE_LOG_SUITES = ("browsing_train", "int_session_events", "fct_sessions")
HOUR_RUNS = 3
#: Peak memory of a validation over the size of its DataFrame (pandas copies, GX's metrics),
#: measured at ``small`` scale; the whole-log guard uses it with :data:`MEMORY_SHARE`.
PEAK_OVER_FRAME = 4.0
#: Share of the machine's available memory a whole-log validation may take.
MEMORY_SHARE = 0.5
#: ``SKIFF_VALIDATE_MEMORY_LIMIT`` of the bounded run (small scale: the 1M-row log's rows alone
#: take ~480 MiB as a DataFrame).
SPILL_LIMIT = "100MB"


class _FakeTI:
    """What the GX provider's operator uses of a task instance: ``xcom_push``."""

    def xcom_push(self, key: str, value: object) -> None:
        pass


def _validate(suite: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Run one suite through the DAG's operator; its seconds, rows, size and outcome."""
    from operators.validate import GXIntervalValidationFailed, GXValidateIntervalOperator

    operator = GXValidateIntervalOperator(task_id=f"validate_{suite}", suite=suite,
                                          interval_start=start.isoformat(),
                                          interval_end=end.isoformat())
    defects: list[str] = []
    started = time.perf_counter()
    try:
        operator.execute({"ti": _FakeTI(), "params": {}})
    except GXIntervalValidationFailed as exc:
        defects = list(exc.defects)
    seconds = time.perf_counter() - started
    frame = operator.batch_parameters["dataframe"]
    return {"seconds": seconds, "rows": len(frame), "defects": defects,
            "frame_bytes": int(frame.memory_usage(deep=True).sum())}


def _in_warehouse(suites: list[str], start: datetime, end: datetime) -> dict[str, Any]:
    """``skiff validate``'s path: the suites over the range inside DuckDB, one after another."""
    from skiff.config import SkiffConfig
    from skiff.data import warehouse_from_config
    from skiff.validate import ValidationWindow
    from skiff.validate.whole_log import validate_range

    config = SkiffConfig.from_env()
    warehouse = warehouse_from_config(config.warehouse)
    last = END - timedelta(hours=1)  # warm-up: GX's import and first validation
    validate_range(config, ValidationWindow(last, END), warehouse, suites=["dim_products"])
    started = time.perf_counter()
    results = validate_range(config, ValidationWindow(start, end), warehouse, suites=suites)
    seconds = time.perf_counter() - started
    rows = {r.suite.name: max([int(x.result.get("element_count") or 0) for x in r.result.results]
                              or [0]) for r in results}
    failed = {r.suite.name: sorted({x.expectation_config.meta["defect"]
                                    for x in r.result.results if not x.success})
              for r in results}
    return {"seconds": seconds, "rows": rows, "defects": failed,
            "suite_seconds": {r.suite.name: r.seconds for r in results}}


def _batch_rows(suite: str, start: datetime, end: datetime) -> int:
    """Rows the suite's batch SQL selects for the interval (without reading them)."""
    from hooks.gx_warehouse import GXWarehouseHook

    from skiff.config import SkiffConfig
    from skiff.validate import SuiteSpec, ValidationWindow, fetch_parameters

    config = SkiffConfig.from_env()
    hook = GXWarehouseHook(config.warehouse)
    window = ValidationWindow.of(start, end)
    spec = SuiteSpec.load(suite, config.validation.suites_dir)
    sql = spec.render(fetch_parameters(spec, config, window, hook.warehouse)).sql
    return hook.records(f"select count(*) from ({sql}) as batch")[0][0]


def worker(request: str) -> None:
    """Entry point of a worker process: run the request's suites (or only count the rows of
    their batches, with ``count_only``), write the results as JSON to ``out``.

    :param request: path of a JSON file ``{"start", "end", "suites", "runs" | "count_only" |
        "in_warehouse", "out"}``.
    """
    sys.path.insert(0, str(REPO / "plugins"))
    spec = json.loads(Path(request).read_text())
    start, end = datetime.fromisoformat(spec["start"]), datetime.fromisoformat(spec["end"])
    if spec.get("count_only"):
        results = {suite: _batch_rows(suite, start, end) for suite in spec["suites"]}
    elif spec.get("in_warehouse"):
        results = _in_warehouse(spec["suites"], start, end)
    else:
        last = END - timedelta(hours=1)
        _validate("dim_products", last, END)  # warm-up: GX's first context and imports
        results = {}
        for suite in spec["suites"]:
            runs = [_validate(suite, start, end) for _ in range(spec["runs"])]
            results[suite] = {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(spec["out"]).write_text(json.dumps({"suites": results, "peak_rss": peak}))


def _available_memory() -> int:
    """``MemAvailable`` of /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def run(scale: str) -> list[Figure]:
    from skiff.validate import SUITES

    name = list(LOGS[scale])[-1]
    log = ensure_marts(get_log(name, *LOGS[scale][name]))
    hour_start, hour_end = log.last_hour
    log_start = END - timedelta(hours=log.span_hours)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="skiff-bench-validate-") as tmp:
        env = skiff_env(Path(tmp) / "home", SKIFF_DUCKDB_PATH=str(log.db))
        hour = run_worker(WORKER, Path(tmp) / "hour", env, start=hour_start, end=hour_end,
                          suites=list(SUITES), runs=HOUR_RUNS)
        for suite in SUITES:
            r = hour["suites"][suite]
            figures.append(Figure(
                "validate", f"last hour: {suite}", r["seconds"], "s", "",
                f"{r['rows']:,} rows; median of {HOUR_RUNS}"
                + (f"; FAILED: {', '.join(r['defects'])}" if r["defects"] else "")))
        total = sum(hour["suites"][s]["seconds"] for s in SUITES)
        figures.append(Figure("validate", f"last hour: all {len(SUITES)} suites", total, "s", "",
                              f"sum of the above; {name}-event log"))

        counts = run_worker(WORKER, Path(tmp) / "count", env, start=log_start, end=END,
                            suites=list(WHOLE_LOG_SUITES), count_only=True)["suites"]
        pandas_whole: dict[str, tuple[float, int, int]] = {}
        for suite in WHOLE_LOG_SUITES:
            per_row = hour["suites"][suite]["frame_bytes"] / max(hour["suites"][suite]["rows"], 1)
            estimate = counts[suite] * per_row * PEAK_OVER_FRAME
            budget = _available_memory() * MEMORY_SHARE
            hours = log.span_hours if estimate <= budget else \
                max(1, int(log.span_hours * budget / estimate))
            whole = run_worker(WORKER, Path(tmp) / f"log-{suite}", env,
                               start=END - timedelta(hours=hours), end=END, suites=[suite], runs=1)
            r = whole["suites"][suite]
            rate = r["rows"] / r["seconds"]
            failed = f"; FAILED: {', '.join(r['defects'])}" if r["defects"] else ""
            measured = (f"{r['rows']:,} rows ({r['frame_bytes'] / 2**20:,.0f} MiB DataFrame), "
                        f"peak RSS {whole['peak_rss'] / 2**30:.1f} GiB{failed}")
            if hours == log.span_hours:
                figures.append(Figure("validate", f"whole log: {suite}", r["seconds"], "s", "",
                                      f"{measured}; {hours} h interval"))
            else:
                figures.append(Figure(
                    "validate", f"whole log: {suite}, projected", counts[suite] / rate, "s", "",
                    f"PROJECTED from the last {hours} h: {r['seconds']:.1f} s for {measured}; all "
                    f"{counts[suite]:,} rows at once need ~{estimate / 2**30:.1f} GiB, over "
                    f"{MEMORY_SHARE:.0%} of the available memory ({budget / 2**30:.1f} GiB)"))
            figures.append(Figure("validate", f"whole log: {suite} rows/s", rate, "rows/s", "",
                                  "read into pandas + validate + report"))
            pandas_whole[suite] = (counts[suite] / rate, whole["peak_rss"],
                                   0 if hours == log.span_hours else hours)

        for suite in WHOLE_LOG_SUITES:
            figures.append(_in_warehouse_figure(
                run_worker(WORKER, Path(tmp) / f"push-{suite}", env, start=log_start, end=END,
                           suites=[suite], in_warehouse=True), suite, pandas_whole[suite]))
        if scale == "small":
            spill = run_worker(WORKER, Path(tmp) / "push-spill", {
                **env, "SKIFF_VALIDATE_MEMORY_LIMIT": SPILL_LIMIT}, start=log_start, end=END,
                suites=["browsing_train"], in_warehouse=True)
            figures.append(Figure(
                "validate", f"whole log, in the warehouse, {SPILL_LIMIT} limit: browsing_train",
                spill["suites"]["seconds"], "s", "",
                f"SKIFF_VALIDATE_MEMORY_LIMIT={SPILL_LIMIT} (what does not fit spills): peak RSS "
                f"{spill['peak_rss'] / 2**30:.2f} GiB"))
        every = run_worker(WORKER, Path(tmp) / "push-all", env, start=log_start, end=END,
                           suites=list(SUITES), in_warehouse=True)
        failed = {s: d for s, d in every["suites"]["defects"].items() if d}
        figures.append(Figure(
            "validate", f"whole log, in the warehouse: all {len(SUITES)} suites",
            every["suites"]["seconds"], "s", "",
            f"skiff validate --all in one process: "
            f"{max(every['suites']['rows'].values()):,} rows at most per suite, peak RSS "
            f"{every['peak_rss'] / 2**30:.2f} GiB"
            + (f"; FAILED: {failed}" if failed else "")))
    return figures


def _in_warehouse_figure(run: dict[str, Any], suite: str,
                         pandas: tuple[float, int, int]) -> Figure:
    """One suite inside DuckDB, beside its pandas figure (``(seconds, peak RSS, hours)``)."""
    r = run["suites"]
    seconds, peak, hours = pandas
    before = (f"pandas: {seconds:.1f} s{' projected' if hours else ''}, peak RSS "
              f"{peak / 2**30:.1f} GiB{f' for the last {hours} h' if hours else ''}")
    failed = f"; FAILED: {', '.join(r['defects'][suite])}" if r["defects"][suite] else ""
    return Figure("validate", f"whole log, in the warehouse: {suite}", r["seconds"], "s", "",
                  f"{r['rows'][suite]:,} rows, peak RSS {run['peak_rss'] / 2**30:.2f} GiB "
                  f"(fresh process, GX imported); {before}{failed}")


if __name__ == "__main__":  # python -m bench.bench_validate [full]
    print(Figure.table(run(sys.argv[1] if len(sys.argv) > 1 else "small")))
