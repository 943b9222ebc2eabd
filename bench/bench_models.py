"""Benchmark: both Keras models against their baselines on generated data, held out by time.

What it does (the steps IntentFlow and RecFlow will run, without Metaflow):

1. generate ``--sessions`` sessions (``skiff.generate``), load them into a fresh DuckDB
   file and ``dbt build`` the marts (or read an existing warehouse with ``--duckdb``);
2. split by ``session_start_at``: the latest ``--holdout`` share of sessions is held out;
3. next item: fit most-popular and co-occurrence, train the Keras model, score the last
   item of every held-out session (MRR@20, HitRate@20, coverage@20, slices);
4. intent: prefixes at the first add and 2/4/6/8/10 events after it; fit majority class and
   logistic regression on counts, train the Keras model (tokens only, and with session
   features), score ROC-AUC (pooled and per offset), F1/precision/recall at the threshold
   chosen on training data, and the Coveo weighted micro-F1;
5. print the figures side by side (and write them as JSON with ``--out``).

Run: ``.venv/bin/python bench/bench_models.py --sessions 20000`` (exit 1 if a model loses),
or ``make bench`` / ``python -m bench --only models`` for the headline figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from skiff import baselines, datasets, features, metrics  # noqa: E402

K = 20
REC_MODEL = "keras gru+copy"
INTENT_MODEL = "keras gru (tokens)"


def build_warehouse(workdir: Path, sessions: int, seed: int, end: datetime) -> Path:
    """Generate, load and ``dbt build``; return the DuckDB file."""
    from skiff.generate import generate
    from skiff.load import load_dir
    from skiff.warehouse import DuckDBWarehouse

    db = workdir / "warehouse.duckdb"
    summary = generate(workdir / "raw", sessions=sessions, seed=seed, end=end)
    warehouse = DuckDBWarehouse(db)
    warehouse.ensure_raw_tables()
    load_dir(workdir / "raw", warehouse)
    print(f"generated {summary.rows} in {summary.seconds:.1f} s; running dbt build ...",
          flush=True)
    dbt_dir = REPO / "include" / "dbt"
    env = {**os.environ, "SKIFF_DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).with_name("dbt")
    done = subprocess.run(
        [str(dbt), "build", "--profiles-dir", ".", "--project-dir", ".",
         "--target-path", str(workdir / "dbt-target"), "--log-path", str(workdir / "dbt-logs")],
        cwd=dbt_dir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dbt build failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return db


def bench_next_item(marts: datasets.Marts, cutoff: np.datetime64, args: argparse.Namespace
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    from skiff import models

    seqs = marts.sequences
    split = datasets.split_by_time(seqs["session_start_at"], cutoff)
    vocab = features.build_vocabulary(seqs["sku_sequence"].take(split.train),
                                      min_count=args.min_count)
    ids = vocab.encode_many(seqs["sku_sequence"])
    train, held = ids.take(split.train), ids.take(split.held_out)
    train_ex = features.next_item_examples(train, window=args.window, drop_oov_targets=True)
    eval_ex = features.next_item_examples(held, window=args.window, positions="last")
    counts = features.item_counts(train, len(vocab))
    info = {"items": len(vocab), "train_sessions": len(train), "train_examples": len(train_ex),
            "eval_examples": len(eval_ex), "oov_targets": float((eval_ex.target == 1).mean())}

    results: dict[str, dict[str, Any]] = {}

    def score(name: str, top: np.ndarray, fit_s: float) -> None:
        row = metrics.next_item_report(top, eval_ex.target, len(vocab), K)
        slices = metrics.next_item_slices(top, eval_ex.target, eval_ex.length, counts, k=K)
        for s in ("short", "long", "popular", "long_tail"):
            row[f"mrr@{K} {s}"] = slices[s][f"mrr@{K}"]
        row["fit_s"] = fit_s
        results[name] = row

    t = time.perf_counter()
    pop = baselines.MostPopular(len(vocab)).fit(train)
    score("most popular", pop.recommend(eval_ex, K), time.perf_counter() - t)
    t = time.perf_counter()
    co = baselines.CoOccurrence(len(vocab)).fit(train)
    score("co-occurrence", co.recommend(eval_ex, K), time.perf_counter() - t)

    prior = np.log(counts + 1.0)
    prior -= prior.mean()
    model = models.build_next_item_model(len(vocab), max_position=args.window,
                                         item_log_prior=prior)
    fitted = models.train_next_item(model, train_ex.inputs(), train_ex.target,
                                    epochs=args.rec_epochs, seed=args.seed)
    t = time.perf_counter()
    top, _ = models.predict_next_item(model, eval_ex.inputs(), K)
    info["keras_predict_s"] = time.perf_counter() - t
    score(REC_MODEL, top, fitted.seconds)
    info["keras_params"] = fitted.params
    # ablation: the same net without the copy scores (what the copy head adds)
    if args.ablations:
        plain = models.build_next_item_model(len(vocab), copy=False, item_log_prior=prior)
        fitted = models.train_next_item(plain, train_ex.inputs(), train_ex.target,
                                        epochs=args.rec_epochs, seed=args.seed)
        score("keras gru (no copy)", models.predict_next_item(plain, eval_ex.inputs(), K)[0],
              fitted.seconds)
    return results, info


def bench_intent(marts: datasets.Marts, cutoff: np.datetime64, args: argparse.Namespace
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    from skiff import models

    table = datasets.intent_table(marts)
    vocab = features.event_vocabulary()
    tokens = vocab.encode_many(table["event_tokens"])
    split = datasets.split_by_time(table["session_start_at"], cutoff)
    labels = table["has_purchase"].to_numpy(zero_copy_only=False).astype(np.int8)
    add_index = table["first_add_event_index"].to_numpy(zero_copy_only=False)
    at_add, rows = features.prefix_at_add(tokens, add_index)
    details = np.zeros(len(tokens))
    details[rows] = features.count_features(at_add, len(vocab))[:, vocab.index("detail") - 1]
    session_feats = features.intent_session_features(
        table["seconds_to_first_add"].to_numpy(zero_copy_only=False), details,
        datasets.first_item_price(table["sku_sequence"], marts.products))
    stop = vocab.index("purchase")

    def examples(rows: np.ndarray) -> tuple[features.IntentExamples, np.ndarray]:
        ex = features.intent_examples(tokens.take(rows), add_index[rows], labels[rows],
                                      after_add=features.COVEO_AFTER_ADD, stop_id=stop)
        return ex, session_feats[rows][ex.session]

    train, f_train = examples(split.train)
    held, f_held = examples(split.held_out)
    info = {"train_sessions": len(split.train), "held_out_sessions": len(split.held_out),
            "train_examples": len(train), "eval_examples": len(held),
            "purchase_rate_at_add": float(held.labels[held.after_add == 0].mean())}
    results: dict[str, dict[str, Any]] = {}

    def score(name: str, p_train: np.ndarray, p_held: np.ndarray, fit_s: float,
              threshold: float | None = None) -> None:
        thr = metrics.best_f1_threshold(train.labels, p_train) if threshold is None else threshold
        at = held.after_add == 0
        s = metrics.binary_scores(held.labels, p_held, thr)
        row: dict[str, Any] = {
            "roc_auc": _auc(held.labels, p_held),
            "roc_auc@add": _auc(held.labels[at], p_held[at]),
            "f1": s.f1, "precision": s.precision, "recall": s.recall, "threshold": thr,
            # the Coveo score is accuracy-based: use the accuracy-optimal 0.5 for probabilities
            "weighted_micro_f1@0.5": metrics.weighted_micro_f1(
                held.labels, p_held >= 0.5, held.after_add),
        }
        per_offset = []
        for k in features.COVEO_AFTER_ADD[1:]:
            rows = held.after_add == k
            row[f"roc_auc@add+{k}"] = _auc(held.labels[rows], p_held[rows])
            per_offset.append(row[f"roc_auc@add+{k}"])
        # mean of the per-offset AUCs: no credit for knowing how far past the add a prefix is
        row["roc_auc mean over offsets"] = float(np.nanmean([row["roc_auc@add"], *per_offset]))
        row["fit_s"] = fit_s
        results[name] = row

    counts_train = features.count_features(train.prefixes, len(vocab))
    counts_held = features.count_features(held.prefixes, len(vocab))
    t = time.perf_counter()
    majority = baselines.MajorityClass().fit(counts_train, train.labels)
    score("majority class", majority.predict_proba(counts_train),
          majority.predict_proba(counts_held), time.perf_counter() - t, majority.threshold)
    t = time.perf_counter()
    logreg = baselines.LogisticRegression().fit(counts_train, train.labels)
    score("logistic (counts)", logreg.predict_proba(counts_train),
          logreg.predict_proba(counts_held), time.perf_counter() - t)
    if args.ablations:  # a reference, not a baseline: what the session features do alone
        x_train = np.c_[np.log1p(counts_train), f_train]
        x_held = np.c_[np.log1p(counts_held), f_held]
        t = time.perf_counter()
        ref = baselines.LogisticRegression(log1p=False).fit(x_train, train.labels)
        score("ref: logistic (counts+session)", ref.predict_proba(x_train),
              ref.predict_proba(x_held), time.perf_counter() - t)

    tok_train, _ = features.pad(train.prefixes, args.max_len)
    tok_held, _ = features.pad(held.prefixes, args.max_len)
    for name, with_features in ((INTENT_MODEL, False),
                                ("keras gru (tokens+session)", True)):
        if with_features:
            model = models.build_intent_model(
                len(vocab), n_features=f_train.shape[1], feature_mean=f_train.mean(axis=0),
                feature_variance=f_train.var(axis=0))
            x_train = {"tokens": tok_train, "features": f_train}
            x_held = {"tokens": tok_held, "features": f_held}
        else:
            model = models.build_intent_model(len(vocab))
            x_train, x_held = {"tokens": tok_train}, {"tokens": tok_held}
        fitted = models.train_intent(model, x_train, train.labels, epochs=args.intent_epochs,
                                     seed=args.seed)
        score(name, models.predict_intent(model, x_train), models.predict_intent(model, x_held),
              fitted.seconds)
    return results, info


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return metrics.roc_auc(y, p) if 0 < y.sum() < len(y) else math.nan


def print_table(title: str, results: dict[str, dict[str, Any]], first: str) -> None:
    names = list(results)
    keys = [k for k in results[names[0]]]
    width = max(len(k) for k in keys) + 2
    col = max(14, max(len(n) for n in names) + 2)
    print(f"\n{title}")
    print(" " * width + "".join(f"{n:>{col}}" for n in names))
    for key in keys:
        cells = []
        for n in names:
            v = results[n].get(key, math.nan)
            cells.append(f"{v:>{col}.4f}" if isinstance(v, float) else f"{v!s:>{col}}")
        marker = " <-" if key == first else ""
        print(f"{key:<{width}}" + "".join(cells) + marker)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--duckdb", type=Path, help="use this warehouse (marts built) instead")
    p.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    p.add_argument("--holdout", type=float, default=0.2, help="latest share held out")
    p.add_argument("--window", type=int, default=10, help="items the next-item model sees")
    p.add_argument("--min-count", type=int, default=1, help="SKU vocabulary min count")
    p.add_argument("--max-len", type=int, default=64, help="intent tokens kept")
    p.add_argument("--rec-epochs", type=int, default=6)
    p.add_argument("--intent-epochs", type=int, default=8)
    p.add_argument("--no-ablations", dest="ablations", action="store_false",
                   help="skip the reference rows (no-copy model, logistic+session)")
    p.add_argument("--out", type=Path, help="also write the figures as JSON here")
    return p


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or open) the warehouse, run both benchmarks, print the tables."""
    import duckdb

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        db = args.duckdb or build_warehouse(args.workdir or Path(tmp), args.sessions, args.seed,
                                            datetime(2024, 6, 1))
        con = duckdb.connect(str(db), read_only=True)
        try:
            marts = datasets.read_marts(con)
        finally:
            con.close()
    version = datasets.data_version(marts)
    cutoff = datasets.time_cutoff(marts.sessions["session_start_at"], args.holdout)
    print(f"data version {version.id} {version.row_counts}; held out from {cutoff}", flush=True)

    rec, rec_info = bench_next_item(marts, cutoff, args)
    print(f"next item: {rec_info}", flush=True)
    intent, intent_info = bench_intent(marts, cutoff, args)
    print(f"intent: {intent_info}", flush=True)

    print_table(f"NEXT ITEM (held-out last item, k={K})", rec, f"mrr@{K}")
    print_table("INTENT (purchase after add; held-out prefixes at add+0..10)", intent, "roc_auc")
    best_base = max(rec["most popular"][f"mrr@{K}"], rec["co-occurrence"][f"mrr@{K}"])
    model_mrr = rec[REC_MODEL][f"mrr@{K}"]
    model_auc, base_auc = intent[INTENT_MODEL]["roc_auc"], intent["logistic (counts)"]["roc_auc"]
    out = {"data_version": version.as_dict(), "args": {k: str(v) for k, v in vars(args).items()},
           "next_item": rec, "next_item_info": rec_info, "intent": intent,
           "intent_info": intent_info, "best_baseline_mrr": best_base,
           "rec_pass": model_mrr > best_base, "intent_pass": model_auc > base_auc,
           "seconds": time.perf_counter() - began}
    print(f"\nnext item: keras MRR@{K} {model_mrr:.4f} vs best baseline {best_base:.4f} -> "
          f"{'PASS' if out['rec_pass'] else 'FAIL'}")
    print(f"intent: keras ROC-AUC {model_auc:.4f} vs logistic {base_auc:.4f} -> "
          f"{'PASS' if out['intent_pass'] else 'FAIL'}")
    print(f"total {out['seconds']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))
    return out


def run(scale: str) -> list[Any]:
    """``make bench`` entry point: the headline figures (small: 20k sessions, full: 100k)."""
    from bench.common import Figure

    sessions = 20_000 if scale == "small" else 100_000
    out = benchmark(parser().parse_args(["--sessions", str(sessions), "--no-ablations"]))
    rec, intent = out["next_item"], out["intent"]
    note = f"{sessions} sessions, latest 20% held out"
    return [
        Figure("models", f"next item: keras MRR@{K}", rec[REC_MODEL][f"mrr@{K}"], "",
               f"> {out['best_baseline_mrr']:.3f}", f"best of popular/co-occurrence; {note}"),
        Figure("models", f"next item: keras HitRate@{K}", rec[REC_MODEL][f"hit_rate@{K}"], "",
               f"> {max(r[f'hit_rate@{K}'] for n, r in rec.items() if n != REC_MODEL):.3f}",
               note),
        Figure("models", "next item: keras training time", rec[REC_MODEL]["fit_s"], "s",
               "< 60 s", "CPU"),
        Figure("models", "intent: keras ROC-AUC (add+0..10)", intent[INTENT_MODEL]["roc_auc"],
               "", f"> {intent['logistic (counts)']['roc_auc']:.3f}",
               f"logistic on counts; {note}"),
        Figure("models", "intent: keras ROC-AUC at the add", intent[INTENT_MODEL]["roc_auc@add"],
               "", f"> {intent['logistic (counts)']['roc_auc@add']:.3f}", "logistic on counts"),
        Figure("models", "intent: keras training time", intent[INTENT_MODEL]["fit_s"], "s",
               "< 60 s", "CPU"),
    ]


def main(argv: list[str] | None = None) -> int:
    out = benchmark(parser().parse_args(argv))
    return 0 if out["rec_pass"] and out["intent_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
