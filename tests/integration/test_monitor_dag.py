"""skiff_monitor run by ``dag.test()`` on monitoring marts with a planted drift.

The marts (``tests/monitor_marts.py``) hold a calm day of both models, then, in the last hour,
a shift of the served sessions' lengths (PSI 0.6 against training, threshold 0.2). The run
writes the page's snapshot with the breach, ``check_drift`` fails with a message naming the
mart, the hour and the feature, its failure alert reaches the Slack webhook (a local receiver,
``tests/webhook_receiver.py``), and ``request_retrain`` creates a skiff_hourly run that trains
on every session. The serving and quality checks pass. The run happens in a subprocess on the
repository's DAGs folder (``dag.test`` syncs the folder's DAGs, skiff_hourly, the trigger's
target, among them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from monitor_dag_run import run_skiff_monitor
from monitor_marts import MonitorMarts, registry_with_history
from skiff.monitor import read_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_planted_drift_fails_the_check_alerts_and_asks_for_a_retrain(
    airflow_db: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    marts = MonitorMarts(tmp_path / "warehouse.duckdb")
    marts.calm(now.replace(minute=0) - timedelta(hours=1), hours=24)
    marts.hour(now - timedelta(hours=1), psi=0.6, drift_feature="session_length")
    registry_with_history(tmp_path / "registry")

    result, posts, output = run_skiff_monitor({"SKIFF_HOME": str(tmp_path)})

    assert result["tasks"] == {"snapshot": "success", "check_serving": "success",
                               "check_quality": "success", "check_drift": "failed",
                               "request_retrain": "success",
                               "within_thresholds": "upstream_failed"}, result
    assert result["state"] == "failed"
    # the failure says which mart, hour and feature drifted
    assert "mon_drift_hourly" in output and "session_length" in output
    (alert,) = posts
    assert "task check_drift of skiff_monitor failed" in alert, alert
    assert "mon_drift_hourly" in alert and "session_length" in alert, alert
    # a full retrain was asked of skiff_hourly, once for the day
    (retrain,) = result["hourly"]
    assert retrain[0] == f"monitor_retrain__{now:%Y-%m-%d}"
    assert retrain[1] == {"train_sample_sessions": 0, "full_retrain": True} and retrain[2] == "operator_triggered"
    # the page's snapshot shows the breach
    snapshot = read_snapshot(tmp_path / "monitor")
    (breach,) = snapshot["models"]["rec"]["breaches"]
    assert "drift: PSI of session_length 0.60 > 0.2" in breach
    assert snapshot["models"]["rec"]["champion"]["pathspec"] == "RecFlow/2"
