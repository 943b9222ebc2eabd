"""Ceiling analysis: the best figures the synthetic shoppers allow, from their own latent variables.

The generator (:mod:`skiff.data.shoppers`) decides what a shopper views next and whether a
cart is bought. This script redraws the latent variables of the model benchmark's sessions
(same ``--sessions``, ``--seed`` and span as ``bench/bench_models.py``: the draws are keyed,
so they are the very sessions in the warehouse) and scores *oracles* on the benchmark's own
held-out examples, next to the baselines, with the same bootstrap intervals over sessions
(:mod:`skiff.train.confidence`):

- **next item, clairvoyant**: every product ranked by its true probability of being viewed
  next given the session's latent direction and intent and its uncollapsed history (the
  step back and the anchor return). No model can do better in expectation.
- **next item, direction inferred**: the same with the direction (the latent that picks a
  product's successor list) replaced by its posterior from the session's own transitions:
  closer to what a model that sees the items can reach (it still knows the intent).
- **intent, clairvoyant**: the true purchase probability of the cart, future included
  (the products browsed after the add, the remove, the later dwell times).
- **intent, logistic with the session features**: the baseline given
  :data:`skiff.train.features.SESSION_FEATURES` (what ``bench_models --intent-features``
  gives both the model and the baseline), from the marts' columns.
- **intent, at the add**: logistic regression on the token counts the baseline sees plus
  every generator variable known when the add happens (repeat views of the added product,
  its price, the dwell so far, the views so far): the buy logit is linear in these and in
  the future browsing, so this is about the best any model at the add can do.

It reads the generator's private parts (``skiff.data.shoppers._views`` and its constants):
a change to how :func:`skiff.data.shoppers.simulate` draws must be mirrored here
(``tests/unit/test_bench_ceiling.py`` checks the redrawn sessions are the written ones).

Run: ``python -m bench.bench_ceiling --duckdb WAREHOUSE`` (a warehouse ``bench_models``
built with the same ``--sessions`` and ``--seed``), or without ``--duckdb`` to build one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from skiff.data import shoppers as S  # noqa: E402
from skiff.train import baselines, confidence, datasets, features, intent, metrics  # noqa: E402
from skiff.train import next_item  # noqa: E402
from skiff.times import to_epoch_ms  # noqa: E402

K = next_item.K
END = datetime(2024, 6, 1)  # bench_models' span end
SPAN_HOURS = 72
CHUNK = 250_000  # the generator's default chunk: the draws do not depend on it


def latents(sessions: int, seed: int) -> dict[str, Any]:
    """The generator's hidden state of every session, drawn as :func:`simulate` draws it."""
    n_products = int(np.clip(sessions // 4, 500, 60_000))
    cat = S.build_catalogue(S.stream(seed, S.KEY_CATALOGUE), n_products)
    end_ms = to_epoch_ms(END)
    start_ms = end_ms - SPAN_HOURS * S.HOUR_MS
    starts = S.span_starts(S.stream(seed, S.KEY_SPAN_STARTS), sessions, start_ms, SPAN_HOURS)
    parts: list[dict[str, Any]] = []
    for lo in range(0, sessions, CHUNK):
        hi = min(lo + CHUNK, sessions)
        streams = S.Streams(seed, (S.KEY_SPAN_SESSIONS,), lo // S.BLOCK, hi - lo)
        ids = streams.hashes()
        u = streams.uniform(8)
        latent_intent = streams.normal()
        views = S._views(cat, streams, starts[lo:hi], u, latent_intent, None,
                         np.zeros(hi - lo, bool))  # the generator's, undrifted
        parts.append({"ids": ids.to_pylist(), "u": u, "intent": latent_intent, "views": views})
    return {"cat": cat, "parts": parts, "end_ms": end_ms}


# --------------------------------------------------------------------------- next item

def _step_probabilities(cat: S.Catalogue, product: np.ndarray, first: int, i: int,
                        direction: int, p_anchor: float) -> dict[int, float]:
    """The sparse part of P(view i = x): anchor, step back, successors (popularity apart)."""
    t = i - first
    rest = 1.0 - p_anchor - S._P_BACK
    out: dict[int, float] = {}
    out[int(product[first])] = p_anchor
    if t > 1:
        prev2 = int(product[i - 2])
        out[prev2] = out.get(prev2, 0.0) + S._P_BACK
    succ_mass = rest * S._P_SUCC + (S._P_BACK if t == 1 else 0.0)
    probs = np.diff(np.r_[0.0, S._SUCC_CDF])
    for slot, x in enumerate(cat.successors[product[i - 1], direction]):
        out[int(x)] = out.get(int(x), 0.0) + succ_mass * probs[slot]
    return out


def _dense(cat: S.Catalogue, w: np.ndarray, cat_w: np.ndarray, cur: int, p_anchor: float
           ) -> np.ndarray:
    """The popularity part of P(view = x): popular in the current category, or a jump."""
    rest = 1.0 - p_anchor - S._P_BACK
    c = cat.pop.category[cur]
    dense = rest * (1 - S._P_SUCC - S._P_POP) * w / w.sum()
    lo, hi = cat.pop.first[c], cat.pop.last[c] + 1
    dense[lo:hi] += rest * S._P_POP * w[lo:hi] / cat_w[c]
    return dense


def next_item_oracles(lat: dict[str, Any], marts: datasets.Marts, cutoff: np.datetime64
                      ) -> dict[str, Any]:
    """Reciprocal ranks of the oracles and the baselines on the benchmark's held-out examples."""
    cat = lat["cat"]
    w = np.diff(cat.pop.edges)
    cat_w = np.add.reduceat(w, cat.pop.first)
    sku_index = {s: i for i, s in enumerate(cat.skus.to_pylist())}
    where: dict[str, tuple[int, int]] = {}
    for p, part in enumerate(lat["parts"]):
        where.update({sid: (p, s) for s, sid in enumerate(part["ids"])})

    data = next_item.prepare(marts.sequences, cutoff, window=10)
    split = datasets.split_by_time(marts.sequences["session_start_at"], cutoff)
    ex = data.eval_examples
    held_ids = marts.sequences["session_id"].take(split.held_out[ex.session]).to_pylist()
    held_seq = marts.sequences["sku_sequence"].take(split.held_out[ex.session]).to_pylist()
    rr_clair, rr_post, mismatched = np.zeros(len(ex)), np.zeros(len(ex)), 0
    for n, (sid, seq) in enumerate(zip(held_ids, held_seq)):
        p, s = where[sid]
        part = lat["parts"][p]
        v = part["views"]
        first, n_views = int(v.first[s]), int(v.n_views[s])
        idx = np.arange(first, first + n_views)
        idx = idx[v.time[idx] < lat["end_ms"]]
        product = v.product
        collapsed = [int(product[i]) for k, i in enumerate(idx)
                     if k == 0 or product[i] != product[idx[k - 1]]]
        if collapsed != [sku_index[x] for x in seq]:
            mismatched += 1
            continue
        # the view that made the last collapsed item: the start of the last run
        j = len(idx) - 1
        while j > 0 and product[idx[j]] == product[idx[j - 1]]:
            j -= 1
        i, target = int(idx[j]), int(product[idx[j]])
        if ex.target[n] == features.OOV or j == 0:
            continue  # an unknown SKU is a miss for every model (as in the benchmark)
        p_anchor = float(0.04 + 0.2 * S._sigmoid(1.5 * part["intent"][s]))
        direction = int(part["u"][s, 0] * S._DIRECTIONS)
        dense = _dense(cat, w, cat_w, int(product[i - 1]), p_anchor)
        by_dir = []
        for d in range(S._DIRECTIONS):
            dist = dense.copy()
            for x, q in _step_probabilities(cat, product, first, i, d, p_anchor).items():
                dist[x] += q
            by_dir.append(dist)
        # posterior of the direction from the session's transitions before view i
        loglik = np.zeros(S._DIRECTIONS)
        for h in range(first + 1, i):
            d_h = _dense(cat, w, cat_w, int(product[h - 1]), p_anchor)[product[h]]
            for d in range(S._DIRECTIONS):
                sparse = _step_probabilities(cat, product, first, h, d, p_anchor)
                loglik[d] += math.log(d_h + sparse.get(int(product[h]), 0.0))
        post = np.exp(loglik - loglik.max())
        post /= post.sum()
        mixed = sum(q * dist for q, dist in zip(post, by_dir))
        for dist, rr in ((by_dir[direction], rr_clair), (mixed, rr_post)):
            dist = dist.copy()
            dist[int(product[i - 1])] = -1.0  # the mart collapses repeats: never the last item
            rank = 1 + int((dist > dist[target]).sum())
            rr[n] = 1.0 / rank if rank <= K else 0.0
    tops = next_item.baseline_top_k(data, K)
    rr_co = confidence.reciprocal_ranks(tops["co-occurrence"], ex.target, K)
    return {"examples": len(ex), "mismatched": mismatched, "rr": {
        "co-occurrence": rr_co, "oracle (clairvoyant)": rr_clair,
        "oracle (direction inferred)": rr_post}}


# --------------------------------------------------------------------------- intent

def _cart_state(lat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per session id: the true purchase probability and what is known of it at the add."""
    cat, out = lat["cat"], {}
    for part in lat["parts"]:
        v = part["views"]
        anchor = v.product[v.first]
        is_anchor = v.product == anchor[v.session]
        repeats = np.minimum(np.add.reduceat(is_anchor, v.first) - 1, 3)
        log_gap = np.log(v.gap / 25_000)
        dwell = np.add.reduceat(log_gap, v.first) / v.n_views
        price = cat.price[anchor] - 5.5
        add_step = np.maximum.reduceat(np.where(is_anchor, v.step, 0), v.first)
        after = v.n_views - 1 - add_step
        browsed_after = np.add.reduceat(~is_anchor & (v.step > add_step[v.session]), v.first)
        p_remove = np.where(after > 0, S._sigmoid(-2.2 + 0.3 * after), 0.0)
        buy_logit = (-0.7 + 0.5 * repeats - 0.4 * np.minimum(browsed_after, 6) - 0.25 * price
                     + 0.5 * dwell)
        before = v.step < add_step[v.session]  # gaps fully known at the add
        n_before = np.add.reduceat(before, v.first)
        dwell_before = np.add.reduceat(np.where(before, log_gap, 0.0), v.first) \
            / np.maximum(n_before, 1)
        true_p = (1 - p_remove) * S._sigmoid(buy_logit)
        known = np.c_[repeats, price, add_step, dwell_before, n_before == 0]
        for s, sid in enumerate(part["ids"]):
            out[sid] = {"true_p": true_p[s], "known": known[s]}
    return out


def intent_oracles(lat: dict[str, Any], marts: datasets.Marts, cutoff: np.datetime64
                   ) -> dict[str, Any]:
    """Scores at the add (and pooled) of the logistic baseline and the two oracles."""
    data = intent.prepare(marts, cutoff)
    table = datasets.intent_table(marts)
    split = datasets.split_by_time(table["session_start_at"], cutoff)
    state = _cart_state(lat)

    def rows(which: str, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ex = getattr(data, which)
        ids = table["session_id"].take(part[ex.session]).to_pylist()
        return (np.array([state[i]["true_p"] for i in ids]),
                np.array([state[i]["known"] for i in ids], np.float64))

    (_, known_tr), (true_held, known_held) = rows("train", split.train), \
        rows("held", split.held_out)
    base = intent.baseline_scores(data)["logistic (counts)"][1]
    x_tr = np.c_[np.log1p(data.counts("train")), known_tr]
    x_he = np.c_[np.log1p(data.counts("held")), known_held]
    at_add = baselines.LogisticRegression(log1p=False).fit(x_tr, data.train.labels) \
        .predict_proba(x_he)
    with_features = intent.prepare(marts, cutoff, session_features=True)
    fair = intent.baseline_scores(with_features)["logistic (counts)"][1]
    return {"held": data.held, "p": {"logistic (counts)": base,
                                     "logistic (counts + session features)": fair,
                                     "oracle (clairvoyant)": true_held,
                                     "oracle at the add (generator's known variables)": at_add}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--duckdb", type=Path, help="the warehouse bench_models built (same args)")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    from bench.bench_models import build_warehouse
    from skiff.data import DuckDBWarehouse

    print(f"load before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="skiff-ceiling-") as tmp:
        db = args.duckdb or build_warehouse(Path(tmp), args.sessions, args.seed, END)
        marts = datasets.read_marts(DuckDBWarehouse(db))
    cutoff = datasets.time_cutoff(marts.sessions["session_start_at"], args.holdout)
    lat = latents(args.sessions, args.seed)
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                           "load_1m": os.getloadavg()[0]}

    rec = next_item_oracles(lat, marts, cutoff)
    print(f"next item: {rec['examples']} held-out examples, {rec['mismatched']} not matched")
    rr = rec["rr"]
    out["next_item"] = {}
    for name, values in rr.items():
        ci = confidence.mrr_ratio(values, rr["co-occurrence"], rounds=args.rounds, seed=args.seed)
        out["next_item"][name] = {f"mrr@{K}": float(values.mean()), "ratio vs co-occurrence":
                                  ci.as_dict()}
        print(f"  {name:<30} MRR@{K} {values.mean():.4f}  x co-occurrence {ci}")

    it = intent_oracles(lat, marts, cutoff)
    held, at = it["held"], it["held"].after_add == 0
    out["intent"] = {}
    for name, p_held in it["p"].items():
        auc_add = metrics.roc_auc(held.labels[at], p_held[at])
        row: dict[str, Any] = {"roc_auc@add": auc_add}
        for base in ("logistic (counts)", "logistic (counts + session features)"):
            ci = confidence.auc_difference(held.labels[at], p_held[at], it["p"][base][at],
                                           held.session[at], rounds=args.rounds, seed=args.seed)
            row[f"difference vs {base}"] = ci.as_dict()
            print(f"  {name:<48} ROC-AUC at the add {auc_add:.4f}  - {base}: {ci}")
        out["intent"][name] = row
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
