"""The embedded replay source: a generated history that the hourly DAG ingests hour by hour.

``make run`` generates a source once (``init_source``), loads its history up to the
last full hour, and lets the DAG's ``ingest`` task append that hour, as an event
collector would in production. Its events arrive at their event time (``arrival_ts_ms``),
as if a collector had received each one as it happened.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skiff.data.loader import EVENT_TABLES, LoadSummary, load_dir
from skiff.data.warehouse import Warehouse
from skiff.times import parse_time, to_epoch_ms

__all__ = ["SourceInfo", "init_source", "ingest_interval"]

log = logging.getLogger(__name__)

META_FILE = "_skiff_source.json"


@dataclass(frozen=True)
class SourceInfo:
    """What a replay source covers: ``[start, end)``, from its metadata file."""

    path: Path
    start: datetime
    end: datetime
    sessions: int
    seed: int

    @property
    def last_interval(self) -> tuple[datetime, datetime]:
        """The source's last full hour, the interval ``make run`` asks the DAG to run."""
        return self.end - timedelta(hours=1), self.end

    @classmethod
    def read(cls, path: Path) -> SourceInfo:
        meta = json.loads((Path(path) / META_FILE).read_text())
        return cls(Path(path), parse_time(meta["start"]), parse_time(meta["end"]),
                   meta["sessions"], meta["seed"])


def init_source(
    path: Path,
    warehouse: Warehouse,
    *,
    sessions: int,
    seed: int,
    span_hours: int,
    end: datetime | None = None,
    progress: bool = False,
) -> SourceInfo:
    """Generate the replay source (unless present) and load its history before the last hour.

    Idempotent: an existing source is reused and its history batch is appended once.
    """
    from skiff.data.generator import generate

    path = Path(path)
    if not (path / META_FILE).exists():
        summary = generate(path, sessions=sessions, seed=seed, end=end, span_hours=span_hours,
                           progress=progress)
        meta = {"start": datetime.fromtimestamp(summary.start_ms / 1000, UTC).isoformat(),
                "end": datetime.fromtimestamp(summary.end_ms / 1000, UTC).isoformat(),
                "sessions": sessions, "seed": seed}
        (path / META_FILE).write_text(json.dumps(meta, indent=2))
        log.info("Generated %s sessions into %s.", sessions, path)
    info = SourceInfo.read(path)
    history_end, _ = info.last_interval
    load_dir(path, warehouse, batch_id=f"history:{info.end.isoformat()}",
             until_ms=to_epoch_ms(history_end), skip_loaded=True, arrival="event")
    return info


def ingest_interval(
    source_dir: str | Path, warehouse: Warehouse, since: str | datetime, until: str | datetime
) -> LoadSummary:
    """Append the source's events of ``[since, until)``; a re-run of the interval appends nothing."""
    since_dt, until_dt = parse_time(since), parse_time(until)
    return load_dir(
        Path(source_dir),
        warehouse,
        batch_id=f"replay:{since_dt.isoformat()}/{until_dt.isoformat()}",
        since_ms=to_epoch_ms(since_dt),
        until_ms=to_epoch_ms(until_dt),
        tables=EVENT_TABLES,
        skip_loaded=True,
        arrival="event",  # the source plays a collector that received each event as it happened
    )
