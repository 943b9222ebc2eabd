"""The embedded history: the shoppers' past hours as landing files, all but the last ingested.

``skiff init`` (``make run``, ``make airflow``, the compose ``init`` service) gives a fresh
warehouse what a shop that has been collecting for a while has: the emitter's deliveries of
the last ``SKIFF_SAMPLE_SPAN_HOURS`` hours written to the landing zone as the collector rolls
them (cut at ``SKIFF_SCHEDULE``'s fire times, so each data interval has its own files), and
the raw log holding every one of them that arrived before the schedule's last complete
interval, appended as one batch by the same ledgered :func:`~skiff.data.ingest.ingest_arrivals`
the DAG runs. That interval is left for the DAG (``make run`` runs exactly it; a scheduler
just unpaused runs it first); the deliveries go on a few minutes past it, so the DAG's grace
wait sees that the collector has moved on and does not wait for stragglers.

Running it again extends the same history: only arrivals after what was written last time
are emitted (``_skiff_history.json`` in the landing folder says how far), and the ledger skips
files already ingested. It writes to a local landing zone only: on S3 the collector (or
Firehose) fills the zone, and a simulated history has no business there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skiff.data.emitter import ARRIVAL, Emitter, Events
from skiff.data.emitter_files import write_catalogue, write_landing
from skiff.data.ingest import IngestSummary, ingest_arrivals
from skiff.data.landing import LandingZone
from skiff.data.warehouse import Warehouse
from skiff.exceptions import SkiffConfigError
from skiff.times import parse_time, to_epoch_ms

__all__ = ["History", "init_history"]

log = logging.getLogger(__name__)

META_FILE = "_skiff_history.json"
#: How far past the last full hour the deliveries go (the DAG's "moved on" signal).
LEAD = timedelta(minutes=5)


@dataclass(frozen=True)
class History:
    """What the landing zone holds from the emitter, and what the DAG is left to run.

    :param start: the first arrival hour written.
    :param end: the end of the schedule's last complete interval: the logical date
        ``make run`` gives the DAG, whose data interval (the hour ``[end - 1h, end)`` by
        default) is not ingested yet.
    :param emitted_to: arrivals up to here (excluded) are written; a live emitter goes on
        from here.
    :param seed: the emitter's seed.
    :param sessions_per_hour: its peak traffic.
    """

    start: datetime
    end: datetime
    emitted_to: datetime
    seed: int
    sessions_per_hour: float

    @classmethod
    def read(cls, path: Path) -> History | None:
        """The history a landing folder's metadata file describes, or None."""
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            raise SkiffConfigError(f"{path} is not JSON; delete it (the history is then "
                                   "written again, and the ledger skips what was ingested).")
        return cls(parse_time(meta["start"]), parse_time(meta["end"]),
                   parse_time(meta["emitted_to"]), int(meta["seed"]),
                   float(meta["sessions_per_hour"]))

    def write(self, path: Path) -> None:
        meta = {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self).items()}
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps(meta, indent=2))
        temp.replace(path)


def last_interval(schedule: str, now: datetime) -> tuple[datetime, datetime]:
    """The schedule's latest data interval ended by ``now``: the one a scheduler runs next.

    :param schedule: ``SKIFF_SCHEDULE`` (cron or preset, UTC).
    :param now: an aware time.
    """
    from croniter import croniter

    fires = croniter(schedule, now)
    end = fires.get_prev(datetime).replace(fold=0)
    return fires.get_prev(datetime).replace(fold=0), end


def _boundaries(schedule: str, since: datetime, until: datetime) -> list[int]:
    """The schedule's fire times in ``(since, until)``, epoch ms: where files are cut."""
    from croniter import croniter

    fires, cuts = croniter(schedule, since), []
    while (at := fires.get_next(datetime)) < until:
        cuts.append(to_epoch_ms(at))
    return cuts


def init_history(emitter: Emitter, landing: LandingZone, warehouse: Warehouse, *,
                 span_hours: int, schedule: str = "0 * * * *",
                 now: datetime | None = None) -> tuple[History, IngestSummary]:
    """Write the emitter's history to the landing zone and ingest all of it but the last interval.

    :param emitter: the shoppers (their seed and traffic are recorded, and must not change
        under an existing history).
    :param landing: a local landing zone.
    :param warehouse: the raw log.
    :param span_hours: hours of history before the last interval's end.
    :param schedule: ``SKIFF_SCHEDULE``: the last interval it completed by ``now`` is left
        for the DAG, and files are cut at its fire times, so each interval has its own (as
        the collector's, which roll every minute or so).
    :param now: the clock (tests pass one).
    :return: the history, and what this call ingested (nothing, when it was ingested before).
    :raises SkiffConfigError: the landing zone is not a local folder, or its history was
        written with another seed or traffic.
    """
    root = getattr(landing, "root", None)
    if root is None:
        raise SkiffConfigError(
            f"skiff init writes the simulated history to a local landing zone, not "
            f"{landing.uri}: on S3 the collector (or Firehose) fills it. Point "
            "SKIFF_LANDING_URI at a folder, or run the DAG on what has landed.")
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    left_from, end = last_interval(schedule, now)
    emitted_to = max(now, end + LEAD)
    meta_path = Path(root) / META_FILE
    before = History.read(meta_path)
    if before is not None and (before.seed, before.sessions_per_hour) != (
            emitter.seed, emitter.sessions_per_hour):
        raise SkiffConfigError(
            f"{root} holds the history of seed {before.seed} at {before.sessions_per_hour:g} "
            f"sessions/hour, not seed {emitter.seed} at {emitter.sessions_per_hour:g}: mixing "
            "two shop's shoppers breaks the planted structure. Use another SKIFF_HOME (or "
            "SKIFF_LANDING_URI), or `make clean`.")
    start = before.start if before else (end - timedelta(hours=span_hours)).replace(minute=0)
    since = max(before.emitted_to, start) if before else start
    if since < emitted_to:
        files = events = 0
        cuts = _boundaries(schedule, since, emitted_to)
        for delivered in emitter.deliveries(since, emitted_to):
            for part in _cut(delivered, cuts):
                files += len(write_landing(root, part))
            events += len(delivered)
        write_catalogue(root, emitter, landing_hour=to_epoch_ms(start) // 3_600_000)
        log.info("History: %s events in %d landing files, arrivals %s .. %s, under %s.",
                 f"{events:,}", files, since.isoformat(), emitted_to.isoformat(), root)
    history = History(start, end, max(emitted_to, before.emitted_to if before else emitted_to),
                      emitter.seed, emitter.sessions_per_hour)
    history.write(meta_path)
    if left_from <= start:
        raise SkiffConfigError(f"span_hours={span_hours}: the history must be longer than the "
                               "schedule's last interval, which is left for the DAG.")
    summary = ingest_arrivals(warehouse, landing, start, left_from)
    log.info("History ingested up to %s: %s rows appended (%d files, %d skipped) in %.1fs.",
             left_from.isoformat(), f"{sum(summary.rows.values()):,}", len(summary.files),
             len(summary.skipped), summary.seconds)
    return history, summary


def _cut(delivered: Events, cuts: list[int]) -> list[Events]:
    """One hour's deliveries cut at the schedule's fire times inside it."""
    times = [t for table in delivered.tables.values() for t in table[ARRIVAL].to_pylist()]
    if not times:
        return [delivered]
    low, high = min(times), max(times) + 1
    inside = [c for c in cuts if low < c < high]
    edges = [low, *inside, high]
    return [delivered.between(a, b) for a, b in zip(edges, edges[1:])]
