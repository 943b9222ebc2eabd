"""The emitter's deliveries as landing files, as the collector would roll them (no HTTP).

:func:`write_landing` writes one gzip NDJSON file per table and arrival hour under the
landing zone's layout ``<table>/YYYY/MM/DD/HH/``, each object the contract's columns plus
``arrival_ts_ms``; :func:`write_catalogue` delivers ``sku_to_content`` once, as a landing
file or as the Parquet file ``skiff load`` reads. Used by ``skiff emit --to-files``, the
tests and the soak. The NDJSON is built column-wise by pyarrow, several times faster than
``json.dumps`` row by row.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skiff.data.contract import CATALOGUE
from skiff.data.emitter import ARRIVAL, Emitter, Events
from skiff.data.shoppers import HOUR_MS
from skiff.times import from_epoch_ms

__all__ = ["write_catalogue", "write_landing"]

_GZIP_LEVEL = 1  # a third bigger than level 6, three times faster to write
#: What JSON escapes in a string, the backslash first.
_JSON_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\b", "\\b"), ("\f", "\\f"), ("\n", "\\n"),
                 ("\r", "\\r"), ("\t", "\\t"),
                 *((chr(i), f"\\u{i:04x}") for i in range(32) if chr(i) not in "\b\f\n\r\t")]


def write_landing(root: Path, delivered: Events, *, prefix: str = "skiff-emit") -> list[Path]:
    """Write delivered rows as the collector's landing files: one per table and arrival hour.

    ``<root>/<table>/YYYY/MM/DD/HH/<prefix>-<YYYY-MM-DD-HH-MM-SS>-<16 hex>.ndjson.gz``:
    gzip NDJSON, one object a line with the contract's columns and ``arrival_ts_ms``; the
    folder and the time in the name are the first row's arrival, the hex digits the content's
    (the same rows give the same file). Each file appears whole (a ``.<name>.tmp``, renamed).

    :param root: the landing folder.
    :param delivered: rows with ``arrival_ts_ms``, e.g. one item of :meth:`Emitter.deliveries`.
    :param prefix: start of the file names.
    :return: the files written (none for an empty table).
    :raises ValueError: the rows are not delivered ones, or span two arrival hours.
    """
    written = []
    for name, table in delivered.tables.items():
        if ARRIVAL not in table.column_names:
            raise ValueError(f"{name} rows have no {ARRIVAL}: write delivered rows.")
        if table.num_rows:
            written.append(_write_file(Path(root), name, table, prefix))
    return written


def write_catalogue(root: Path, emitter: Emitter, *, landing_hour: int | None = None) -> Path:
    """Deliver the catalogue: ``sku_to_content.parquet`` for ``skiff load``, or a landing file.

    :param root: the folder for the loader, or the landing folder.
    :param emitter: whose catalogue.
    :param landing_hour: write a landing file whose arrival is this hour (since the epoch),
        unless the same catalogue was delivered before: a file named by its digest is
        anywhere under ``sku_to_content/``.
    :return: the file, written or found.
    """
    import pyarrow.parquet as pq

    root = Path(root)
    table = emitter.catalogue_table
    if landing_hour is None:
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{CATALOGUE.name}.parquet"
        pq.write_table(table, path)
        return path
    _, digest = _ndjson_gz(table)  # of the catalogue, whatever its arrival
    found = sorted((root / CATALOGUE.name).rglob(f"skiff-emit-catalogue-*-{digest}.ndjson.gz"))
    if found:
        return found[0]
    arrival = pa.array(np.full(table.num_rows, landing_hour * HOUR_MS), pa.int64())
    return _write_file(root, CATALOGUE.name, table.append_column(ARRIVAL, arrival),
                       "skiff-emit-catalogue", digest)


def _ndjson_gz(table: pa.Table) -> tuple[bytes, str]:
    """The rows as gzip NDJSON (deterministic bytes), and 16 hex digits of their digest."""
    data = gzip.compress(_ndjson(table), compresslevel=_GZIP_LEVEL, mtime=0)
    return data, hashlib.sha256(data).hexdigest()[:16]


def _ndjson(table: pa.Table) -> bytes:
    """One compact JSON object a row, keys in column order, built column-wise by pyarrow.

    The objects ``json.dumps`` of each row gives (non-ASCII kept as UTF-8), many times faster:
    strings escaped as JSON requires, integers and floats as numbers, nulls as ``null``.
    """
    if not table.num_rows:
        return b""
    parts: list[pa.Array | pa.Scalar] = []
    for i, name in enumerate(table.column_names):
        parts += [_text(("{" if i == 0 else ",") + json.dumps(name) + ":"),
                  _json_values(name, table[name].combine_chunks())]
    lines = pc.binary_join_element_wise(*parts, _text("}\n"), _text(""))
    offsets = np.frombuffer(lines.buffers()[1], np.int64)
    return bytes(memoryview(lines.buffers()[2])[offsets[0]:offsets[len(lines)]])


def _json_values(name: str, col: pa.Array) -> pa.Array:
    """JSON text of each value of ``col``; ``null`` for a null."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = col.cast(pa.large_string())
        if pc.any(pc.match_substring_regex(text, r'["\\\x00-\x1f]')).as_py():
            for char, escaped in _JSON_ESCAPES:  # the backslash first
                text = pc.replace_substring(text, char, escaped)
        text = pc.binary_join_element_wise(_text('"'), text, _text('"'), _text(""))
    elif pa.types.is_integer(col.type):
        text = col.cast(pa.large_string())
    elif pa.types.is_floating(col.type):
        if pc.all(pc.is_finite(col)).as_py() not in (True, None):
            raise ValueError(f"{name}: NaN or infinite values have no JSON form.")
        text = col.cast(pa.large_string())
    else:
        raise ValueError(f"{name}: no JSON form for {col.type} columns here.")
    return pc.fill_null(text, _text("null"))


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _write_file(root: Path, name: str, table: pa.Table, prefix: str,
                digest: str | None = None) -> Path:
    """Write one landing file; ``digest`` (the name's hex digits) defaults to its content's."""
    arrival = table[ARRIVAL].to_numpy()
    first, last = int(arrival.min()), int(arrival.max())
    if first // HOUR_MS != last // HOUR_MS:
        raise ValueError(f"{name} rows arrive from {from_epoch_ms(first).isoformat()} to "
                         f"{from_epoch_ms(last).isoformat()}: a landing file holds one "
                         "arrival hour.")
    data, content_digest = _ndjson_gz(table)
    digest = digest or content_digest
    when = from_epoch_ms(int(arrival[0]))
    folder = root / name / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}-{when:%Y-%m-%d-%H-%M-%S}-{digest}.ndjson.gz"
    tmp = folder / f".{path.name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
