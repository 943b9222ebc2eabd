"""``make airflow``'s launcher without Airflow: its environment, its banner, and that stopping
it ends every process it started (the Airflow it runs is tested in tests/e2e/test_airflow_ui.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from skiff.ops.local_airflow import LocalAirflow, banner, sandbox_env


def test_environment_points_every_component_at_one_port(tmp_path: Path) -> None:
    env = sandbox_env(tmp_path)
    airflow = LocalAirflow(tmp_path / "airflow", port=18090, env=env)
    assert airflow.env["AIRFLOW__API__PORT"] == "18090"
    url = airflow.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert url == "http://127.0.0.1:18090/execution/"
    assert airflow.env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert airflow.env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert airflow.env["SKIFF_HOME"] == str(tmp_path)
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    ports = [env[k] for k in ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                              "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", "SKIFF_SERVE_PORT",
                              "SKIFF_API_PORT")]
    assert len(set(ports)) == 4 and "8080" not in ports


def test_banner_shows_the_login_and_the_sample_hour(tmp_path: Path) -> None:
    airflow = LocalAirflow(tmp_path, port=8090, env={})
    airflow.password_file.write_text(json.dumps({"admin": "s3cret"}))
    text = banner(airflow, "skiff_hourly", "2026-11-25T11:00:00+00:00")
    assert "http://127.0.0.1:8090/dags/skiff_hourly" in text
    assert "user         admin" in text and "password     s3cret" in text
    assert "2026-11-25 10:00-11:00 UTC, its last hour" in text
    assert "from 11:00 to 12:00 UTC" in text
    assert "sample" not in banner(airflow, "skiff_hourly")


def test_stop_ends_the_whole_process_group_even_a_process_ignoring_sigterm(
        tmp_path: Path) -> None:
    airflow = LocalAirflow(tmp_path, port=8090, env={})
    pids = tmp_path / "pids"
    # a leader and two children, one of which ignores SIGTERM (as a stuck task might)
    airflow.process = subprocess.Popen(
        ["bash", "-c", f"(trap '' TERM; sleep 60) & echo $! > {pids}; sleep 60 & wait"],
        start_new_session=True)
    group = [airflow.process.pid]
    while not pids.exists() or not pids.read_text().strip():
        time.sleep(0.05)
    group.append(int(pids.read_text()))
    started = time.monotonic()
    airflow.stop(timeout=1)
    assert time.monotonic() - started < 5
    assert airflow.process is None
    assert not [pid for pid in group if _running(pid)]


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
