"""The bad-batch corpus of the validation tests: a good raw log, and one bad delivery per defect.

The data is :func:`skiff.data.generator.generate`'s (``SESSIONS`` sessions over ``SPAN_HOURS`` hours
ending at ``END``); the interval under test is its last hour. A log is the history before the
interval, loaded as ``skiff load`` loads it, plus the interval's delivery: the good one, or a
bad one from :func:`skiff.data.corrupt.build_bad_batch` appended instead (``skiff.data.corrupt``
documents each defect). :func:`write_corpus` writes the corpus as files, one folder per
defect, each loadable with ``skiff load``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from environ import environ
from skiff.data.corrupt import DEFECTS, BadBatch, IntervalData, append_bad_batch, build_bad_batch
from skiff.data.loader import EVENT_TABLES, load_dir
from skiff.data import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[1]
DBT_DIR = REPO / "include" / "dbt"

END = datetime(2026, 11, 18, 12, tzinfo=UTC)
START = END - timedelta(hours=1)
SPAN_HOURS = 8
SESSIONS = 1500
SEED = 11
#: The interval's folder name under $SKIFF_HOME/gx/results.
LABEL = START.strftime("%Y-%m-%dT%H%MZ")

#: Validate tasks in DAG order, with their suites.
TASK_SUITES = {
    "validate_raw_schema": "raw_schema",
    "validate_raw_events": "browsing_train",
    "validate_raw_searches": "search_train",
    "validate_raw_catalogue": "sku_to_content",
    "validate_volume": "volume",
    "validate_event_mix": "event_mix",
    "validate_session_events": "int_session_events",
    "validate_sessions": "fct_sessions",
    "validate_products": "dim_products",
}
#: Tasks that run after dbt: their defects need the marts built.
MART_TASKS = ("validate_session_events", "validate_sessions", "validate_products")
def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def make_source(out_dir: Path) -> Path:
    """The generated contract files the logs are made from."""
    from skiff.data import generate

    generate(out_dir, sessions=SESSIONS, seed=SEED, end=END, span_hours=SPAN_HOURS)
    return out_dir


def interval_data(source: Path) -> IntervalData:
    return IntervalData.from_source(source, START, END)


@dataclass(frozen=True)
class Log:
    """A raw log in a DuckDB file (and, once :meth:`build_marts` ran, its dbt models)."""

    path: Path
    defect: str | None

    @property
    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.path)

    def build_marts(self, work_dir: Path, command: str = "run") -> None:
        """The dbt models of the interval, as the DAG's prepare task group builds them (the
        first run on this warehouse). ``run`` by default; ``build`` also runs dbt's tests
        (the DAG does: ``tests/e2e/test_bad_batches.py`` checks they pass on bad batches)."""
        from dbt.cli.main import dbtRunner

        args = [
            command, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
            "--target", "duckdb", "--target-path", str(work_dir / "target"),
            "--log-path", str(work_dir / "logs"), "--quiet",
            "--vars", json.dumps({"interval_start": START.isoformat(),
                                  "interval_end": END.isoformat()}),
        ]
        with environ(SKIFF_DUCKDB_PATH=str(self.path)):
            result = dbtRunner().invoke(args)
        failed = [f"{r.node.unique_id}: {r.status} {r.message}"
                  for r in (getattr(result.result, "results", None) or [])
                  if str(r.status) in ("error", "fail", "runtime error")]
        batch = self.defect or "good"
        assert result.success, f"dbt {command} failed on the {batch} batch: {failed}"


def make_log(directory: Path, source: Path, bad: BadBatch | None = None) -> Log:
    """History before the interval, then the interval's delivery: good, or ``bad``."""
    directory.mkdir(parents=True, exist_ok=True)
    warehouse = DuckDBWarehouse(directory / "warehouse.duckdb")
    load_dir(source, warehouse, batch_id="history", until_ms=ms(START), arrival="event")
    if bad is None:
        load_dir(source, warehouse, batch_id=f"replay:{START.isoformat()}/{END.isoformat()}",
                 since_ms=ms(START), until_ms=ms(END), tables=EVENT_TABLES, arrival="event")
    else:
        append_bad_batch(bad, warehouse, batch_id=f"corrupt:{bad.defect}:{START.isoformat()}")
    return Log(warehouse.path, bad.defect if bad else None)


def write_corpus(out_dir: Path, data: IntervalData) -> dict[str, Path]:
    """One folder per defect with its bad batch as contract files (empty for an empty hour),
    plus ``drift.sql`` for the schema defects."""
    folders = {}
    for name in DEFECTS:
        bad = build_bad_batch(name, data, seed=SEED)
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for table, rows in bad.tables.items():
            pq.write_table(rows, folder / f"{table}.parquet")
        if bad.drift:
            (folder / "drift.sql").write_text(";\n".join(bad.drift) + ";\n")
        folders[name] = folder
    return folders


class FakeTI:
    """The part of a task instance the GX provider's operator uses: ``xcom_push``."""

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


def run_suite(task_id: str, log: Log, reports_dir: Path, start: datetime = START,
              end: datetime = END):
    """Run a validate task's operator on ``log`` for the interval (default the corpus's),
    outside Airflow.

    :return: ``(exception or None, the fake TI)``.
    """
    from operators.validate import GXIntervalValidationFailed, GXValidateIntervalOperator

    operator = GXValidateIntervalOperator(
        task_id=task_id, suite=TASK_SUITES[task_id],
        interval_start=start.isoformat(), interval_end=end.isoformat(),
        data_docs=False,
    )
    ti = FakeTI()
    with environ(SKIFF_DUCKDB_PATH=str(log.path), SKIFF_GX_DIR=str(reports_dir)):
        try:
            operator.execute({"ti": ti, "params": {}})
        except GXIntervalValidationFailed as exc:
            return exc, ti
    return None, ti
