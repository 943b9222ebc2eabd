"""A DAG run in the foreground, quietly: one line per task as it finishes, the full log in a file.

``skiff run-hour`` (``make run``) starts ``airflow dags test`` with its output going to a
log file it names, and follows the progress file the ``listeners.progress`` Airflow listener
writes (``SKIFF_PROGRESS_FILE``): each finished task becomes one line (state, seconds; a
failure's error), and the run's end a summary counting every task's state, those that
never ran included. This module runs Airflow as a subprocess; it imports none of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["RunProgress", "follow_dag_test"]

PROGRESS_ENV = "SKIFF_PROGRESS_FILE"  # read by plugins/listeners/progress.py
_NAMED = 6  # tasks named in the summary's "not run" line; the rest are counted
_MARKS = {"success": "✓", "failed": "✗", "up_for_retry": "↻", "skipped": "–",
          "upstream_failed": "✗", "removed": " "}


@dataclass
class RunProgress:
    """What the progress file said so far: finished tasks in order, and the run's end.

    :param tasks: ``(task id, state, seconds, error)`` as each task finished.
    :param run_state: ``success``/``failed`` once the run ended, else None.
    :param final: every task's final state, from the run's end.
    """

    tasks: list[tuple[str, str, float | None, str | None]] = field(default_factory=list)
    run_state: str | None = None
    final: dict[str, str] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> str | None:
        """Take one progress record; the line to print for it, if any."""
        if "run" in record:
            self.run_state, self.final = record["state"], dict(record.get("tasks") or {})
            return None
        task, state = record["task"], record["state"]
        seconds, error = record.get("seconds"), record.get("error")
        self.tasks.append((task, state, seconds, error))
        took = f"{seconds:7.1f} s" if isinstance(seconds, (int, float)) else " " * 9
        line = f"  {_MARKS.get(state, '?')} {state:<12} {took}  {task}"
        if error:  # a final failure's message whole (up to a screenful), a retry's first line
            shown = str(error).strip().splitlines()[:1 if state == "up_for_retry" else 15]
            line += "".join(f"\n      {text[:200]}" for text in shown)
        return line

    def summary(self, dag_id: str, seconds: float, log: Path) -> str:
        """The closing lines: the run's state, counts by state, where the full log is."""
        states = self.final or {task: state for task, state, _, _ in self.tasks}
        counts = Counter(states.values())
        never_ran = sorted(t for t, s in self.final.items()
                           if s in ("upstream_failed", "skipped")
                           and t not in {t for t, *_ in self.tasks})
        state = self.run_state or "unknown (the run did not report its end)"
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        lines = [f"==> {dag_id}: {state} in {seconds:.0f} s ({parts})"]
        if never_ran:
            shown = ", ".join(never_ran[:_NAMED])
            more = f" and {len(never_ran) - _NAMED} more" if len(never_ran) > _NAMED else ""
            lines.append(f"    not run: {shown}{more}")
        lines.append(f"    full log: {log}")
        return "\n".join(lines)


def _read_new(handle: IO[str], buffer: str) -> tuple[list[dict[str, Any]], str]:
    """Complete JSON lines appended since the last read, and the unfinished rest."""
    buffer += handle.read()
    *lines, rest = buffer.split("\n")
    records = []
    for line in lines:
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # not ours; the log has the detail
    return records, rest


def follow_dag_test(dag_id: str, logical_date: str, log: Path, *,
                    airflow: Sequence[str] | None = None, env: dict[str, str] | None = None,
                    out: Callable[[str], None] = print, poll_s: float = 0.2) -> int:
    """Run ``airflow dags test dag_id logical_date`` quietly; print progress; its exit status.

    :param dag_id: the DAG.
    :param logical_date: the run's logical date (ISO 8601).
    :param log: the file that gets the whole output (its folder is made).
    :param airflow: the Airflow command (default: this Python's ``-m airflow``).
    :param env: the subprocess's environment (default: this one's).
    :param out: where lines go.
    :param poll_s: seconds between looks at the progress file.
    :return: the exit status of ``airflow dags test`` (non-zero when the run failed).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    progress_file = log.with_suffix(".progress.jsonl")
    progress_file.unlink(missing_ok=True)
    progress_file.touch()
    command = [*(airflow or (sys.executable, "-m", "airflow")), "dags", "test", dag_id,
               logical_date]
    env = {**(env if env is not None else os.environ), PROGRESS_ENV: str(progress_file)}
    out(f"==> airflow {' '.join(command[-4:])}  (full log: {log})")
    state, started, buffer = RunProgress(), time.monotonic(), ""
    with open(log, "w") as output, open(progress_file) as progress:
        proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                done = proc.poll() is not None
                records, buffer = _read_new(progress, buffer)
                for record in records:
                    line = state.add(record)
                    if line:
                        out(line)
                if done:
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(30)
            raise
    out(state.summary(dag_id, time.monotonic() - started, log))
    if proc.returncode and state.run_state is None:  # it failed before or outside the run
        with open(log) as output:
            tail = output.readlines()[-25:]
        out("    the end of the log:\n" + "".join(f"    | {line}" for line in tail).rstrip())
    return proc.returncode
