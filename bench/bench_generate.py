"""``skiff generate`` at the real dataset's size: wall time, events/s and the CLI's peak memory.

The CLI runs in a fresh process, as a user runs it (imports included), writing Parquet to a
temporary folder; its peak RSS is that process's own (``wait4``), not the benchmark's.
``full`` is the size of the Coveo log: 5M sessions, about 36M browsing events, over 30 days;
``small`` is 200k sessions over the same span. Median of 3 runs at ``small``, one at ``full``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, skiff_env
from bench.data import END

#: ``{scale: (sessions, runs)}``.
SIZES = {"small": (200_000, 3), "full": (5_000_000, 1)}
SPAN_HOURS = 720


def generate_once(out: Path, sessions: int, env: dict[str, str]) -> tuple[float, int]:
    """Run ``skiff generate`` once into ``out``: ``(wall seconds, peak RSS in bytes)``.

    :raises RuntimeError: the command failed (its output is in the message).
    """
    command = [str(Path(sys.executable).with_name("skiff")), "-q", "generate",
               "--sessions", str(sessions), "--span-hours", str(SPAN_HOURS),
               "--end", END.isoformat(), "--out", str(out)]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode:
            output.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed (exit {proc.returncode}):\n"
                               f"{output.read().decode(errors='replace')[-3000:]}")
    return elapsed, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def run(scale: str) -> list[Figure]:
    import pyarrow.parquet as pq

    sessions, runs = SIZES[scale]
    with tempfile.TemporaryDirectory(prefix="skiff-bench-generate-") as tmp:
        env = skiff_env(Path(tmp) / "home")
        out = Path(tmp) / "out"
        measured = [generate_once(out, sessions, env) for _ in range(runs)]
        rows = {path.stem: pq.ParquetFile(path).metadata.num_rows
                for path in sorted(out.glob("*.parquet"))}
        size = sum(path.stat().st_size for path in out.glob("*.parquet"))
    seconds = statistics.median(s for s, _ in measured)
    peak = max(rss for _, rss in measured)
    events = rows["browsing_train"]
    runs_note = f"median of {runs} runs" if runs > 1 else "one run"
    return [
        Figure("generate", f"skiff generate, {sessions:,} sessions", seconds, "s",
               "< 120 s" if scale == "full" else "",
               f"fresh process, Parquet, {SPAN_HOURS} h; {runs_note}"),
        Figure("generate", "browsing events written", events, "rows",
               "~36M" if scale == "full" else "",
               f"{rows['search_train']:,} searches, {rows['sku_to_content']:,} products; "
               f"{size / 2**20:,.0f} MiB of Parquet"),
        Figure("generate", "generate throughput", events / seconds, "events/s", "", runs_note),
        Figure("generate", "peak RSS of the skiff generate process", peak / 2**20, "MiB", "",
               f"max over {runs} run(s); wait4 on the child"),
    ]


if __name__ == "__main__":  # python -m bench.bench_generate [full]
    print(Figure.table(run(sys.argv[1] if len(sys.argv) > 1 else "small")))
