"""Landing files as the collector writes them, arrival times with late and repeated events, and
small valid events.

Written here from the format's description (ISSUE14), independently of the reader under
test: gzip NDJSON, one JSON object per line (the table's contract columns and
``arrival_ts_ms``), at ``<root>/<table>/YYYY/MM/DD/HH/skiff-collect-<YYYY-MM-DD-HH-MM-SS>-<16
hex>.ndjson.gz``, the folder being the UTC arrival hour of the file's first event; a file
never spans two arrival hours; written as ``.<name>.tmp`` and renamed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HOUR_MS = 3_600_000


def landing_path(root: Path, table: str, first_arrival_ms: int, token: str) -> Path:
    """Where the collector puts a file whose first event arrived at ``first_arrival_ms``."""
    when = datetime.fromtimestamp(first_arrival_ms / 1000, UTC)
    return (Path(root) / table / f"{when:%Y/%m/%d/%H}"
            / f"skiff-collect-{when:%Y-%m-%d-%H-%M-%S}-{token}.ndjson.gz")


def encode(rows: list[dict]) -> bytes:
    """A landing file's bytes: gzip of one JSON object per line."""
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows), mtime=0)


def write_file(root: Path, table: str, rows: list[dict], token: str) -> Path:
    """Write one landing file atomically (temp name, then rename), as the collector does."""
    path = landing_path(root, table, rows[0]["arrival_ts_ms"], token)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(encode(rows))
    os.replace(temp, path)
    return path


def land_events(root: Path, table: str, events: pa.Table, *, files_per_hour: int = 3,
                tag: int = 0) -> list[Path]:
    """Write ``events`` (contract columns + ``arrival_ts_ms``) as landing files: in arrival
    order, cut at arrival-hour boundaries, ``files_per_hour`` files per hour."""
    events = events.sort_by("arrival_ts_ms")
    hours = pc.divide(events.column("arrival_ts_ms"), HOUR_MS).to_numpy()
    rows = events.to_pylist()
    paths = []
    for hour in np.unique(hours):
        (index,) = np.nonzero(hours == hour)
        for k, part in enumerate(np.array_split(index, files_per_hour)):
            if len(part):
                token = f"{tag:04x}{int(hour) % 0xFFFFFFFF:08x}{k:04x}"
                paths.append(write_file(root, table, [rows[i] for i in part], token))
    return paths


def with_arrivals(events: pa.Table, time_column: str, rng: np.random.Generator, *,
                  late_share: float = 0.0, late_hours: tuple[float, float] = (1, 4),
                  repeat_share: float = 0.0) -> pa.Table:
    """``events`` with ``arrival_ts_ms``: most arrive 0.1-30 s after they happened (so files
    hold them slightly out of order), ``late_share`` of them ``late_hours`` late, and
    ``repeat_share`` of them sent again by a client retrying, 1-20 minutes later."""
    n = events.num_rows
    delay = rng.uniform(100, 30_000, n)
    late = rng.random(n) < late_share
    delay[late] = rng.uniform(late_hours[0] * HOUR_MS, late_hours[1] * HOUR_MS, late.sum())
    at = events.column(time_column).to_numpy() + delay.astype(np.int64)
    out = events.append_column("arrival_ts_ms", pa.array(at, pa.int64()))
    repeats = np.nonzero(rng.random(n) < repeat_share)[0]
    if len(repeats):
        again = out.take(pa.array(repeats))
        later = again.column("arrival_ts_ms").to_numpy() + rng.integers(60_000, 1_200_000,
                                                                         len(repeats))
        again = again.set_column(again.num_columns - 1, "arrival_ts_ms", pa.array(later))
        out = pa.concat_tables([out, again])
    return out


def _hex(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# ------------------------------------------------------------------ small valid events


def browsing(n: int, arrival_ms: int, session: str = "s", late_ms: int = 0) -> list[dict]:
    """n browsing events of one session, one a second, arriving from ``arrival_ms``; each
    happened ``late_ms`` before it arrived (and half a second more)."""
    return [{"session_id_hash": _hex(session), "event_type": "event_product",
             "product_action": "detail", "product_sku_hash": _hex("sku", i % 3),
             "server_timestamp_epoch_ms": arrival_ms - late_ms + 1000 * i - 500,
             "hashed_url": _hex("url", i), "arrival_ts_ms": arrival_ms + 1000 * i}
            for i in range(n)]


#: A 50-number vector, as the official files write one.
VECTOR = "[0.1, -0.2" + ", 0.0" * 48 + "]"


def search(n: int, arrival_ms: int) -> list[dict]:
    """n search events of session "s", one a second, arriving from ``arrival_ms``."""
    return [{"session_id_hash": _hex("s"), "query_vector": VECTOR,
             "clicked_skus_hash": f"['{_hex('sku', 0)}']", "product_skus_hash": None,
             "server_timestamp_epoch_ms": arrival_ms + 1000 * i - 200,
             "arrival_ts_ms": arrival_ms + 1000 * i} for i in range(n)]


def catalogue(arrival_ms: int) -> list[dict]:
    """Three catalogue rows delivered at ``arrival_ms``."""
    return [{"product_sku_hash": _hex("sku", i), "description_vector": VECTOR,
             "category_hash": f"{_hex('top')}/{_hex('cat', i)}", "image_vector": None, "price_bucket": float(i + 1),
             "arrival_ts_ms": arrival_ms} for i in range(3)]


def predictions(n: int, first_arrival_ms: int, tag: str = "p") -> list[dict]:
    """``n`` prediction events (the model server's log), arriving a second apart, served just
    before."""
    return [{"request_id": f"{tag}-{i}", "session_index": 0,
             "served_at": first_arrival_ms + i * 1000 - 500, "model": "rec",
             "model_version": "RecFlow/3", "endpoint": "skiff-rec", "session_length": 2,
             "input_tokens": "['sku-a', 'sku-b']", "output_items": "['sku-c']", "status": 200,
             "latency_ms": 4.5, "fallback": 0, "ignored_count": 0, "sender_id": "s1",
             "dropped_before": 0, "arrival_ts_ms": first_arrival_ms + i * 1000}
            for i in range(n)]
