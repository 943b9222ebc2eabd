"""Events for the /collect tests: valid browsing and search events, and the landed ones.

Each event made here carries its number in its session id, so a test can tell which of
the events it sent landed, and how many times.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: A fixed event time (2026-11-25 10:00 UTC) for tests whose clock does not matter.
T0_MS = 1_795_600_800_000


def hash64(text: str) -> str:
    """A 64-character lowercase hex hash, as the contract's ids are."""
    return hashlib.sha256(text.encode()).hexdigest()


def session_of(i: int) -> str:
    return hash64(f"session-{i}")


def browsing_event(i: int, ts_ms: int | None = None, **fields: Any) -> dict[str, Any]:
    """Event number ``i``: a detail view, or a pageview for odd ``i``."""
    ts = int(time.time() * 1000) - 1000 if ts_ms is None else ts_ms
    event: dict[str, Any] = {"session_id_hash": session_of(i), "event_type": "event_product",
                             "product_action": "detail", "product_sku_hash": hash64(f"sku-{i % 7}"),
                             "server_timestamp_epoch_ms": ts, "hashed_url": hash64(f"url-{i}")}
    if i % 2:
        event.update(event_type="pageview", product_action=None, product_sku_hash=None)
    event.update(fields)
    return event


def search_event(i: int, ts_ms: int | None = None) -> dict[str, Any]:
    """Search number ``i``: a query vector and two shown SKUs, as JSON arrays."""
    ts = int(time.time() * 1000) - 1000 if ts_ms is None else ts_ms
    return {"session_id_hash": session_of(i), "query_vector": [0.25, -0.5, 1e-05] + [0.0] * 47,
            "product_skus_hash": [hash64("sku-1"), hash64("sku-2")],
            "server_timestamp_epoch_ms": ts}


def landing_files(zone: Any, table: str = "browsing_train") -> list[Any]:
    """The files a LandingZone lists for ``table``: every hour folder of a local zone, the
    hours around now on S3."""
    if hasattr(zone, "root"):  # list the hour folders that exist, not every hour there is
        files = []
        for hour in sorted(p for p in Path(zone.root, table).glob("*/*/*/*") if p.is_dir()):
            at = datetime(*(int(x) for x in hour.parts[-4:]), tzinfo=UTC)
            files += zone.list(table, at, at + timedelta(hours=1))
        return files
    now = datetime.now(UTC)
    return zone.list(table, now - timedelta(hours=3), now + timedelta(hours=3))


def landed(root: Any, table: str = "browsing_train") -> list[dict[str, Any]]:
    """Every event in the landing files of ``table`` (``root``: a folder or a LandingZone)."""
    from skiff.data.landing import LandingZone, decode_events

    zone = root if isinstance(root, LandingZone) else LandingZone.from_uri(root)
    rows: list[dict[str, Any]] = []
    for file in landing_files(zone, table):
        rows += decode_events(table, zone.read(file), name=file.uri).to_pylist()
    return rows


def counts(rows: list[dict[str, Any]]) -> Counter[str]:
    """How many times each session id (event number) landed."""
    return Counter(r["session_id_hash"] for r in rows)
