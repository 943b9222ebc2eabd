"""Shared benchmark helpers: the figure record, timing, a subprocess-isolated environment."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    """One measured figure: ``value`` in ``unit``, with an optional target to compare against."""

    bench: str
    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""
    load: str = ""  # the machine's other work before the benchmark ran (bench.load)

    def as_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def table(figures: list[Figure]) -> str:
        rows = [("bench", "figure", "value", "target", "note")]
        rows += [(f.bench, f.name, f"{f.value:,.3g} {f.unit}", f.target, f.note) for f in figures]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def median_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def skiff_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an isolated Skiff (and Airflow) home, with skiff.env's defaults."""
    env = dict(os.environ)
    for line in (REPO / "skiff.env").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env.setdefault(key, value)
    env.update(
        SKIFF_HOME=str(home),
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        USER=env.get("USER", "skiff"),
        **extra,
    )
    return env


def run_worker(module: str, home: Path, env: dict[str, str], **request: object) -> dict:
    """Call ``<module>.worker(request file)`` in a fresh Python process; the JSON it wrote.

    The request is written to ``home/request.json`` with ``out``, where the worker writes its
    result; the worker's output goes to ``home/worker.log``.

    :raises RuntimeError: the worker failed (the end of its output is in the message).
    """
    home.mkdir(parents=True, exist_ok=True)
    request_file, out = home / "request.json", home / "result.json"
    request_file.write_text(json.dumps({**request, "out": str(out)}, default=str))
    code = f"import sys, {module} as m; m.worker(sys.argv[1])"
    with open(home / "worker.log", "w+") as output:
        done = subprocess.run([sys.executable, "-c", code, str(request_file)], cwd=REPO, env=env,
                              stdout=output, stderr=subprocess.STDOUT)
        if done.returncode:
            output.seek(0)
            raise RuntimeError(f"{module} worker failed (exit {done.returncode}):\n"
                               f"{output.read()[-4000:]}")
    return json.loads(out.read_text())
