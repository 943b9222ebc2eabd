"""How busy the machine is before a benchmark: other processes' demand for CPU, measured.

The 1-minute load average lags (it still holds the previous benchmark's own work), so the
demand is sampled instead: the number of runnable tasks (``procs_running`` in
``/proc/stat``, minus this sampler) averaged over a short window, and the share of CPU time
not idle over the same window. A machine is *busy* when other work would want more CPU than
a benchmark can assume to have: more runnable tasks than half its cores. ``python -m bench``
waits a while for a busy machine to calm down, then runs anyway and marks every figure of
that benchmark (``--strict`` refuses instead).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Load", "sample", "wait_until_idle"]

_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Load:
    """Other work on the machine in one sampling window.

    :param runnable: runnable tasks besides the sampler, averaged over the window.
    :param cpu_busy: share of all cores' time spent not idle (0-1) over the window.
    :param load_1m: the 1-minute load average at the end of the window.
    :param cores: the machine's cores.
    """

    runnable: float
    cpu_busy: float
    load_1m: float
    cores: int

    @property
    def busy(self) -> bool:
        """Other work wants more than half the cores."""
        return self.runnable > self.cores / 2

    def describe(self) -> str:
        """``"0.2 runnable, CPU 8% busy, load 0.9 on 2 cores"``."""
        return (f"{self.runnable:.1f} runnable, CPU {self.cpu_busy:.0%} busy, "
                f"load {self.load_1m:.1f} on {self.cores} cores")


def _stat() -> tuple[int, int, int]:
    """``(idle jiffies, total jiffies, procs_running)`` from ``/proc/stat``."""
    idle = total = running = 0
    for line in _STAT.read_text().splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle, total = values[3] + values[4], sum(values[:8])  # idle + iowait; no guest
        elif line.startswith("procs_running"):
            running = int(line.split()[1])
    return idle, total, running


def sample(seconds: float = 2.0, every: float = 0.1) -> Load:
    """Measure the machine's other work for ``seconds`` (this process sleeps meanwhile).

    :param seconds: the window.
    :param every: seconds between reads of the runnable count.
    :return: the :class:`Load`; on a system without ``/proc/stat``, the load average alone.
    """
    cores = os.cpu_count() or 1
    if not _STAT.is_file():
        time.sleep(seconds)
        load = os.getloadavg()[0]
        return Load(runnable=load, cpu_busy=min(load / cores, 1.0), load_1m=load, cores=cores)
    idle0, total0, _ = _stat()
    counts = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts.append(_stat()[2] - 1)  # the sampler itself is running while it reads
        time.sleep(every)
    idle1, total1, _ = _stat()
    spent = max(total1 - total0, 1)
    return Load(runnable=max(sum(counts) / len(counts), 0.0),
                cpu_busy=min(max(1 - (idle1 - idle0) / spent, 0.0), 1.0),
                load_1m=os.getloadavg()[0], cores=cores)


def wait_until_idle(timeout: float, *, log=print) -> Load:
    """Sample until the machine is not busy or ``timeout`` seconds passed; the last sample.

    :param timeout: most seconds to wait (0: sample once).
    :param log: where a line goes while waiting.
    """
    deadline = time.monotonic() + timeout
    load = sample()
    while load.busy and time.monotonic() < deadline:
        log(f"    machine busy ({load.describe()}); waiting for it to calm down")
        time.sleep(min(10.0, max(deadline - time.monotonic(), 0.0)))
        load = sample()
    return load
