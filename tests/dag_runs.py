"""Real runs of a fixture DAG for the tests: ``dag.test()`` in a subprocess, one run per call.

``dag.test`` needs its DAG in the configured DAGs folder, so the runs happen in a Python
subprocess whose ``AIRFLOW__CORE__DAGS_FOLDER`` is ``tests/fixtures/dags``. It parses the
folder once, then runs the DAG once for each conf it reads on its stdin and answers with one
line: the run's state, each task's state and the return value of each task that succeeded.
Between two runs the test looks at what the run left behind (a served model, an endpoint in
moto), which one subprocess per run would also allow at ~10 s more each.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

__all__ = ["FIXTURE_DAGS", "DagRuns"]

#: The fixture DAGs' folder.
FIXTURE_DAGS = Path(__file__).resolve().parent / "fixtures" / "dags"

_RUNNER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]
print("READY", flush=True)
for line in sys.stdin:
    run = dag.test(run_conf=json.loads(line))
    tis = run.get_task_instances()
    print("RESULT " + json.dumps({
        "state": run.state, "tasks": {ti.task_id: ti.state for ti in tis},
        "xcom": {ti.task_id: ti.xcom_pull(task_ids=ti.task_id)
                 for ti in tis if ti.state == "success"}}, default=str), flush=True)
"""


class DagRuns:
    """``dag.test()`` runs of one fixture DAG, one per :meth:`run` (a context manager).

    :param dag_id: the DAG, in :data:`FIXTURE_DAGS`.
    :param env: the subprocess's environment on top of this process's (the DAG's settings are
        read when it parses, once).
    :param timeout: seconds the subprocess may take to parse the DAGs, and each run.
    """

    def __init__(self, dag_id: str, env: dict[str, str] | None = None,
                 timeout: float = 300) -> None:
        self.dag_id = dag_id
        self.env = {**os.environ, **(env or {}),
                    "AIRFLOW__CORE__DAGS_FOLDER": str(FIXTURE_DAGS)}
        self.timeout = timeout
        self.output: list[str] = []  # everything the subprocess printed (its task logs too)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> DagRuns:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(FIXTURE_DAGS), self.dag_id], env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()
        self._expect("READY")
        return self

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _expect(self, prefix: str) -> str:
        """The rest of the next line starting with ``prefix`` (other lines are kept as output)."""
        while True:
            try:
                line = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                raise AssertionError(f"{self.dag_id}: nothing within {self.timeout} s:\n"
                                     + self.tail()) from None
            if line is None:
                raise AssertionError(f"{self.dag_id}: the runner ended:\n" + self.tail())
            self.output.append(line)
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def tail(self, lines: int = 60) -> str:
        """The last lines the subprocess printed (for an assertion's message)."""
        return "".join(self.output[-lines:])

    def run(self, conf: dict[str, Any]) -> dict[str, Any]:
        """One run with ``conf``.

        :return: ``{"state", "tasks": {id: state}, "xcom": {id: value}, "output"}``; ``output``
            is what the subprocess printed during the run (the task logs among it).
        """
        assert self._proc is not None and self._proc.stdin is not None, "use it in a with block"
        start = len(self.output)
        self._proc.stdin.write(json.dumps(conf) + "\n")
        self._proc.stdin.flush()
        result = json.loads(self._expect("RESULT "))
        return {**result, "output": "".join(self.output[start:])}

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
