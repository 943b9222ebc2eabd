"""Shared test set-up: Skiff's quiet defaults, an isolated SKIFF_HOME and AIRFLOW_HOME.

Environment is fixed here, before Airflow, Metaflow or dbt are imported by any test,
because they read it at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Metaflow's vendored typing_extensions replaces typing._collect_parameters when it is imported
# (by a flow, the Runner or the hook), after which SQLAlchemy's hybrid module, which Airflow's
# models import, fails with "Type parameter ~_R without a default follows ...". Importing it
# first makes the suite independent of which test imports Metaflow before Airflow's models.
import sqlalchemy.ext.hybrid  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
# The official sample files are not ours to commit: look beside the checkout, then in the
# team's shared folder; SKIFF_COVEO_SAMPLE points elsewhere. Tests using them skip otherwise.
SAMPLE_CANDIDATES = [
    Path(p)
    for p in (
        os.environ.get("SKIFF_COVEO_SAMPLE", ""),
        REPO.parent / "shared" / "data" / "coveo_sample",
        "/work/shared/data/coveo_sample",
    )
    if p
]
SHARED_SAMPLE = next((p for p in SAMPLE_CANDIDATES if p.is_dir()), SAMPLE_CANDIDATES[0])


def _load_defaults() -> None:
    for line in (REPO / "skiff.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key, value)


_load_defaults()
_HOME = Path(tempfile.mkdtemp(prefix="skiff-tests-"))
os.environ["SKIFF_HOME"] = str(_HOME)
os.environ["AIRFLOW_HOME"] = str(_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow' / 'airflow.db'}"
os.environ.setdefault("USER", "skiff")
# dag.test() (Airflow 3.3.0) cannot finish a run of a DAG with a Deadline Alert; the tests
# that check the duration alert set their own value (tests/integration/test_slack_alerts.py)
os.environ["SKIFF_RUN_DURATION_ALERT_MINUTES"] = "0"
for var in ("SKIFF_DUCKDB_PATH", "SKIFF_REPLAY_DIR", "SKIFF_WAREHOUSE", "SKIFF_DBT_TARGET",
            "SKIFF_SNOWFLAKE_CONNECT"):
    os.environ.pop(var, None)


@pytest.fixture(scope="session")
def coveo_sample() -> Path:
    """The official Coveo sample files; tests using them skip when the folder is absent."""
    if not SHARED_SAMPLE.is_dir():
        pytest.skip(f"official Coveo sample not found at {SHARED_SAMPLE}")
    return SHARED_SAMPLE


@pytest.fixture(scope="session")
def skiff_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB under the test AIRFLOW_HOME (about 3 s, once)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return home


#: The end of the generated history of :func:`marts_warehouse` (its sessions start before it).
MARTS_END = "2026-11-01T00:00:00+00:00"


@pytest.fixture(scope="session")
def marts_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file with the marts built by dbt from 3,000 sessions generated over the 24 hours
    before :data:`MARTS_END` (about 15 s, once): what the training flows read."""
    from datetime import datetime

    from dbt.cli.main import dbtRunner

    from hooks.warehouse import SkiffWarehouseHook
    from skiff.data import DuckDBWarehouse, generate, load_dir

    root = tmp_path_factory.mktemp("marts")
    generate(root / "src", sessions=3000, seed=5, end=datetime.fromisoformat(MARTS_END),
             span_hours=24)
    db = root / "warehouse.duckdb"
    load_dir(root / "src", DuckDBWarehouse(db))
    project = REPO / "include" / "dbt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKIFF_DUCKDB_PATH", str(db))
        result = dbtRunner().invoke(["run", "--project-dir", str(project), "--profiles-dir",
                                     str(project), "--target-path", str(root / "target"),
                                     "--quiet"])
    assert result.success, result.exception
    SkiffWarehouseHook.release_dbt_duckdb()  # as the operator does before launching a flow
    return db
