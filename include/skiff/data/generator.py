"""Synthetic Coveo SIGIR eCom 2021 data with planted, learnable structure.

:func:`generate` writes ``browsing_train``, ``search_train`` and ``sku_to_content`` with
the columns and types of :mod:`skiff.data.contract` (parquet, or CSV in the official files'
format). Sessions are simulated in chunks with numpy and written with pyarrow, so memory
stays bounded at the real dataset's scale (~5M sessions, ~36M browsing events). Sessions
are in start-time order and each session's events are contiguous, so the row groups of
the browsing file have tight timestamp statistics for the hourly replay.

What there is to learn:

- **Popularity**: Zipf-like over products, hence over categories too.
- **Sequences**: each product has a few successors (mostly in its category) with skewed
  weights, one list per latent session *direction*. The next view is a return to the
  session's first product (its *anchor*; more often in engaged sessions), a step back to
  the product before the last one, or else a successor (62%), a popular product of the
  category (28%) or a jump to another category (10%). The direction, the anchor and the
  step back show in the session's history, not in its last product alone.
- **Intent**: the anchor is added to the cart with a probability that grows with repeat
  views of it, the number of views and the dwell time, and falls with its price. A cart
  is bought with a probability that falls with the products browsed after the add and
  with the price, and never after a remove.
- **Search**: ~15% of sessions search before some of their views; the query vector is near
  the category centroid of the product then viewed, which the shown list contains.

Randomness comes from one stream per block of 1000 consecutive sessions, so the same
``(sessions, seed, end, span_hours, n_products)`` give the same rows whatever
``chunk_sessions`` is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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

from skiff.exceptions import SkiffConfigError
from skiff.data.contract import BROWSING, CATALOGUE, SEARCH, TableContract
from skiff.times import to_epoch_ms

__all__ = ["FORMATS", "GenerateSummary", "generate"]

#: Output formats of :func:`generate`.
FORMATS = ("parquet", "csv")

_BLOCK = 1_000  # sessions per random stream; chunks are whole blocks
_HOUR_MS = 3_600_000
_DIM = 50  # length of description, image and query vectors
_DIRECTIONS = 2  # latent session directions, each with its own successor lists
_SUCC_CDF = np.cumsum([0.4, 0.25, 0.15, 0.12, 0.08])  # weights of a product's successors
_P_BACK = 0.1  # next view: back to the product before the last one
_P_SUCC, _P_POP = 0.62, 0.28  # other moves: successor, popular in category; else a jump
_QUERIES = 6  # queries per category
_RESULTS = 20  # products a query can show
_CART, _CHECKOUT = 0, 1  # non-product pages of removes and purchases
_DETAIL, _ADD, _REMOVE, _PURCHASE, _PAGEVIEW = range(5)  # event kinds, in same-ms order
_DICT_PAGE = 32 << 20  # bytes: keeps skus, urls and a row group's sessions dictionary-encoded
_HEX = np.array([f"{i:02x}".encode() for i in range(256)]).view(np.uint16)


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
    start_ms = end_ms - span_hours * _HOUR_MS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contracts = (BROWSING, SEARCH, CATALOGUE)
    files = {c.name: out_dir / f"{c.name}.{fmt}" for c in contracts}
    rows = dict.fromkeys(files, 0)

    catalogue = _catalogue(_rng(seed, 0), n_products)
    starts = _session_starts(_rng(seed, 1), sessions, start_ms, span_hours)
    chunk = -(-chunk_sessions // _BLOCK) * _BLOCK
    with ExitStack() as stack:
        writers = {c.name: stack.enter_context(_Writer(files[c.name], c, fmt)) for c in contracts}
        bar = stack.enter_context(tqdm(total=sessions, unit="session", desc="generate",
                                       disable=not progress, file=sys.stderr))
        rows[CATALOGUE.name] = writers[CATALOGUE.name].write(catalogue.table)
        for lo in range(0, sessions, chunk):
            hi = min(lo + chunk, sessions)
            streams = _Streams(seed, lo // _BLOCK, hi - lo)
            browsing, search = _simulate(catalogue, streams, starts[lo:hi], start_ms, end_ms)
            rows[BROWSING.name] += writers[BROWSING.name].write(browsing)
            rows[SEARCH.name] += writers[SEARCH.name].write(search)
            bar.update(hi - lo)
    return GenerateSummary(out_dir, files, rows, sessions, start_ms, end_ms,
                           time.perf_counter() - began)


def _end_ms(end: datetime | None) -> int:
    if end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return to_epoch_ms(end)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _zipf_cdf(n: int, exponent: float, offset: float = 1.0) -> np.ndarray:
    weights = (np.arange(n) + offset) ** -exponent
    return np.cumsum(weights) / weights.sum()


def _pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: indices into ``cdf`` for uniforms ``u``."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


class _Streams:
    """Random draws for consecutive whole blocks of sessions, one stream per block.

    Every draw is per session: ``counts[i]`` rows (one if ``counts`` is omitted) for
    session ``i``, in session order. A block's stream sees the same calls whatever chunk
    it is simulated in, so the values do not depend on the chunk size.
    """

    def __init__(self, seed: int, first_block: int, n_sessions: int) -> None:
        self._bounds = np.arange(0, n_sessions, _BLOCK)
        self._sizes = np.diff(np.append(self._bounds, n_sessions))
        self._rngs = [_rng(seed, 2, first_block + b) for b in range(len(self._bounds))]

    def _draw(self, fn: Callable[[np.random.Generator, int], np.ndarray],
              counts: np.ndarray | None) -> np.ndarray:
        per_block = self._sizes if counts is None else np.add.reduceat(counts, self._bounds)
        return np.concatenate([fn(rng, int(n)) for rng, n in zip(self._rngs, per_block)])

    def uniform(self, cols: int, counts: np.ndarray | None = None) -> np.ndarray:
        return self._draw(lambda rng, n: rng.random((n, cols)), counts)

    def normal(self, counts: np.ndarray | None = None) -> np.ndarray:
        return self._draw(lambda rng, n: rng.standard_normal(n), counts)

    def hashes(self) -> pa.StringArray:
        return _hex(self._draw(lambda rng, n: np.frombuffer(rng.bytes(32 * n), np.uint8), None))


def _hex(raw: np.ndarray) -> pa.StringArray:
    """64-char lowercase hex strings (like sha256 digests), one per 32 bytes of ``raw``."""
    n = raw.size // 32
    data = _HEX[raw.reshape(n, 32)].tobytes()
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _random_hashes(rng: np.random.Generator, n: int) -> pa.StringArray:
    return _hex(np.frombuffer(rng.bytes(32 * n), np.uint8))


def _vectors(x: np.ndarray) -> pa.Array:
    """Rows of ``x`` as strings like ``[0.1234, -0.5678, ...]``."""
    n, dim = x.shape
    values = pa.array((np.round(x, 4) + 0.0).ravel()).cast(pa.string())  # + 0.0: no "-0"
    offsets = pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, values), ", ")
    return pc.binary_join_element_wise("[", joined, "]", "")


def _sku_lists(skus: pa.StringArray, items: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Strings like ``['a', 'b']`` of ``skus[items]``, ``lengths`` items a row; null if none."""
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, skus.take(pa.array(items))), "', '")
    text = pc.binary_join_element_wise("['", joined, "']", "")
    return pc.if_else(pa.array(lengths > 0), text, pa.scalar(None, pa.string()))


@dataclass(frozen=True)
class _Popularity:
    """Product popularity; products are numbered in category order."""

    category: np.ndarray  # (P,) category of each product, non-decreasing
    edges: np.ndarray  # (P + 1,) cumulative popularity, from 0
    first: np.ndarray  # (C,) first product of each category
    last: np.ndarray  # (C,) last product of each category

    @property
    def cat_cdf(self) -> np.ndarray:
        """Cumulative distribution of the categories' popularity."""
        return self.edges[self.last + 1] / self.edges[-1]

    def in_category(self, cats: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Products of categories ``cats``, drawn by popularity from uniforms ``u``."""
        lo, hi = self.edges[self.first[cats]], self.edges[self.last[cats] + 1]
        product = np.searchsorted(self.edges, lo + u * (hi - lo), side="right") - 1
        return np.clip(product, self.first[cats], self.last[cats])


@dataclass(frozen=True)
class _Catalogue:
    """Products, their successors, urls and content; the ``sku_to_content`` table."""

    pop: _Popularity
    price: np.ndarray  # (P,) price bucket 1..10
    successors: np.ndarray  # (P, _DIRECTIONS, len(_SUCC_CDF)) successor products
    skus: pa.StringArray  # (P,)
    urls: pa.StringArray  # product pages (P), then other pages
    page_cdf: np.ndarray  # cumulative popularity of the other pages
    queries: pa.Array  # (C * _QUERIES,) query vectors, by category
    results: np.ndarray  # (C * _QUERIES, _RESULTS) products each query shows, best first
    table: pa.Table


def _catalogue(rng: np.random.Generator, n_products: int) -> _Catalogue:
    n_cats = max(20, n_products // 300)
    n_pages = int(np.clip(n_products // 10, 300, 5_000))
    category = np.sort(np.concatenate([  # every category has a product; big ones are few
        np.arange(n_cats), _pick(_zipf_cdf(n_cats, 0.7, 2.0), rng.random(n_products - n_cats))]))
    first = np.searchsorted(category, np.arange(n_cats))
    weight = (rng.permutation(n_products) + 5.0) ** -1.05
    pop = _Popularity(category, np.r_[0.0, np.cumsum(weight)], first,
                      np.append(first[1:], n_products) - 1)
    price = np.clip(np.rint(rng.uniform(2, 9, n_cats)[category] + rng.normal(0, 1.2, n_products)),
                    1, 10)
    shape = (n_products, _DIRECTIONS, len(_SUCC_CDF))
    related = (category[:, None, None] + 1 + rng.integers(0, 3, shape)) % n_cats
    succ_cat = np.where(rng.random(shape) < 0.85, category[:, None, None], related)
    successors = pop.in_category(succ_cat.ravel(), rng.random(succ_cat.size)).reshape(shape)

    centroid = rng.normal(0, 0.2, (n_cats, _DIM))
    description = centroid[category] + rng.normal(0, 0.07, (n_products, _DIM))
    image = rng.normal(0, 120, (n_cats, _DIM))[category] + rng.normal(0, 50, (n_products, _DIM))
    queries = np.repeat(centroid, _QUERIES, axis=0) + rng.normal(0, 0.06, (n_cats * _QUERIES, _DIM))
    skus = _random_hashes(rng, n_products)
    missing = pa.array(rng.random(n_products) < 0.01)  # no content, as for a few real products

    def content(values: pa.Array) -> pa.Array:
        return pc.if_else(missing, pa.scalar(None, values.type), values)

    table = pa.Table.from_arrays([
        skus,
        content(_vectors(description)),
        content(_category_paths(rng, n_cats).take(pa.array(category))),
        content(_vectors(image)),
        content(pa.array(price)),
    ], schema=CATALOGUE.schema)
    urls = pa.concat_arrays([_random_hashes(rng, n_products), _random_hashes(rng, n_pages)])
    return _Catalogue(pop, price, successors, skus, urls, _zipf_cdf(n_pages, 1.1),
                      _vectors(queries), _query_results(rng, pop, weight), table)


def _query_results(rng: np.random.Generator, pop: _Popularity, weight: np.ndarray) -> np.ndarray:
    """Distinct products of its category for each query, drawn by popularity (Gumbel top-k)."""
    results = []
    for lo, hi in zip(pop.first, pop.last + 1):
        keys = np.log(weight[lo:hi]) + rng.gumbel(size=(_QUERIES, hi - lo))
        top = np.argsort(-keys, axis=1)[:, :_RESULTS]
        results.append(lo + top[:, np.arange(_RESULTS) % top.shape[1]])  # small category: repeat
    return np.concatenate(results)


def _category_paths(rng: np.random.Generator, n_cats: int) -> pa.Array:
    """Three-level paths ``level1/level2/level3`` of hashes, one per category."""
    n1 = max(3, n_cats // 20)
    n2 = n1 * max(2, n_cats // (4 * n1))  # a multiple of n1: level 2 determines level 1
    cats = np.arange(n_cats)
    levels = [_random_hashes(rng, n).take(pa.array(cats % n)) for n in (n1, n2, n_cats)]
    return pc.binary_join_element_wise(*levels, "/")


def _session_starts(rng: np.random.Generator, sessions: int, start_ms: int,
                    span_hours: int) -> np.ndarray:
    """Sorted session start times over the span, with a daily cycle (peak at 14:00 UTC)."""
    hour_of_day = (start_ms // _HOUR_MS + np.arange(span_hours)) % 24
    traffic = 1.0 + 0.6 * np.cos(2 * np.pi * (hour_of_day - 14) / 24)
    hours = _pick(np.cumsum(traffic) / traffic.sum(), rng.random(sessions))
    return np.sort(start_ms + hours * _HOUR_MS + rng.integers(0, _HOUR_MS, sessions))


@dataclass(frozen=True)
class _Views:
    """The product views of a chunk's sessions, flattened in session order."""

    n_views: np.ndarray  # (S,) views per session
    first: np.ndarray  # (S,) index of each session's first view
    session: np.ndarray  # (V,) session of each view
    step: np.ndarray  # (V,) position of the view in its session
    product: np.ndarray  # (V,)
    time: np.ndarray  # (V,) epoch ms
    gap: np.ndarray  # (V,) ms to the next view (after the last one: to the session's end)


def _simulate(cat: _Catalogue, streams: _Streams, starts: np.ndarray, start_ms: int,
              end_ms: int) -> tuple[pa.Table, pa.Table]:
    """One chunk of sessions: its browsing and search rows, session by session."""
    ids = streams.hashes()
    u = streams.uniform(8)  # per session, one column per use
    intent = streams.normal()
    views = _views(cat, streams, starts, u, intent)
    parts = zip(_view_events(cat, streams, views), _cart_events(cat, views, u))
    sess, ts, kind, sku, url = (np.concatenate(p) for p in parts)
    order = np.lexsort((kind, ts, sess))
    order = order[ts[order] < end_ms]
    sess, ts, kind, sku, url = sess[order], ts[order], kind[order], sku[order], url[order]
    browsing = pa.Table.from_arrays([
        ids.take(pa.array(sess)),
        pa.array(["event_product", "pageview"]).take(pa.array((kind == _PAGEVIEW).astype(np.int8))),
        pa.array(["detail", "add", "remove", "purchase"]).take(
            pa.array(kind, mask=kind == _PAGEVIEW)),
        cat.skus.take(pa.array(sku, mask=sku < 0)),
        pa.array(ts),
        cat.urls.take(pa.array(url)),
    ], schema=BROWSING.schema)
    return browsing, _searches(cat, streams, views, ids, u, start_ms, end_ms)


def _views(cat: _Catalogue, streams: _Streams, starts: np.ndarray, u: np.ndarray,
           intent: np.ndarray) -> _Views:
    """Markov-like product views: successors (by direction), anchor returns, popular, jumps."""
    n_views = np.clip(np.exp(0.9 + 0.85 * streams.normal() + 0.2 * intent), 1, 50).astype(np.int64)
    first = np.cumsum(n_views) - n_views
    session = np.repeat(np.arange(len(starts)), n_views)
    step = np.arange(len(session)) - first[session]
    uv = streams.uniform(3, n_views)  # per view: move, choice, category of a jump
    direction = (u[:, 0] * _DIRECTIONS).astype(np.int64)
    p_anchor = 0.04 + 0.2 * _sigmoid(1.5 * intent)  # engaged sessions return to their anchor

    pop = cat.pop
    product = np.empty(len(session), np.int64)
    product[first] = pop.in_category(_pick(pop.cat_cdf, uv[first, 2]), uv[first, 1])
    anchor = product[first]
    for t in range(1, int(n_views.max())):
        s = np.flatnonzero(n_views > t)
        i = first[s] + t
        cur, choice = product[i - 1], uv[i, 1]
        move = (uv[i, 0] - p_anchor[s] - _P_BACK) / (1 - p_anchor[s] - _P_BACK)
        cats = np.where(move < _P_SUCC + _P_POP, pop.category[cur], _pick(pop.cat_cdf, uv[i, 2]))
        product[i] = np.select(
            [uv[i, 0] < p_anchor[s], (move < 0) & (t > 1), move < _P_SUCC],
            [anchor[s], product[np.maximum(i - 2, first[s])],
             cat.successors[cur, direction[s], _pick(_SUCC_CDF, choice)]],
            pop.in_category(cats, choice))

    dwell_ms = 25_000 * np.exp(0.35 * intent)  # engaged sessions dwell longer
    gap = np.clip(dwell_ms[session] * np.exp(0.9 * streams.normal(n_views)),
                  1_000, 1_500_000).astype(np.int64)  # never a 30-minute break
    since_first = np.cumsum(gap) - gap
    since_first -= since_first[first][session]
    time = starts[session] + since_first
    return _Views(n_views, first, session, step, product, time, gap)


def _view_events(cat: _Catalogue, streams: _Streams, v: _Views) -> tuple[np.ndarray, ...]:
    """Detail events, the pageviews of their pages, and pageviews of other pages between views.

    Returns the events' session, time, kind, product (-1: none) and url index.
    """
    uv = streams.uniform(2, v.n_views)  # per view: paired pageview, extra pageviews
    paired = np.flatnonzero(uv[:, 0] < 0.75)
    extra = (uv[:, 1] > 0.72).astype(np.int64) + (uv[:, 1] > 0.93) + (uv[:, 1] > 0.985)
    of = np.repeat(np.arange(len(extra)), extra)  # the view each extra pageview follows
    nth = np.arange(len(of)) - (np.cumsum(extra) - extra)[of] + 1
    page = _pick(cat.page_cdf, streams.uniform(1, np.add.reduceat(extra, v.first))[:, 0])
    return (
        np.concatenate([v.session, v.session[paired], v.session[of]]),
        np.concatenate([v.time, v.time[paired], v.time[of] + v.gap[of] * nth // (extra[of] + 1)]),
        np.repeat([_DETAIL, _PAGEVIEW, _PAGEVIEW], [len(v.time), len(paired), len(of)]),
        np.concatenate([v.product, np.full(len(paired) + len(of), -1)]),
        np.concatenate([v.product, v.product[paired], len(cat.skus) + page]),
    )


def _cart_events(cat: _Catalogue, v: _Views, u: np.ndarray) -> tuple[np.ndarray, ...]:
    """An add of the anchor after its last view, then maybe a remove, or a purchase at the end.

    Returns the events' session, time, kind, product and url index.
    """
    anchor = v.product[v.first]
    is_anchor = v.product == anchor[v.session]
    repeats = np.minimum(np.add.reduceat(is_anchor, v.first) - 1, 3)
    dwell = np.add.reduceat(np.log(v.gap / 25_000), v.first) / v.n_views
    price = cat.price[anchor] - 5.5
    add_logit = -3.2 + repeats + 0.6 * dwell + 0.3 * np.minimum(v.n_views - 1, 6) - 0.2 * price
    add = u[:, 1] < _sigmoid(add_logit)
    add_step = np.maximum.reduceat(np.where(is_anchor, v.step, 0), v.first)
    after = v.n_views - 1 - add_step
    browsed_after = np.add.reduceat(~is_anchor & (v.step > add_step[v.session]), v.first)
    remove = add & (after > 0) & (u[:, 2] < _sigmoid(-2.2 + 0.3 * after))
    buy_logit = (-0.7 + 0.5 * repeats - 0.4 * np.minimum(browsed_after, 6) - 0.25 * price
                 + 0.5 * dwell)
    purchase = add & ~remove & (u[:, 3] < _sigmoid(buy_logit))

    at_add = v.first + add_step
    at_remove = at_add + 1 + (u[:, 4] * after).astype(np.int64)
    at_end = v.first + v.n_views - 1
    s_add, s_rem, s_buy = np.flatnonzero(add), np.flatnonzero(remove), np.flatnonzero(purchase)
    n_products = len(cat.skus)
    return (
        np.concatenate([s_add, s_rem, s_buy]),
        np.concatenate([
            v.time[at_add[s_add]] + 1 + (v.gap[at_add[s_add]] * u[s_add, 5] / 2).astype(np.int64),
            v.time[at_remove[s_rem]] + 1
            + (v.gap[at_remove[s_rem]] * u[s_rem, 5] / 2).astype(np.int64),
            v.time[at_end[s_buy]] + v.gap[at_end[s_buy]],
        ]),
        np.repeat([_ADD, _REMOVE, _PURCHASE], [len(s_add), len(s_rem), len(s_buy)]),
        np.concatenate([anchor[s_add], anchor[s_rem], anchor[s_buy]]),
        np.concatenate([anchor[s_add], np.full(len(s_rem), n_products + _CART),
                        np.full(len(s_buy), n_products + _CHECKOUT)]),
    )


def _searches(cat: _Catalogue, streams: _Streams, v: _Views, ids: pa.StringArray,
              u: np.ndarray, start_ms: int, end_ms: int) -> pa.Table:
    """1-3 searches in ~15% of sessions, each just before a view of a product it shows."""
    n_search = np.where(u[:, 6] < 0.15, 1 + (u[:, 7] > 0.6) + (u[:, 7] > 0.9), 0)
    us = streams.uniform(6, n_search)  # per search: view, time, query, shown, slot, click
    sess = np.repeat(np.arange(len(n_search)), n_search)
    view = v.first[sess] + (us[:, 0] ** 2 * v.n_views[sess]).astype(np.int64)  # early views
    window = np.where(v.step[view] > 0, v.time[view] - v.time[view - 1],  # first view: just before
                      np.minimum(8_000, v.time[view] - start_ms))
    ts = v.time[view] - np.ceil(us[:, 1] * 0.9 * window).astype(np.int64)
    order = np.lexsort((ts, sess))
    sess, view, ts, us = sess[order], view[order], ts[order], us[order]

    product = v.product[view]
    query = cat.pop.category[product] * _QUERIES + _pick(_zipf_cdf(_QUERIES, 1.0), us[:, 2])
    n_shown = np.where(us[:, 3] < 0.7, 1 + (us[:, 3] / 0.7 * _RESULTS).astype(np.int64), 0)
    results = cat.results[query]
    listed = np.arange(_RESULTS) < n_shown[:, None]
    insert = np.flatnonzero((n_shown > 0) & ~((results == product[:, None]) & listed).any(axis=1))
    results[insert, (us[insert, 4] * n_shown[insert]).astype(np.int64)] = product[insert]
    clicked = (n_shown > 0) & (us[:, 5] < 0.5)  # the viewed product is among those shown
    table = pa.Table.from_arrays([
        ids.take(pa.array(sess)),
        cat.queries.take(pa.array(query)),
        _sku_lists(cat.skus, product[clicked], clicked.astype(np.int64)),
        _sku_lists(cat.skus, results[listed], n_shown),
        pa.array(ts),
    ], schema=SEARCH.schema)
    return table.filter(pa.array(ts < end_ms))


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
