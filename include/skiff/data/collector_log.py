"""The collector's durable append log: group-committed segments rolled into landing files.

Accepted events are appended to the active *segment* of their table
(``segment-<seq>-<table>-<first arrival ms>.log`` in the log folder) and fsync'd before the
collector answers. Concurrent requests share one write and one fsync (group commit): while
a batch is being synced, the next requests queue up and go out together. Each line is
already the landing line (the contract's columns + ``arrival_ts_ms``); the arrival time is
stamped when the batch is written, never earlier than the previous batch's, so it only
grows within a log.

A segment is *sealed* when it is ``roll_seconds`` old (from its first event), when it
reaches ``roll_bytes``, or when the arrival hour changes: no segment spans two arrival
hours. The roller gzips each sealed segment, as it is, into one landing file written
atomically, and deletes the segment only once that file is durable. The file's name is
derived from the collector's id and the segment's number, so rolling a segment again after
a crash between the write and the delete rewrites the same file: a kill loses no
acknowledged event and lands none twice. On start every segment found is sealed and
rolled; a torn last line (a write cut short, never acknowledged) is dropped. Rolling runs
in a worker thread and is mostly gzip and I/O, which leave the event loop free.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.data.intake import COLLECT_TABLES
from skiff.data.landing import LandingZone, compress_ndjson, fsync_dir, landing_name
from skiff.exceptions import SkiffConfigError

__all__ = ["CollectorLog", "LogUnavailable", "HOUR_MS"]

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
_SEGMENT = re.compile(r"segment-(\d{12})-(%s)-(\d+)\.log" % "|".join(COLLECT_TABLES))
_STATE, _LOCK = "collector.json", "collector.lock"
_sync = getattr(os, "fdatasync", os.fsync)  # appends: the data and the size, not the mtime


class LogUnavailable(Exception):
    """The append log could not store a batch; nothing of it was acknowledged."""


@dataclass
class _Segment:
    seq: int
    table: str
    first_ms: int
    path: Path
    fd: int = -1
    size: int = 0

    @property
    def hour(self) -> int:
        return self.first_ms // HOUR_MS

    @classmethod
    def parse(cls, path: Path) -> _Segment | None:
        """The segment a file name describes, or None for another file."""
        match = _SEGMENT.fullmatch(path.name)
        return cls(int(match[1]), match[2], int(match[3]), path) if match else None


class CollectorLog:
    """The append log and its roller.

    Call :meth:`open` once (it recovers what a previous run left), then :meth:`append` from
    request handlers, run :meth:`roll_forever` as a background task, and :meth:`close` at
    shutdown (it rolls everything still in the log).

    :param directory: the log folder (``SKIFF_COLLECT_LOG_DIR``).
    :param landing: where rolled files go.
    :param roll_seconds: seal a segment this many seconds after its first event.
    :param roll_bytes: seal a segment once it holds this many bytes.
    :param clock: seconds since the epoch (tests pass a fake).
    """

    def __init__(self, directory: Path, landing: LandingZone, *, roll_seconds: float,
                 roll_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.landing = landing
        self.roll_ms = max(1, int(roll_seconds * 1000))
        self.roll_bytes = roll_bytes
        self.clock = clock
        self.collector_id = ""
        self._next_seq = 1
        self._active: dict[str, _Segment] = {}
        self._sealed: list[_Segment] = []
        self._pending: list[tuple[list[tuple[str, bytes]], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._io: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._last_ms = 0
        self._lock_fd: int | None = None
        self.stats: dict[str, Any] = {"accepted_events": 0, "commits": 0, "landed_files": 0,
                                      "landed_events": 0, "last_landing_error": None}

    # ------------------------------------------------------------------ start and stop

    def open(self) -> list[int]:
        """Lock the folder, read or make the collector's id, seal the segments left.

        :return: the numbers of the segments found (to be rolled).
        :raises SkiffConfigError: another collector holds the folder.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        state_path = self.directory / _STATE
        state: dict[str, Any] = {}
        if state_path.is_file():
            try:
                state = json.loads(state_path.read_text())
            except ValueError:
                raise ValueError(f"{state_path} is not the collector's state (JSON); it is "
                                 "written atomically, so something else wrote it.") from None
        self.collector_id = state.get("collector_id") or secrets.token_hex(8)
        found = sorted((seg for seg in map(_Segment.parse, self.directory.glob("segment-*"))
                        if seg is not None), key=lambda seg: seg.seq)
        self._next_seq = max([int(state.get("next_segment", 1)), *(s.seq + 1 for s in found)])
        self._sealed = found
        self._write_state()
        if found:
            log.info("Collector log %s: %d segment(s) left by the last run, to be rolled.",
                     self.directory, len(found))
        return [seg.seq for seg in found]

    async def close(self) -> None:
        """Seal the active segment and roll every sealed one (what fails stays for next start)."""
        if self._flusher is not None:
            await self._flusher
        async with self._lock():
            for table in list(self._active):
                self._seal(table)
        await self.land_sealed()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock (as the kernel does if the process dies)
            self._lock_fd = None

    @property
    def opened(self) -> bool:
        """Whether :meth:`open` ran (and :meth:`close` did not)."""
        return self._lock_fd is not None

    def _take_lock(self) -> None:
        """One collector per folder: two would interleave segments and roll each other's."""
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SkiffConfigError(
                f"SKIFF_COLLECT_LOG_DIR={self.directory} is in use by another collector (pid "
                f"{holder}); stop it, or give this one its own folder.") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _lock(self) -> asyncio.Lock:
        if self._io is None:
            self._io = asyncio.Lock()
        return self._io

    def _wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def wake(self) -> None:
        """Make the roller look at once (at start, for what a previous run left; at stop)."""
        self._wake_event().set()

    def _write_state(self) -> None:
        path, temp = self.directory / _STATE, self.directory / f".{_STATE}.tmp"
        temp.write_text(json.dumps({"collector_id": self.collector_id,
                                    "next_segment": self._next_seq}))
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, path)
        fsync_dir(self.directory)

    # ------------------------------------------------------------------ appends

    async def append(self, events: list[tuple[str, bytes]]) -> None:
        """Append events and return once they are fsync'd (shared with concurrent callers).

        :param events: ``(table, row JSON)`` of each event, the JSON an object of the
            contract's columns (``arrival_ts_ms`` is added here).
        :raises LogUnavailable: the write or the fsync failed; nothing was stored.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    async with self._lock():
                        sealed = await asyncio.to_thread(self._write, batch)
                except Exception as exc:  # every waiting request gets an answer
                    log.error("Collector log %s: a write failed (%s); %d request(s) refused.",
                              self.directory, exc, len(batch),
                              exc_info=not isinstance(exc, OSError))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(LogUnavailable(str(exc)))
                    continue
                if sealed:
                    self._wake_event().set()
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._flusher = None

    def _write(self, batch: list[tuple[list[tuple[str, bytes]], Any]]) -> bool:
        """Stamp, write and fsync one group (in a worker thread, under the lock).

        :return: whether a segment was sealed (by the hour or by size): the roller has work.
        """
        now = max(int(self.clock() * 1000), self._last_ms)
        self._last_ms = now
        suffix = b',"arrival_ts_ms":%d}\n' % now
        lines: dict[str, list[bytes]] = {}
        for events, _ in batch:
            for table, row in events:
                lines.setdefault(table, []).append(row[:-1] + suffix)
        sealed = False
        written: list[tuple[_Segment, int]] = []
        try:
            for table, table_lines in lines.items():
                segment = self._active.get(table)
                if segment is not None and segment.hour != now // HOUR_MS:
                    self._seal(table)
                    sealed = True
                    segment = None
                if segment is None:
                    segment = self._start_segment(table, now)
                written.append((segment, segment.size))
                view = memoryview(b"".join(table_lines))
                while view:
                    view = view[os.write(segment.fd, view):]
            for segment, _ in written:
                _sync(segment.fd)
        except OSError:
            for segment, offset in written:  # nothing of the batch stays, not even a torn line
                try:
                    os.ftruncate(segment.fd, offset)
                except OSError:
                    self._seal(segment.table)  # its torn tail is dropped when it is rolled
            raise
        for segment, _ in written:
            segment.size = os.fstat(segment.fd).st_size
            if segment.size >= self.roll_bytes:
                self._seal(segment.table)
                sealed = True
        self.stats["accepted_events"] += sum(len(events) for events, _ in batch)
        self.stats["commits"] += 1
        return sealed

    def _start_segment(self, table: str, now_ms: int) -> _Segment:
        seq = self._next_seq
        self._next_seq += 1
        self._write_state()  # before the segment exists: its number is never reused
        path = self.directory / f"segment-{seq:012d}-{table}-{now_ms}.log"
        segment = _Segment(seq, table, now_ms, path)
        segment.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(self.directory)
        self._active[table] = segment
        return segment

    def _seal(self, table: str) -> None:
        """Close a table's active segment and queue it for rolling (caller holds the lock)."""
        segment = self._active.pop(table, None)
        if segment is not None:
            os.close(segment.fd)
            self._sealed.append(segment)

    # ------------------------------------------------------------------ rolling

    async def roll_due(self) -> None:
        """Seal the active segments ``roll_seconds`` old or whose arrival hour is over."""
        async with self._lock():
            now = max(int(self.clock() * 1000), self._last_ms)
            for table, segment in list(self._active.items()):
                if now - segment.first_ms >= self.roll_ms or now // HOUR_MS != segment.hour:
                    self._seal(table)

    async def land_sealed(self) -> int:
        """Roll every sealed segment into landing files, oldest first.

        :return: how many segments were rolled; one that fails stays (retried later).
        """
        done = 0
        while self._sealed:
            segment = self._sealed[0]
            try:
                await asyncio.to_thread(self._land, segment)
            except Exception as exc:  # noqa: BLE001  (S3 or disk trouble: kept, retried)
                self.stats["last_landing_error"] = f"{type(exc).__name__}: {exc}"
                log.error("Collector log %s: rolling %s into %s failed (%s); it is kept and "
                          "retried.", self.directory, segment.path.name, self.landing.uri, exc)
                return done
            self._sealed.pop(0)
            self.stats["last_landing_error"] = None
            done += 1
        return done

    def _land(self, segment: _Segment) -> None:
        """Write a sealed segment's landing file, then delete it (in a worker thread)."""
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("%s ends with a torn line (%d bytes, never acknowledged): dropped.",
                        segment.path.name, len(data) - end)
            data = data[:end]
        if data:
            token = hashlib.sha256(f"{self.collector_id}:{segment.seq}".encode()).hexdigest()
            file = self.landing.write(
                segment.table, datetime.fromtimestamp(segment.hour * 3600, tz=UTC),
                landing_name(segment.first_ms, token[:16]), compress_ndjson(data, level=3))
            events = data.count(b"\n")
            self.stats["landed_files"] += 1
            self.stats["landed_events"] += events
            log.info("Landed %d %s events in %s.", events, segment.table, file.uri)
        segment.path.unlink()
        fsync_dir(self.directory)

    async def roll_forever(self, stop: asyncio.Event, tick: float = 1.0) -> None:
        """The roller: seal what is due and roll sealed segments, until ``stop`` is set.

        :param stop: set at shutdown.
        :param tick: seconds between checks (a size roll wakes it at once).
        """
        tick = max(0.02, min(tick, self.roll_ms / 4000))
        backoff = tick
        wake = self._wake_event()
        while not stop.is_set():
            try:
                await asyncio.wait_for(wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            wake.clear()
            if stop.is_set():
                return
            await self.roll_due()
            before = len(self._sealed)
            landed = await self.land_sealed()
            failed = landed < before
            backoff = min(backoff * 2, 30.0) if failed else tick

    def describe(self) -> dict[str, Any]:
        """What ``/health`` shows: the id, the segments waiting and the counters."""
        return {"collector_id": self.collector_id, "log_dir": str(self.directory),
                "landing_uri": self.landing.uri,
                "active_segment_bytes": sum(s.size for s in self._active.values()),
                "sealed_segments": len(self._sealed), **self.stats}
