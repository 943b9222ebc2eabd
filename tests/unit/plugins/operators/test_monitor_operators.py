"""skiff_monitor's operators on a real DuckDB file: the snapshot, a check before its mart exists.

The checks' Great Expectations runs, their breach and alert are the slow DAG test's
(``tests/integration/test_monitor_dag.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from monitor_marts import MonitorMarts, registry_with_history
from operators.monitor import MonitorSnapshotOperator
from operators.validate import MonitorValidateOperator
from skiff.monitor import read_snapshot


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKIFF_HOME", str(tmp_path))
    for name in ("SKIFF_DUCKDB_PATH", "SKIFF_REGISTRY_URI", "SKIFF_MONITOR_DIR"):
        monkeypatch.delenv(name, raising=False)
    registry_with_history(tmp_path / "registry")
    return tmp_path


def test_snapshot_writes_the_page_data_with_the_breaches(home: Path) -> None:
    now = datetime.now(UTC)
    marts = MonitorMarts(home / "warehouse.duckdb")
    marts.calm(now.replace(minute=0), hours=4)
    marts.hour(now, error_rate=0.3)
    result = MonitorSnapshotOperator(task_id="snapshot").execute({})
    assert result["path"] == str(home / "monitor" / "snapshot.json") and result["errors"] == []
    (breach,) = result["breaches"]["rec"]
    assert "errors: error rate 0.300 > 0.05" in breach and result["breaches"]["intent"] == []
    doc = read_snapshot(home / "monitor")
    assert doc["models"]["rec"]["champion"]["pathspec"] == "RecFlow/2"
    assert doc["models"]["rec"]["serving"][-1]["errors"] == 60


def test_snapshot_without_the_marts_still_shows_the_registry(home: Path) -> None:
    import duckdb

    duckdb.connect(str(home / "warehouse.duckdb")).close()
    result = MonitorSnapshotOperator(task_id="snapshot").execute({})
    assert [e.split(":")[0] for e in result["errors"]] == [
        "marts.mon_serving_hourly", "marts.mon_quality_hourly", "marts.mon_drift_hourly"]
    assert read_snapshot(home / "monitor")["models"]["intent"]["champion"]["pathspec"] == \
        "IntentFlow/1"


def test_a_check_skips_while_its_mart_does_not_exist(home: Path) -> None:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema marts")
    now = datetime.now(UTC)
    check = MonitorValidateOperator(task_id="check_drift", suite="mon_drift",
                                    interval_start=(now - timedelta(hours=3)).isoformat(),
                                    interval_end=now.isoformat())
    with pytest.raises(AirflowSkipException, match="marts.mon_drift_hourly does not exist yet"):
        check.execute({})


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="use mon_serving, mon_quality or mon_drift"):
        MonitorValidateOperator(task_id="check", suite="fct_sessions")
    with pytest.raises(ValueError, match="lock_wait_s=-1 must be >= 0"):
        MonitorSnapshotOperator(task_id="snapshot", lock_wait_s=-1)
