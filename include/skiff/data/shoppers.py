"""The model of shoppers the generator and the emitter both simulate: catalogue, sessions, traffic.

:func:`build_catalogue` draws the products (``sku_to_content``) and their hidden structure;
:func:`simulate` turns session start times into their browsing and search events;
:func:`span_starts` (a fixed number of sessions over a span, :mod:`~skiff.data.generator`)
and :func:`hour_starts` (a Poisson number of sessions in one hour,
:mod:`~skiff.data.emitter`) place sessions on the same daily traffic curve,
:func:`traffic`.

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
- **Traffic**: sessions start on a daily cycle peaking at 14:00 UTC (1.6x the day's mean)
  with its trough at 02:00 (0.4x).

**Drift** (:data:`DRIFTS`; ``skiff emit --drift``): from a given time, the shoppers change
behaviour, for the monitoring's drift checks to see. ``short``: the shopper leaves at the
view after the first quarter of the session's views (most view one or two products; fewer
carts, as the add comes at the anchor's last view); ``tail``: shoppers favour what others
ignore (each product viewed is swapped for the one of opposite popularity rank: the most
popular for the least, and so on; the successions, carts and searches follow the swapped
products). The same draws are used either way, so a drifted session is the same session
changed, and every hour stays a pure function of the seed.

Randomness is keyed, never sequential: every draw comes from a numpy stream named by
``(seed, *key)`` (:func:`stream`), the keys below telling apart what each stream is for, so
any part (a block of sessions, an hour of the emitter) can be drawn alone.

(Over 400 lines: the catalogue and the session simulation are one model, whose parts share
the catalogue's hidden structure; split, each half would import the other's privates.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skiff.data.contract import BROWSING, CATALOGUE, SEARCH

__all__ = [
    "BLOCK", "DRIFTS",
    "HOUR_MS", "KEY_CATALOGUE", "KEY_DELIVERY", "KEY_HOUR_SESSIONS", "KEY_HOUR_STARTS",
    "KEY_SPAN_SESSIONS", "KEY_SPAN_STARTS", "PEAK_TRAFFIC", "Catalogue", "Streams",
    "build_catalogue", "hour_starts", "simulate", "span_starts", "stream", "traffic",
]

BLOCK = 1_000  # sessions per random stream
HOUR_MS = 3_600_000
# Stream keys (first element of ``key`` in :func:`stream`); never reuse one for another purpose.
KEY_CATALOGUE = 0  # the products: (seed, 0)
KEY_SPAN_STARTS = 1  # the generator's session start times: (seed, 1)
KEY_SPAN_SESSIONS = 2  # the generator's sessions: (seed, 2, block)
KEY_HOUR_STARTS = 3  # the emitter's sessions of one hour, how many and when: (seed, 3, hour)
KEY_HOUR_SESSIONS = 4  # the emitter's sessions of one hour: (seed, 4, hour, block)
KEY_DELIVERY = 5  # the emitter's delivery of one hour's events: (seed, 5, hour)
_DIM = 50  # length of description, image and query vectors
_DIRECTIONS = 2  # latent session directions, each with its own successor lists
_SUCC_CDF = np.cumsum([0.4, 0.25, 0.15, 0.12, 0.08])  # weights of a product's successors
_P_BACK = 0.1  # next view: back to the product before the last one
_P_SUCC, _P_POP = 0.62, 0.28  # other moves: successor, popular in category; else a jump
_QUERIES = 6  # queries per category
_RESULTS = 20  # products a query can show
_CART, _CHECKOUT = 0, 1  # non-product pages of removes and purchases
_DETAIL, _ADD, _REMOVE, _PURCHASE, _PAGEVIEW = range(5)  # event kinds, in same-ms order
_HEX = np.array([f"{i:02x}".encode() for i in range(256)]).view(np.uint16)
#: Highest value of :func:`traffic` (at 14:00 UTC).
PEAK_TRAFFIC = 1.6
#: The shoppers' behaviour changes :func:`simulate` can plant (module docstring, **Drift**).
DRIFTS = ("short", "tail")


def stream(seed: int, *key: int) -> np.random.Generator:
    """The random stream named ``(seed, *key)``; the same name always gives the same draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _zipf_cdf(n: int, exponent: float, offset: float = 1.0) -> np.ndarray:
    weights = (np.arange(n) + offset) ** -exponent
    return np.cumsum(weights) / weights.sum()


def _pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: indices into ``cdf`` for uniforms ``u``."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


class Streams:
    """Random draws for consecutive whole blocks of sessions, one stream per block.

    Every draw is per session: ``counts[i]`` rows (one if ``counts`` is omitted) for
    session ``i``, in session order. A block's stream sees the same calls whatever chunk
    it is simulated in, so the values do not depend on the chunk size.

    :param seed: the random seed.
    :param key: names the blocks' streams: block ``b`` draws from ``(seed, *key, b)``.
    :param first_block: number of the first block.
    :param n_sessions: sessions drawn for (at least one).
    """

    def __init__(self, seed: int, key: tuple[int, ...], first_block: int,
                 n_sessions: int) -> None:
        self._bounds = np.arange(0, n_sessions, BLOCK)
        self._sizes = np.diff(np.append(self._bounds, n_sessions))
        self._rngs = [stream(seed, *key, first_block + b) for b in range(len(self._bounds))]

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
class Catalogue:
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


def build_catalogue(rng: np.random.Generator, n_products: int) -> Catalogue:
    """Products, their hidden structure and their ``sku_to_content`` rows.

    :param rng: the stream ``(seed, KEY_CATALOGUE)``.
    :param n_products: catalogue size.
    """
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
    return Catalogue(pop, price, successors, skus, urls, _zipf_cdf(n_pages, 1.1),
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


def traffic(hour_of_day: np.ndarray | int) -> np.ndarray:
    """Relative session starts by UTC hour of day: mean 1.0, peak 1.6 at 14:00, 0.4 at 02:00.

    :param hour_of_day: UTC hours, 0-23.
    :return: the relative rate of each hour.
    """
    return 1.0 + 0.6 * np.cos(2 * np.pi * (np.asarray(hour_of_day) - 14) / 24)


def span_starts(rng: np.random.Generator, sessions: int, start_ms: int,
                span_hours: int) -> np.ndarray:
    """``sessions`` sorted start times over the span, on the daily :func:`traffic` curve.

    :param rng: the stream ``(seed, KEY_SPAN_STARTS)``.
    :param sessions: how many sessions.
    :param start_ms: start of the span, epoch ms (a whole hour).
    :param span_hours: hours of the span.
    :return: epoch ms, sorted.
    """
    rate = traffic((start_ms // HOUR_MS + np.arange(span_hours)) % 24)
    hours = _pick(np.cumsum(rate) / rate.sum(), rng.random(sessions))
    return np.sort(start_ms + hours * HOUR_MS + rng.integers(0, HOUR_MS, sessions))


def hour_starts(rng: np.random.Generator, peak_sessions: float, hour: int) -> np.ndarray:
    """Sorted start times of the sessions of one hour: a Poisson number, uniform in the hour.

    :param rng: the stream ``(seed, KEY_HOUR_STARTS, hour)``.
    :param peak_sessions: mean sessions of an hour at the daily peak (14:00 UTC).
    :param hour: hours since the epoch (``epoch_ms // HOUR_MS``).
    :return: epoch ms, sorted, all in ``[hour * HOUR_MS, (hour + 1) * HOUR_MS)``.
    """
    n = rng.poisson(peak_sessions * float(traffic(hour % 24)) / PEAK_TRAFFIC)
    return np.sort(hour * HOUR_MS + rng.integers(0, HOUR_MS, n))


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


def simulate(cat: Catalogue, streams: Streams, starts: np.ndarray, start_ms: int,
              end_ms: int, *, drift: str | None = None,
              drift_from_ms: int = 0) -> tuple[pa.Table, pa.Table]:
    """Browsing and search rows of sessions starting at ``starts``, session by session.

    :param cat: the catalogue.
    :param streams: the sessions' random streams.
    :param starts: start time of each session, epoch ms, sorted.
    :param start_ms: no search is placed before this time (the span's start).
    :param end_ms: events at or after this time are cut (sessions still running then).
    :param drift: one of :data:`DRIFTS`: the behaviour change of the sessions starting at or
        after ``drift_from_ms``; None: none.
    :param drift_from_ms: epoch ms from which sessions drift.
    :return: the ``browsing_train`` and ``search_train`` rows, each session's contiguous.
    :raises ValueError: ``drift`` is not one of :data:`DRIFTS`.
    """
    if drift is not None and drift not in DRIFTS:
        raise ValueError(f"drift={drift!r} is not one of {', '.join(DRIFTS)}.")
    drifted = (starts >= drift_from_ms) if drift else np.zeros(len(starts), bool)
    ids = streams.hashes()
    u = streams.uniform(8)  # per session, one column per use
    intent = streams.normal()
    views = _views(cat, streams, starts, u, intent, drift, drifted)
    parts = zip(_view_events(cat, streams, views), _cart_events(cat, views, u))
    sess, ts, kind, sku, url = (np.concatenate(p) for p in parts)
    cut = np.full(len(starts), end_ms, np.int64)  # per session: its events end before
    if drift == "short":  # the shopper leaves at the view after a quarter of them
        keep = np.maximum(1, views.n_views // 4)
        leaves = drifted & (keep < views.n_views)
        cut[leaves] = np.minimum(end_ms, views.time[views.first[leaves] + keep[leaves]])
    order = np.lexsort((kind, ts, sess))
    order = order[ts[order] < cut[sess[order]]]
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
    return browsing, _searches(cat, streams, views, ids, u, start_ms, cut)


def _views(cat: Catalogue, streams: Streams, starts: np.ndarray, u: np.ndarray,
           intent: np.ndarray, drift: str | None, drifted: np.ndarray) -> _Views:
    """Markov-like product views: successors (by direction), anchor returns, popular, jumps.

    ``drifted`` sessions are changed by ``drift`` (module docstring, **Drift**).
    """
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
    if drift == "tail":
        swapped = _opposite_popularity(pop)[product]
        product = np.where(drifted[session], swapped, product)

    dwell_ms = 25_000 * np.exp(0.35 * intent)  # engaged sessions dwell longer
    gap = np.clip(dwell_ms[session] * np.exp(0.9 * streams.normal(n_views)),
                  1_000, 1_500_000).astype(np.int64)  # never a 30-minute break
    since_first = np.cumsum(gap) - gap
    since_first -= since_first[first][session]
    time = starts[session] + since_first
    return _Views(n_views, first, session, step, product, time, gap)


def _opposite_popularity(pop: _Popularity) -> np.ndarray:
    """For each product, the product of opposite popularity rank (the most popular's is the
    least popular)."""
    order = np.argsort(-np.diff(pop.edges), kind="stable")  # most popular first
    opposite = np.empty_like(order)
    opposite[order] = order[::-1]
    return opposite


def _view_events(cat: Catalogue, streams: Streams, v: _Views) -> tuple[np.ndarray, ...]:
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


def _cart_events(cat: Catalogue, v: _Views, u: np.ndarray) -> tuple[np.ndarray, ...]:
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


def _searches(cat: Catalogue, streams: Streams, v: _Views, ids: pa.StringArray,
              u: np.ndarray, start_ms: int, cut: np.ndarray) -> pa.Table:
    """1-3 searches in ~15% of sessions, each just before a view of a product it shows;
    those at or after their session's ``cut`` (epoch ms) are dropped."""
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
    return table.filter(pa.array(ts < cut[sess]))

