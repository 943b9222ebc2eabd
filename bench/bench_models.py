"""Benchmark: both Keras models against their baselines on generated data, held out by time.

What it does (the steps IntentFlow and RecFlow will run, without Metaflow):

1. generate ``--sessions`` sessions (``skiff.data.generator``), load them into a fresh DuckDB
   file and ``dbt build`` the marts (or read an existing warehouse with ``--duckdb``);
2. split by ``session_start_at``: the latest ``--holdout`` share of sessions is held out;
3. next item: fit most-popular and co-occurrence, train the Keras model, score the last
   item of every held-out session (MRR@20, HitRate@20, coverage@20, slices), blended with
   the last item's transitions and the session's earlier items as served, with the
   transitions only (the blend before the returns component) and alone
   (``--choose-blend``: the blend chosen on a validation split of the training sessions);
4. intent: prefixes at the first add and 2/4/6/8/10 events after it; fit majority class and
   logistic regression on counts, train the Keras model on event tokens, score ROC-AUC (pooled and per offset), F1/precision/recall at the threshold
   chosen on training data, and the Coveo weighted micro-F1 (``--intent-features``: the
   model and the logistic regression both also see the session features known at the add);
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

from skiff.train import blend, confidence, datasets, intent, next_item  # noqa: E402

REC_MODEL = next_item.MODEL
UNBLENDED = f"{REC_MODEL} (no blend)"
NO_RETURNS = f"{REC_MODEL} (transitions only)"
#: The mixtures ``--choose-blend`` tries: transition shares, pseudo-counts, returns' shares.
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
BLEND_ALPHAS = (0.1, 1.0, 5.0, 20.0)
BLEND_RETURNS = (0.0, 0.1, 0.2, 0.3)
INTENT_MODEL = intent.MODEL
K = next_item.K


def build_warehouse(workdir: Path, sessions: int, seed: int, end: datetime) -> Path:
    """Generate, load and ``dbt build``; return the DuckDB file."""
    from skiff.data import generate
    from skiff.data import load_dir
    from skiff.data import DuckDBWarehouse

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
    """Score the baselines and the model; ``info["ci"]``: the model's MRR@K over
    co-occurrence's with its bootstrap interval over held-out sessions."""
    data = next_item.prepare(marts.sequences, cutoff, window=args.window, min_count=args.min_count)
    info = data.info
    results: dict[str, dict[str, Any]] = {}
    rr: dict[str, np.ndarray] = {}
    t = time.perf_counter()
    for name, top in next_item.baseline_top_k(data, K).items():
        results[name] = next_item.score(top, data, K)
        rr[name] = confidence.reciprocal_ranks(top, data.eval_examples.target, K)
    results["co-occurrence"]["fit_s"] = time.perf_counter() - t  # both baselines together
    weight, alpha, returns = choose_blend(marts, cutoff, args) if args.choose_blend else args.blend
    info["blend"] = {"weight": weight, "alpha": alpha, "returns": returns,
                     "chosen": bool(args.choose_blend)}
    variants = [(REC_MODEL, True)] + ([("keras gru (no copy)", False)] if args.ablations else [])
    for name, copy in variants:  # the ablation shows what the copy head adds
        fit = {"head": args.rec_head}
        if args.rec_batch:
            fit["batch_size"] = args.rec_batch
        fitted = next_item.train(data, epochs=args.rec_epochs, seed=args.seed, copy=copy,
                                 blend=(0.0, alpha), **fit)
        rows = [(name, next_item.with_blend(fitted.model, data, weight, alpha, returns))]
        if name == REC_MODEL and returns > 0:  # the reference rows: the served model's only
            rows.append((NO_RETURNS, next_item.with_blend(fitted.model, data, weight, alpha)))
        if name == REC_MODEL and (weight > 0 or returns > 0):
            rows.append((UNBLENDED, fitted.model))
        for row, model in rows:
            top = next_item.model_top_k(model, data, K)
            results[row] = next_item.score(top, data, K)
            results[row]["fit_s"] = fitted.seconds
            rr[row] = confidence.reciprocal_ranks(top, data.eval_examples.target, K)
    info["ci"] = {f"mrr@{K} ratio vs co-occurrence": confidence.mrr_ratio(
        rr[REC_MODEL], rr["co-occurrence"], rounds=args.rounds, seed=args.seed).as_dict()}
    for row, label in ((NO_RETURNS, "transitions only"), (UNBLENDED, "no blend")):
        if row in rr:
            info["ci"][f"mrr@{K} ratio vs co-occurrence, {label}"] = confidence.mrr_ratio(
                rr[row], rr["co-occurrence"], rounds=args.rounds, seed=args.seed).as_dict()
    return results, info


def choose_blend(marts: datasets.Marts, cutoff: np.datetime64, args: argparse.Namespace
                 ) -> tuple[float, float, float]:
    """The mixture's ``(weight, alpha, returns)`` with the best MRR@K on a validation split carved
    from the *training* sessions (their latest ``--holdout`` share), a model fitted on the
    rest: the held-out sessions play no part."""
    import pyarrow as pa
    import pyarrow.compute as pc

    seqs = marts.sequences
    start = seqs["session_start_at"]
    train = seqs.filter(pc.less(start, pa.scalar(cutoff.astype("datetime64[us]").item(),
                                                 type=start.type)))
    val_cutoff = datasets.time_cutoff(train["session_start_at"], args.holdout)
    data = next_item.prepare(train, val_cutoff, window=args.window, min_count=args.min_count)
    fitted = next_item.train(data, epochs=args.rec_epochs, seed=args.seed, head=args.rec_head,
                             blend=(0.0, 1.0, 0.0))
    transitions = blend.Transitions(len(data.vocab)).fit(data.train_seqs)
    lists = blend.blended_top_k(fitted.model, data.eval_examples, transitions,
                                weights=BLEND_WEIGHTS, alphas=BLEND_ALPHAS,
                                returns=BLEND_RETURNS, k=K)
    best, mrr = blend.choose(lists, data.eval_examples.target, K)
    print(f"blend chosen on {len(data.eval_examples):,} validation sessions: weight, alpha, "
          f"returns = {best} (MRR@{K} {mrr[best]:.4f}; model alone "
          f"{mrr[(0.0, BLEND_ALPHAS[0], 0.0)]:.4f})", flush=True)
    return best


def bench_intent(marts: datasets.Marts, cutoff: np.datetime64, args: argparse.Namespace
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Score the baselines and the model; ``info["ci"]``: the model's ROC-AUC minus the
    logistic baseline's (at the add, and pooled) with bootstrap intervals over sessions."""
    data = intent.prepare(marts, cutoff, max_len=args.max_len,
                          session_features=args.intent_features)
    baselines = intent.baseline_scores(data)
    results = {name: intent.score(data, *scores) for name, scores in baselines.items()}
    fitted = intent.train(data, epochs=args.intent_epochs, seed=args.seed)
    scores = intent.model_scores(fitted.model, data)
    results[INTENT_MODEL] = intent.score(data, *scores)
    results[INTENT_MODEL]["fit_s"] = fitted.seconds
    held, model_p, logistic_p = data.held, scores[1], baselines["logistic (counts)"][1]
    at = held.after_add == 0
    info = data.info
    info["ci"] = {
        "roc_auc@add difference vs logistic": confidence.auc_difference(
            held.labels[at], model_p[at], logistic_p[at], held.session[at],
            rounds=args.rounds, seed=args.seed).as_dict(),
        "roc_auc difference vs logistic": confidence.auc_difference(
            held.labels, model_p, logistic_p, held.session, rounds=args.rounds // 4,
            seed=args.seed).as_dict()}
    if "logistic (counts only)" in baselines:  # the same features as the model: also vs tokens
        only_p = baselines["logistic (counts only)"][1]
        info["ci"]["roc_auc@add difference vs logistic on counts only"] = confidence.auc_difference(
            held.labels[at], model_p[at], only_p[at], held.session[at], rounds=args.rounds,
            seed=args.seed).as_dict()
    return results, info


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
    p.add_argument("--rec-head", choices=("sampled", "full"), default="sampled",
                   help="next-item training loss (evaluation is always the full softmax)")
    p.add_argument("--rec-batch", type=int, help="next-item batch size (default: the model's)")
    p.add_argument("--blend", type=float, nargs=3, metavar=("WEIGHT", "ALPHA", "RETURNS"),
                   default=next_item.BLEND, help="the served model's mixture with the last "
                   "item's transitions and the session's earlier items (skiff.train.blend; "
                   "weight and returns 0: the model alone)")
    p.add_argument("--choose-blend", action="store_true",
                   help="choose --blend on a validation split of the training sessions (one "
                        "more fit)")
    p.add_argument("--intent-epochs", type=int, default=8)
    p.add_argument("--intent-features", action="store_true",
                   help="give the intent model and the logistic baseline the session features "
                        "known at the add (skiff.train.features.SESSION_FEATURES)")
    p.add_argument("--no-ablations", dest="ablations", action="store_false",
                   help="skip the reference rows (no-copy model, logistic+session)")
    p.add_argument("--rounds", type=int, default=1000,
                   help="bootstrap resamples of the held-out sessions (95%% intervals)")
    p.add_argument("--out", type=Path, help="also write the figures as JSON here")
    return p


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or open) the warehouse, run both benchmarks, print the tables."""
    from skiff.data import DuckDBWarehouse

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        db = args.duckdb or build_warehouse(args.workdir or Path(tmp), args.sessions, args.seed,
                                            datetime(2024, 6, 1))
        marts = datasets.read_marts(DuckDBWarehouse(db))
    version = datasets.data_version(marts)
    cutoff = datasets.time_cutoff(marts.sessions["session_start_at"], args.holdout)
    print(f"data version {version.id} {version.row_counts}; held out from {cutoff}", flush=True)

    rec, rec_info = bench_next_item(marts, cutoff, args)
    print(f"next item: {rec_info}", flush=True)
    intent_rows, intent_info = bench_intent(marts, cutoff, args)
    print(f"intent: {intent_info}", flush=True)

    print_table(f"NEXT ITEM (held-out last item, k={K})", rec, f"mrr@{K}")
    print_table("INTENT (purchase after add; held-out prefixes at add+0..10)", intent_rows, "roc_auc")
    best_base = max(rec["most popular"][f"mrr@{K}"], rec["co-occurrence"][f"mrr@{K}"])
    model_mrr = rec[REC_MODEL][f"mrr@{K}"]
    model_auc, base_auc = intent_rows[INTENT_MODEL]["roc_auc"], intent_rows["logistic (counts)"]["roc_auc"]
    out = {"data_version": version.as_dict(), "args": {k: str(v) for k, v in vars(args).items()},
           "next_item": rec, "next_item_info": rec_info, "intent": intent_rows,
           "intent_info": intent_info, "best_baseline_mrr": best_base,
           "rec_pass": model_mrr > best_base, "intent_pass": model_auc > base_auc,
           "seconds": time.perf_counter() - began}
    print(f"\nnext item: keras MRR@{K} {model_mrr:.4f} vs best baseline {best_base:.4f} -> "
          f"{'PASS' if out['rec_pass'] else 'FAIL'}")
    print(f"intent: keras ROC-AUC {model_auc:.4f} vs logistic {base_auc:.4f} -> "
          f"{'PASS' if out['intent_pass'] else 'FAIL'}")
    for name, ci in {**rec_info["ci"], **intent_info["ci"]}.items():
        print(f"{name}: {ci['value']:.4f}, 95% CI [{ci['low']:.4f}, {ci['high']:.4f}] "
              f"({ci['rounds']} resamples of {ci['groups']:,} sessions)")
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
    rec, intent_rows = out["next_item"], out["intent"]
    note = f"{sessions} sessions, latest 20% held out"
    return [
        Figure("models", f"next item: keras MRR@{K}", rec[REC_MODEL][f"mrr@{K}"], "",
               f"> {out['best_baseline_mrr']:.3f}", f"best of popular/co-occurrence; {note}"),
        Figure("models", f"next item: keras HitRate@{K}", rec[REC_MODEL][f"hit_rate@{K}"], "",
               f"> {max(r[f'hit_rate@{K}'] for n, r in rec.items() if n != REC_MODEL):.3f}",
               note),
        Figure("models", "next item: keras training time", rec[REC_MODEL]["fit_s"], "s",
               "< 60 s", "CPU"),
        Figure("models", "intent: keras ROC-AUC (add+0..10)", intent_rows[INTENT_MODEL]["roc_auc"],
               "", f"> {intent_rows['logistic (counts)']['roc_auc']:.3f}",
               f"logistic on counts; {note}"),
        Figure("models", "intent: keras ROC-AUC at the add", intent_rows[INTENT_MODEL]["roc_auc@add"],
               "", f"> {intent_rows['logistic (counts)']['roc_auc@add']:.3f}", "logistic on counts"),
        Figure("models", "intent: keras training time", intent_rows[INTENT_MODEL]["fit_s"], "s",
               "< 60 s", "CPU"),
        _ci_figure(f"next item: keras MRR@{K} / co-occurrence's",
                   out["next_item_info"]["ci"][f"mrr@{K} ratio vs co-occurrence"], ">= 1.2"),
        _ci_figure("intent: keras ROC-AUC at the add - logistic's",
                   out["intent_info"]["ci"]["roc_auc@add difference vs logistic"], ">= 0.05"),
    ]


def _ci_figure(name: str, ci: dict[str, Any], target: str) -> Any:
    from bench.common import Figure

    return Figure("models", name, ci["value"], "", target,
                  f"95% CI [{ci['low']:.3f}, {ci['high']:.3f}], bootstrap over "
                  f"{ci['groups']:,} held-out sessions ({ci['rounds']} resamples)")


def main(argv: list[str] | None = None) -> int:
    out = benchmark(parser().parse_args(argv))
    return 0 if out["rec_pass"] and out["intent_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
