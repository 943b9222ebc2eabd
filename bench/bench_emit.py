"""``skiff emit`` fast-forward to landing files: events/s, and the cost of one hour drawn alone.

- fast-forward to files: a fresh :class:`~skiff.data.emitter.Emitter`'s deliveries of one
  day written with :func:`~skiff.data.emitter_files.write_landing` (what ``skiff emit --to-files``
  does, in process), and the same day simulated only (no JSON, no gzip), so that the
  writing's share shows;
- one hour alone: a fresh emitter's deliveries of the 14:00 hour (it simulates every hour
  its deliveries and sessions reach back to), the catalogue built before the clock starts.

``small`` runs the default shoppers (450 sessions an hour at the peak, about 2k events an
hour); ``full`` about 30k events an hour (the issue's ingest hour), 6,400 sessions at the
peak. Median of 3 runs at ``small``, one at ``full``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import Figure
from bench.data import END

#: ``{scale: (sessions an hour at the peak, runs)}``.
SIZES = {"small": (450, 3), "full": (6_400, 1)}
HOURS = 24


def _day(peak: float, out: Path | None) -> tuple[float, int, int]:
    """One day from a fresh emitter (catalogue built first): (seconds, events, files)."""
    from skiff.data.emitter import Emitter
    from skiff.data.emitter_files import write_landing

    emitter = Emitter(sessions_per_hour=peak)
    start = END - timedelta(hours=HOURS)
    began, events, files = time.perf_counter(), 0, 0
    for delivered in emitter.deliveries(start, END):
        events += len(delivered)
        if out is not None:
            files += len(write_landing(out, delivered))
    return time.perf_counter() - began, events, files


def _hour_alone(peak: float) -> tuple[float, int]:
    from skiff.data.emitter import Emitter

    emitter = Emitter(sessions_per_hour=peak)
    began = time.perf_counter()
    events = len(emitter.delivered(END - timedelta(hours=10)))  # 14:00 UTC
    return time.perf_counter() - began, events


def run(scale: str) -> list[Figure]:
    peak, runs = SIZES[scale]
    with tempfile.TemporaryDirectory(prefix="skiff-bench-emit-") as tmp:
        to_files = [_day(peak, Path(tmp) / str(i)) for i in range(runs)]
        size = sum(p.stat().st_size for p in Path(tmp, "0").rglob("*.ndjson.gz"))
    simulated = [_day(peak, None) for _ in range(runs)]
    alone = [_hour_alone(peak) for _ in range(runs)]
    seconds = statistics.median(s for s, _, _ in to_files)
    sim_seconds = statistics.median(s for s, _, _ in simulated)
    _, events, files = to_files[0]
    runs_note = f"median of {runs} runs" if runs > 1 else "one run"
    return [
        Figure("emit", f"fast-forward {HOURS} h to landing files, {peak:,} sessions/h at peak",
               seconds, "s", "", f"{events:,} events, {files} files, "
               f"{size / 2**20:,.1f} MiB gzip NDJSON; {runs_note}"),
        Figure("emit", "fast-forward to files throughput", events / seconds, "events/s", "",
               f"{events / HOURS:,.0f} events an hour on average; {runs_note}"),
        Figure("emit", "simulation alone (no files) throughput", events / sim_seconds,
               "events/s", "", f"the same {HOURS} h, nothing written; {runs_note}"),
        Figure("emit", "one hour alone (14:00), fresh emitter",
               statistics.median(s for s, _ in alone), "s", "",
               f"{alone[0][1]:,} events delivered; simulates the hours it reaches back to"),
    ]


if __name__ == "__main__":  # python -m bench.bench_emit [full]
    print(Figure.table(run(sys.argv[1] if len(sys.argv) > 1 else "small")))
