"""A run's progress as JSON lines: one per task as it finishes, one for the run at its end.

An Airflow listener (registered by ``plugins/skiff_plugin.py``) that writes only when
``SKIFF_PROGRESS_FILE`` names a file, as ``skiff run-hour`` sets it for the
``airflow dags test`` it starts (and follows, :mod:`skiff.ops.progress`); anywhere else it
does nothing. Each line is a JSON object:

- ``{"task": id, "state": "success" | "failed" | "up_for_retry" | "skipped", "seconds": s,
  "try": n, "error": "..."}`` when a task instance finishes (in the process that ran it);
- ``{"run": dag_id, "state": "success" | "failed", "tasks": {id: state}}`` when the run
  ends, with every task's state, those that never ran (``upstream_failed``, ``skipped``)
  included.

Lines are appended with one ``write`` each (``O_APPEND``), so processes may share the file.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from airflow.listeners import hookimpl

__all__ = ["ENV", "on_dag_run_failed", "on_dag_run_success", "on_task_instance_failed",
           "on_task_instance_skipped", "on_task_instance_success"]

#: The environment variable naming the progress file.
ENV = "SKIFF_PROGRESS_FILE"


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _task(task_instance: Any, state: str, error: Any = None) -> None:
    started = getattr(task_instance, "start_date", None)
    seconds = (datetime.now(UTC) - started).total_seconds() if started else None
    record = {"task": task_instance.task_id, "state": state, "seconds": seconds,
              "try": getattr(task_instance, "try_number", None)}
    if error is not None:
        record["error"] = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) \
            else str(error)
    _write(record)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _task(task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    state = str(getattr(task_instance, "state", "") or "failed")
    _task(task_instance, "up_for_retry" if state.endswith("up_for_retry") else "failed", error)


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _task(task_instance, "skipped")


def _run(dag_run: Any, state: str) -> None:
    if not os.environ.get(ENV):
        return
    try:  # every task's state, those that never ran included (the run object is detached)
        from sqlalchemy import select

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.execute(select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id))
            tasks = {task_id: str(getattr(ti_state, "value", ti_state)) for task_id, ti_state
                     in rows}
    except Exception:  # noqa: BLE001  (no metadata DB here: the follower does without)
        tasks = {}
    _write({"run": dag_run.dag_id, "state": state, "tasks": tasks})


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _run(dag_run, "success")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _run(dag_run, "failed")
