"""Benchmark logs: generated Coveo-schema event logs of set sizes, loaded into DuckDB once and kept.

Every log has the same events per hour (about 50k at ``full`` scale), so logs of different
sizes differ in history, not in what one hour brings: an hourly run's cost can be compared
across them. Logs are kept under ``$SKIFF_HOME/bench/<name>`` and rebuilt only when their
parameters change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import REPO

#: End of every benchmark log (fixed, so logs are reproducible).
END = datetime(2026, 11, 1, tzinfo=UTC)
#: ``{scale: {log name: (sessions, span hours)}}``; about 7.1 browsing events per session.
LOGS = {
    "small": {"0.1M": (14_000, 20), "0.3M": (42_000, 60), "1M": (140_000, 200)},
    "full": {"1M": (140_000, 20), "10M": (1_400_000, 200), "36M": (5_000_000, 720)},
}


@dataclass(frozen=True)
class Log:
    """A generated, loaded log."""

    name: str
    sessions: int
    span_hours: int
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def source(self) -> Path:
        return self.root / "src"

    @property
    def last_hour(self) -> tuple[datetime, datetime]:
        return END - timedelta(hours=1), END

    def env(self) -> dict[str, str]:
        """The environment pointing Skiff and dbt at this log's warehouse."""
        return {**os.environ, "SKIFF_DUCKDB_PATH": str(self.db), "SKIFF_WAREHOUSE": "duckdb",
                "SKIFF_DBT_TARGET": "duckdb"}


def bench_home() -> Path:
    return Path(os.environ.get("SKIFF_HOME", REPO / ".skiff")).resolve() / "bench"


def get_log(name: str, sessions: int, span_hours: int, *, seed: int = 42) -> Log:
    """The log ``name``, generated and loaded unless an identical one is kept."""
    from skiff.data import generate
    from skiff.data import load_dir
    from skiff.data import DuckDBWarehouse

    log = Log(name, sessions, span_hours, bench_home() / name)
    spec = {**asdict(log), "root": str(log.root), "seed": seed, "end": END.isoformat()}
    marker = log.root / "log.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec and log.db.is_file():
        return log
    shutil.rmtree(log.root, ignore_errors=True)
    started = time.perf_counter()
    print(f"    building log {name}: {sessions:,} sessions over {span_hours} h ...",
          file=sys.stderr, flush=True)
    generate(log.source, sessions=sessions, seed=seed, end=END, span_hours=span_hours)
    load_dir(log.source, DuckDBWarehouse(log.db), arrival="event")  # replayed: hourly runs see their hour
    marker.write_text(json.dumps(spec))
    print(f"    built in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return log


def dbt(log: Log, *args: str, project: Path | None = None, env: dict[str, str] | None = None,
        target: str = "target") -> float:
    """Run ``dbt <args>`` on the log's warehouse in a fresh process; its wall time in seconds.

    :param project: the dbt project; default this checkout's ``include/dbt``.
    :param env: more environment variables (the interval, as the DAG passes it).
    :param target: the target folder under the log's root (keeps its partial parse).
    :raises RuntimeError: dbt failed (its output is in the message).
    """
    project = project or REPO / "include" / "dbt"
    command = [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(project),
               "--profiles-dir", str(project), "--target-path", str(log.root / target),
               "--log-path", str(log.root / "logs"), "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, env={**log.env(), **(env or {})}, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return elapsed


def interval_vars(start: datetime, end: datetime, **extra: object) -> str:
    """The data interval ``[start, end)`` as ``--vars`` (how the DAG passed it before it
    moved to the environment: :func:`interval_env`)."""
    return json.dumps({"interval_start": start.isoformat(), "interval_end": end.isoformat(), **extra})


def interval_env(start: datetime, end: datetime) -> dict[str, str]:
    """The environment the DAG gives dbt for the data interval ``[start, end)``."""
    return {"SKIFF_DBT_INTERVAL_START": start.isoformat(),
            "SKIFF_DBT_INTERVAL_END": end.isoformat()}


def dbt_fingerprint() -> str:
    """A hash of the dbt project's SQL and YAML: marts built by another version are stale."""
    from skiff.config import DbtConfig

    config = DbtConfig(project_dir=REPO / "include" / "dbt")
    digest = hashlib.sha256()
    for path in config.project_files():
        digest.update(str(path.relative_to(config.project_dir)).encode() + b"\0"
                      + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_marts(log: Log) -> float:
    """``dbt run --full-refresh`` of the whole log, recorded for :func:`ensure_marts`; seconds."""
    from skiff.data import DuckDBWarehouse

    marker = log.root / "marts.json"
    marker.unlink(missing_ok=True)
    # a log kept from an older version may lack a raw table added since (raw.predictions)
    DuckDBWarehouse(log.db).ensure_raw_tables()
    seconds = dbt(log, "run", "--full-refresh")
    marker.write_text(json.dumps({"dbt": dbt_fingerprint(), "seconds": seconds}))
    return seconds


def ensure_marts(log: Log) -> Log:
    """The log with its marts built from the whole log: :func:`build_marts` unless a build by
    the current dbt project is recorded (hourly runs after it leave the marts complete)."""
    marker = log.root / "marts.json"
    if marker.is_file() and json.loads(marker.read_text()).get("dbt") == dbt_fingerprint():
        return log
    print(f"    building the marts of log {log.name} (dbt run --full-refresh) ...",
          file=sys.stderr, flush=True)
    print(f"    built in {build_marts(log):.0f}s", file=sys.stderr, flush=True)
    return log
