"""Shared benchmark helpers: the figure record, timing, a subprocess-isolated environment."""

from __future__ import annotations

import os
import statistics
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
