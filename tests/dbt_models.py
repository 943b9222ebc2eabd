"""dbt on a DuckDB warehouse file, run in-process, and the comparison of its models.

Shared by the dbt tests (hourly incremental runs against a full refresh) and the Airflow
test (a backfill against a full refresh): two warehouse files hold the same models when
every model has the same rows, compared with ``EXCEPT ALL`` both ways.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]
DBT_DIR = REPO / "include" / "dbt"
#: The data interval as the DAG hands it to dbt (dags/skiff_hourly.py, macros/skiff_window.sql).
INTERVAL_ENV = ("SKIFF_DBT_INTERVAL_START", "SKIFF_DBT_INTERVAL_END")
#: The snowflake target's credentials when fakesnow stands in for the account.
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "skiff-test",
    "SNOWFLAKE_USER": "skiff",
    "SNOWFLAKE_PASSWORD": "not-a-secret",
}

#: Models compared, by schema.
MODELS = {
    "staging": ["stg_browsing_events", "stg_search_events"],
    "intermediate": ["int_session_events", "int_sessions"],
    "marts": ["fct_sessions", "fct_session_sequences", "dim_products"],
}


@dataclass
class Dbt:
    """Runs dbt in-process on one DuckDB file, with its own target and log folders."""

    db_path: Path
    work_dir: Path

    def __call__(self, *args: str, vars: dict | None = None, target: str = "duckdb",
                 env: dict[str, str] | None = None, check: bool = True):
        """Run ``dbt <args>`` and (``check``) assert it succeeded (warnings allowed)."""
        from dbt.cli.main import dbtRunner

        cmd = [
            *args,
            "--project-dir", str(DBT_DIR),
            "--profiles-dir", str(DBT_DIR),
            "--target", target,
            "--target-path", str(self.work_dir / "target"),
            "--log-path", str(self.work_dir / "logs"),
        ]
        if vars:
            cmd += ["--vars", json.dumps(vars)]
        with pytest.MonkeyPatch.context() as mp:
            # only the interval this call names: Cosmos's in-process runs (dag.test) leave
            # their env in os.environ (cosmos.operators.local, for OpenLineage)
            for name in (*INTERVAL_ENV, "DBT_EXCLUDE_RESOURCE_TYPES"):  # and what it leaves out
                mp.delenv(name, raising=False)
            for name, value in {"SKIFF_DUCKDB_PATH": str(self.db_path), **(env or {})}.items():
                mp.setenv(name, value)
            result = dbtRunner().invoke(cmd)
        failed = [
            f"{r.node.unique_id}: {r.status} {r.message}"
            for r in (getattr(result.result, "results", None) or [])
            if str(r.status) in ("error", "fail", "runtime error")
        ]
        assert result.success or not check, \
            f"dbt {' '.join(args)} failed: {failed or result.exception}"
        return result

    def copy(self, name: str) -> Dbt:
        """A copy of this warehouse file (raw log and models), run from its own folders."""
        work_dir = self.work_dir.parent / name
        other = type(self)(work_dir / "warehouse.duckdb", work_dir)
        other.work_dir.mkdir(parents=True, exist_ok=True)
        with connect(self.db_path) as con:  # write the WAL into the file before copying it
            con.execute("checkpoint")
        shutil.copy(self.db_path, other.db_path)
        return other


def statuses(result) -> dict[str, str]:
    return {r.node.unique_id: str(r.status) for r in result.result.results}


def differences(a: Path, b: Path, layers=tuple(MODELS)) -> dict[str, tuple[int, ...]]:
    """Per model: (rows in a, rows in b, rows of a not in b, rows of b not in a)."""
    out = {}
    con = duckdb.connect()
    try:
        for schema in layers:
            for model in MODELS[schema]:
                con.register("model_a", table(a, f"{schema}.{model}"))
                con.register("model_b", table(b, f"{schema}.{model}"))
                out[model] = con.execute("""
                    select
                        (select count(*) from model_a),
                        (select count(*) from model_b),
                        (select count(*) from (from model_a except all from model_b)),
                        (select count(*) from (from model_b except all from model_a))
                """).fetchall()[0]
    finally:
        con.close()
    return out


def assert_same(a: Path, b: Path, layers=tuple(MODELS)) -> None:
    diff = differences(a, b, layers)
    for model, (rows_a, rows_b, only_a, only_b) in diff.items():
        assert rows_a > 0, f"{model} is empty"
        assert (rows_a, only_a, only_b) == (rows_b, 0, 0), f"{model} differs: {diff[model]}"


@contextmanager
def connect(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    # not read_only: dbt-duckdb may still hold the file open in this process, and
    # DuckDB shares one instance per file and configuration
    con = duckdb.connect(str(db_path))
    try:
        yield con
    finally:
        con.close()


def table(db_path: Path, name: str) -> pa.Table:
    with connect(db_path) as con:
        return con.sql(f"select * from {name}").to_arrow_table()


def query(db_path: Path, sql: str) -> list[tuple]:
    with connect(db_path) as con:
        return con.execute(sql).fetchall()
