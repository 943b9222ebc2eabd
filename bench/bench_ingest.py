"""The landing ingest of one hour on DuckDB: the files that arrived in it, appended all or nothing.

One hour of collected events (about 30k browsing and search events at ``small``, 50k at
``full``, the full-scale logs' events per hour) lands as the collector writes it: gzip NDJSON,
one file per table per minute (its 60 s roll), by arrival hour, a share of the events late.
The warehouse already holds the hour before (its raw tables and ledger are not empty). Each
repetition ingests the hour into a fresh copy of that warehouse with
:func:`skiff.data.ingest.ingest_arrivals`: list, ledger lookups, read, sha256, decode and
check, and the one transaction appending the events and the ledger rows. A second figure is
the re-run of the hour, every file skipped by the ledger. Target: under 5 s for the hour.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Figure
from bench.data import END, bench_home

#: Sessions generated over two hours, so that the last hour holds about the target events.
SESSIONS = {"small": 8_500, "full": 14_000}
REPEAT = 3
HOUR_MS = 3_600_000


def _land(events: list[dict], root: Path, table: str) -> int:
    """Write ``events`` (with ``arrival_ts_ms``) as the collector does: one file per table per
    minute of arrival, temp name then rename; returns the number of files."""
    by_minute: dict[int, list[dict]] = {}
    for event in sorted(events, key=lambda e: e["arrival_ts_ms"]):
        by_minute.setdefault(event["arrival_ts_ms"] // 60_000, []).append(event)
    for minute, rows in by_minute.items():
        when = datetime.fromtimestamp(rows[0]["arrival_ts_ms"] / 1000, UTC)
        folder = root / table / f"{when:%Y/%m/%d/%H}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"skiff-collect-{when:%Y-%m-%d-%H-%M-%S}-{minute % 16**16:016x}.ndjson.gz"
        data = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows), mtime=0)
        (folder / f".{name}.tmp").write_bytes(data)
        os.replace(folder / f".{name}.tmp", folder / name)
    return len(by_minute)


def _prepare(scale: str, root: Path) -> tuple[Path, Path, int, int]:
    """Landing files of two hours ending at END; a warehouse holding the first hour."""
    import numpy as np
    import pyarrow.parquet as pq

    from skiff.data import DuckDBWarehouse, generate
    from skiff.data import LandingZone, ingest_arrivals

    shutil.rmtree(root, ignore_errors=True)
    generate(root / "src", sessions=SESSIONS[scale], seed=7, end=END, span_hours=2,
             fmt="parquet")
    rng = np.random.default_rng(7)
    last_hour_start = int(END.timestamp() * 1000) - HOUR_MS
    files = events = 0
    for table in ("browsing_train", "search_train"):
        rows = pq.read_table(root / "src" / f"{table}.parquet").to_pylist()
        delays = rng.uniform(100, 30_000, len(rows))
        late = rng.random(len(rows)) < 0.02
        delays[late] = rng.uniform(HOUR_MS / 2, HOUR_MS, late.sum())
        for row, delay in zip(rows, delays):
            row["arrival_ts_ms"] = row["server_timestamp_epoch_ms"] + int(delay)
        last_hour = [r for r in rows
                     if last_hour_start <= r["arrival_ts_ms"] < last_hour_start + HOUR_MS]
        events += len(last_hour)
        files += _land(last_hour, root / "landing", table)
        _land([r for r in rows if r["arrival_ts_ms"] < last_hour_start], root / "landing", table)
    base = root / "base.duckdb"
    ingest_arrivals(DuckDBWarehouse(base), LandingZone.from_uri(root / "landing"),
                    END - timedelta(hours=3), END - timedelta(hours=1))
    return root / "landing", base, events, files


def run(scale: str) -> list[Figure]:
    from skiff.data import DuckDBWarehouse
    from skiff.data import LandingZone, ingest_arrivals

    root = bench_home() / "ingest"
    landing, base, events, files = _prepare(scale, root)
    zone = LandingZone.from_uri(landing)
    start, end = END - timedelta(hours=1), END
    times, reruns = [], []
    for k in range(REPEAT):
        db = root / f"run-{k}.duckdb"
        shutil.copy(base, db)
        warehouse = DuckDBWarehouse(db)
        started = time.perf_counter()
        summary = ingest_arrivals(warehouse, zone, start, end)
        times.append(time.perf_counter() - started)
        assert sum(summary.rows.values()) == events and len(summary.files) == files, summary
        started = time.perf_counter()
        again = ingest_arrivals(warehouse, zone, start, end)
        reruns.append(time.perf_counter() - started)
        assert not again.files and len(again.skipped) == files
    hour = statistics.median(times)
    return [
        Figure("ingest", f"one hour: {events:,} events in {files} landing files", hour, "s",
               "< 5 s", f"median of {REPEAT}; list, ledger, read, sha256, decode, one transaction"),
        Figure("ingest", "one hour: events/s", events / hour, "events/s", "", ""),
        Figure("ingest", "re-run of the hour (every file in the ledger)",
               statistics.median(reruns), "s", "", f"median of {REPEAT}"),
    ]
