"""Synthetic Coveo SIGIR eCom 2021 files with planted, learnable structure.

:func:`generate` writes ``browsing_train``, ``search_train`` and ``sku_to_content`` with
the columns and types of :mod:`skiff.data.contract` (parquet, or CSV in the official files'
format). The shoppers and what there is to learn from them are
:mod:`skiff.data.shoppers`' (shared with the emitter); here a fixed number of sessions is
spread over a span. Sessions are simulated in chunks with numpy and written with pyarrow,
so memory stays bounded at the real dataset's scale (~5M sessions, ~36M browsing events).
Sessions are in start-time order and each session's events are contiguous, so the row
groups of the browsing file have tight timestamp statistics for the hourly replay.

Randomness comes from one stream per block of 1000 consecutive sessions, so the same
``(sessions, seed, end, span_hours, n_products)`` give the same rows whatever
``chunk_sessions`` is.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from skiff.data.contract import BROWSING, CATALOGUE, SEARCH, TableContract
from skiff.data.shoppers import (
    BLOCK,
    HOUR_MS,
    KEY_CATALOGUE,
    KEY_SPAN_SESSIONS,
    KEY_SPAN_STARTS,
    Streams,
    build_catalogue,
    simulate,
    span_starts,
    stream,
)
from skiff.exceptions import SkiffConfigError
from skiff.times import to_epoch_ms

__all__ = ["FORMATS", "GenerateSummary", "generate"]

#: Output formats of :func:`generate`.
FORMATS = ("parquet", "csv")

_DICT_PAGE = 32 << 20  # bytes: keeps skus, urls and a row group's sessions dictionary-encoded


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` wrote.

    :param out_dir: the output folder.
    :param files: path of each file, by contract name.
    :param rows: rows of each file, by contract name.
    :param sessions: sessions simulated.
    :param start_ms: start of the covered span, epoch ms (inclusive).
    :param end_ms: end of the covered span, epoch ms (exclusive).
    :param seconds: wall time of the generation.
    """

    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    sessions: int
    start_ms: int
    end_ms: int
    seconds: float


def generate(
    out_dir: Path,
    *,
    sessions: int = 20_000,
    seed: int = 42,
    end: datetime | None = None,
    span_hours: int = 72,
    fmt: str = "parquet",
    chunk_sessions: int = 250_000,
    n_products: int | None = None,
    progress: bool = False,
) -> GenerateSummary:
    """Write the three contract files of a synthetic dataset to ``out_dir``.

    :param out_dir: output folder, created if missing; existing files are overwritten.
    :param sessions: number of sessions.
    :param seed: random seed; the same arguments give the same rows.
    :param end: end of the span (exclusive; naive means UTC); default now, floored to the hour.
    :param span_hours: hours covered; every timestamp lies in ``[end - span_hours, end)``
        (sessions still running at ``end`` are cut there).
    :param fmt: ``parquet`` or ``csv`` (the official files' format).
    :param chunk_sessions: sessions simulated and written at a time (rounded up to whole
        blocks of 1000); bounds memory, does not change the data.
    :param n_products: catalogue size; default ``sessions // 4`` within ``[500, 60000]``.
    :param progress: show a progress bar on stderr.
    :raises SkiffConfigError: an argument is out of range or ``fmt`` is unknown.
    """
    if fmt not in FORMATS:
        raise SkiffConfigError(f"Unknown format {fmt!r}; use one of {FORMATS}.")
    if n_products is None:
        n_products = int(np.clip(sessions // 4, 500, 60_000))
    for name, value, minimum in (("sessions", sessions, 1), ("span_hours", span_hours, 1),
                                 ("chunk_sessions", chunk_sessions, 1),
                                 ("n_products", n_products, 20)):
        if value < minimum:
            raise SkiffConfigError(f"{name}={value} must be >= {minimum}.")
    began = time.perf_counter()
    end_ms = _end_ms(end)
    start_ms = end_ms - span_hours * HOUR_MS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contracts = (BROWSING, SEARCH, CATALOGUE)
    files = {c.name: out_dir / f"{c.name}.{fmt}" for c in contracts}
    rows = dict.fromkeys(files, 0)

    catalogue = build_catalogue(stream(seed, KEY_CATALOGUE), n_products)
    starts = span_starts(stream(seed, KEY_SPAN_STARTS), sessions, start_ms, span_hours)
    chunk = -(-chunk_sessions // BLOCK) * BLOCK
    with ExitStack() as stack:
        writers = {c.name: stack.enter_context(_Writer(files[c.name], c, fmt)) for c in contracts}
        bar = stack.enter_context(tqdm(total=sessions, unit="session", desc="generate",
                                       disable=not progress, file=sys.stderr))
        rows[CATALOGUE.name] = writers[CATALOGUE.name].write(catalogue.table)
        for lo in range(0, sessions, chunk):
            hi = min(lo + chunk, sessions)
            streams = Streams(seed, (KEY_SPAN_SESSIONS,), lo // BLOCK, hi - lo)
            browsing, search = simulate(catalogue, streams, starts[lo:hi], start_ms, end_ms)
            rows[BROWSING.name] += writers[BROWSING.name].write(browsing)
            rows[SEARCH.name] += writers[SEARCH.name].write(search)
            bar.update(hi - lo)
    return GenerateSummary(out_dir, files, rows, sessions, start_ms, end_ms,
                           time.perf_counter() - began)


def _end_ms(end: datetime | None) -> int:
    if end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return to_epoch_ms(end)


class _Writer:
    """Appends tables to one contract file: parquet, or CSV in the official files' format."""

    def __init__(self, path: Path, contract: TableContract, fmt: str) -> None:
        self._sink: pq.ParquetWriter | BinaryIO
        if fmt == "parquet":
            self._sink = pq.ParquetWriter(path, contract.schema, compression="zstd",
                                          dictionary_pagesize_limit=_DICT_PAGE)
        else:
            self._sink = path.open("wb")
            self._sink.write((",".join(contract.columns) + "\n").encode())

    def write(self, table: pa.Table) -> int:
        """Append ``table``; return its number of rows."""
        if isinstance(self._sink, pq.ParquetWriter):
            self._sink.write_table(table)
        elif table.num_rows:
            fields = [_csv_field(col.combine_chunks()) for col in table.columns]
            lines = pc.binary_join_element_wise(*fields, _text(","), null_handling="replace")
            lines = pc.binary_join_element_wise(lines, _text("\n"), _text(""))
            offsets = np.frombuffer(lines.buffers()[1], np.int64)
            self._sink.write(memoryview(lines.buffers()[2])[offsets[0]:offsets[len(lines)]])
        return table.num_rows

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sink.close()


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _csv_field(col: pa.Array) -> pa.Array:
    """CSV text of a column as in the official files: ``7.0`` for floats, quoted if needed."""
    text = col.cast(pa.large_string())
    if pa.types.is_floating(col.type):
        whole = pc.match_substring_regex(text, r"^-?\d+$")
        return pc.if_else(whole, pc.binary_join_element_wise(text, _text(".0"), _text("")), text)
    if not pa.types.is_string(col.type):
        return text
    quoted = pc.binary_join_element_wise(_text('"'), pc.replace_substring(text, '"', '""'),
                                         _text('"'), _text(""))
    return pc.if_else(pc.match_substring_regex(text, '[",\r\n]'), quoted, text)
