"""``skiff run-hour``: a real ``airflow dags test`` followed through the progress listener.

The fixture DAG (``tests/fixtures/dags/skiff_progress_test.py``) has a task that succeeds,
one that fails, one that therefore never runs and one that skips itself; the follower must
print one line for each task that ran, the failure's error, a summary naming the task that
never ran and the log file, and keep Airflow's own output out of the terminal.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_one_line_per_task_and_the_full_log_in_a_file(airflow_db: Path, tmp_path: Path) -> None:
    from skiff.ops.progress import follow_dag_test

    lines: list[str] = []
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "fixtures" / "dags")}
    log = tmp_path / "logs" / "run.log"
    status = follow_dag_test("skiff_progress_test", "2026-11-20T12:00:00+00:00", log, env=env,
                             out=lines.append)
    printed = "\n".join(lines)

    assert status != 0  # the run failed, as `airflow dags test` says
    heads = [line.splitlines()[0].split() for line in lines]  # a failure's message follows
    by_task = {head[-1]: head[1] for head in heads if len(head) > 2 and head[0] in "✓✗–↻"}
    assert by_task == {"fine": "success", "broken": "failed", "skips": "skipped"}, printed
    assert "ValueError: the hour has 1 problem" in printed
    summary = [line for line in lines if line.startswith("==> skiff_progress_test: ")]
    assert summary and summary[0].startswith("==> skiff_progress_test: failed"), printed
    assert "not run: after_broken" in printed and f"full log: {log}" in printed
    # Airflow's own output went to the file, not to the terminal
    text = log.read_text()
    assert "[DAG TEST]" in text and "[DAG TEST]" not in printed
    assert len(lines) < 12 < len(text.splitlines())
