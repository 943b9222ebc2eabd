"""Metrics of both models, their behavioural slices, and the champion/challenger decision.

Pure numpy, no model code: every function takes labels and scores (intent) or ranked
top-k lists and targets (next item), so models and baselines are scored the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from skiff.exceptions import DataContractError, SkiffConfigError

__all__ = [
    "COVEO_WEIGHTS",
    "BinaryScores",
    "GateDecision",
    "roc_auc",
    "binary_scores",
    "best_f1_threshold",
    "weighted_micro_f1",
    "target_ranks",
    "mrr_at_k",
    "hit_rate_at_k",
    "catalogue_coverage",
    "next_item_report",
    "next_item_slices",
    "compare",
]

_TIE = 1e-9  # gains this close to the margin are ties (float noise)

#: Weight of the micro-F1 at each number of events after the first add (Coveo cart task).
COVEO_WEIGHTS: dict[int, float] = {0: 1.0, 2: 0.9, 4: 0.8, 6: 0.7, 8: 0.6, 10: 0.5}


def _binary(y_true: np.ndarray | Sequence[int], name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise DataContractError(f"{name} must be 1-d, got shape {y.shape}.")
    if y.size and not np.isin(y, (0, 1)).all():
        raise DataContractError(f"{name} must hold only 0/1 (or booleans); got {np.unique(y)[:5]}.")
    return y.astype(bool)


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if len(a) != len(b):
        raise DataContractError(f"{names} have different lengths: {len(a)} and {len(b)}.")


def roc_auc(y_true: np.ndarray | Sequence[int], y_score: np.ndarray | Sequence[float]) -> float:
    """Area under the ROC curve, by ranks (Mann-Whitney U); tied scores share their mean rank.

    :param y_true: 0/1 labels.
    :param y_score: scores, higher meaning more likely 1.
    :return: AUC in ``[0, 1]``; 0.5 for a constant score.
    :raises DataContractError: lengths differ, or the labels hold a single class.
    """
    y = _binary(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    _same_length(y, s, "y_true and y_score")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataContractError(f"ROC-AUC needs both classes; got {n_pos} positives and "
                                f"{n_neg} negatives.")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # average rank (1-based) of each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True)
class BinaryScores:
    """Classification scores at one threshold.

    :param threshold: a score at or above it predicts 1.
    :param precision: TP / (TP + FP); 0 when nothing is predicted 1.
    :param recall: TP / (TP + FN); 0 when there are no positives.
    :param f1: harmonic mean of precision and recall; 0 when both are 0.
    :param accuracy: share of correct predictions (the Coveo task's "micro-F1").
    :param n: examples scored.
    :param positive_rate: share of 1 labels.
    """

    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    n: int
    positive_rate: float


def binary_scores(y_true: np.ndarray | Sequence[int], y_score: np.ndarray | Sequence[float],
                  threshold: float = 0.5) -> BinaryScores:
    """Precision, recall, F1 and accuracy of ``y_score >= threshold``.

    :param y_true: 0/1 labels.
    :param y_score: scores or probabilities.
    :param threshold: decision threshold.
    :return: the scores.
    :raises DataContractError: lengths differ or there are no examples.
    """
    y = _binary(y_true)
    pred = np.asarray(y_score, dtype=np.float64) >= threshold
    _same_length(y, pred, "y_true and y_score")
    if len(y) == 0:
        raise DataContractError("No examples to score.")
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return BinaryScores(float(threshold), precision, recall, f1, float((pred == y).mean()),
                        len(y), float(y.mean()))


def best_f1_threshold(y_true: np.ndarray | Sequence[int],
                      y_score: np.ndarray | Sequence[float]) -> float:
    """The threshold that maximises F1 on these (training) examples.

    Candidates are the distinct scores; the lowest of equally good thresholds wins.

    :param y_true: 0/1 labels.
    :param y_score: scores.
    :return: the threshold (``inf`` when there are no positives, so nothing is predicted 1).
    :raises DataContractError: lengths differ or there are no examples.
    """
    y = _binary(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    _same_length(y, s, "y_true and y_score")
    if len(y) == 0:
        raise DataContractError("No examples to choose a threshold on.")
    if not y.any():
        return math.inf
    order = np.argsort(-s, kind="mergesort")
    s_desc, y_desc = s[order], y[order]
    last_of_run = np.r_[s_desc[1:] != s_desc[:-1], True]  # predict 1 for all scores >= this
    tp = np.cumsum(y_desc)[last_of_run]
    predicted = (np.arange(len(s)) + 1)[last_of_run]
    f1 = 2 * tp / (predicted + y.sum())
    best = np.flatnonzero(f1 == f1.max())[-1]  # the lowest threshold among the best
    return float(s_desc[last_of_run][best])


def weighted_micro_f1(
    y_true: np.ndarray | Sequence[int],
    y_pred: np.ndarray | Sequence[int],
    after_add: np.ndarray | Sequence[int],
    weights: Mapping[int, float] | None = None,
) -> float:
    """The Coveo cart task's score: sum over offsets of weight x micro-F1 at that offset.

    For a single-label binary task micro-F1 equals accuracy. Offsets absent from
    ``after_add`` add nothing, as in the challenge's evaluation script (so the best
    possible score is the sum of the weights present, 4.5 with all six).

    :param y_true: 0/1 labels.
    :param y_pred: 0/1 predictions.
    :param after_add: events after the first add of each example's prefix.
    :param weights: weight by offset, default :data:`COVEO_WEIGHTS`.
    :return: the weighted sum.
    :raises DataContractError: lengths differ, or an offset has no weight.
    """
    weights = COVEO_WEIGHTS if weights is None else weights
    y, p = _binary(y_true), _binary(y_pred, "y_pred")
    k = np.asarray(after_add, dtype=np.int64)
    _same_length(y, p, "y_true and y_pred")
    _same_length(y, k, "y_true and after_add")
    unknown = sorted(set(np.unique(k).tolist()) - set(weights))
    if unknown:
        raise DataContractError(
            f"No weight for offsets {unknown}; weights cover {sorted(weights)}.")
    return float(sum(weights[int(o)] * (y[k == o] == p[k == o]).mean() for o in np.unique(k)))


def target_ranks(top_k: np.ndarray, targets: np.ndarray | Sequence[int]) -> np.ndarray:
    """1-based position of each target in its ranked list, 0 when it is not there.

    :param top_k: ``(n, k)`` item ids, best first.
    :param targets: ``(n,)`` the true next items.
    :return: int64 ``(n,)`` ranks.
    :raises DataContractError: shapes do not match.
    """
    top_k = np.asarray(top_k)
    t = np.asarray(targets)
    if top_k.ndim != 2 or t.shape != (top_k.shape[0],):
        raise DataContractError(f"top_k must be (n, k) and targets (n,); got {top_k.shape} "
                                f"and {t.shape}.")
    hit = top_k == t[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0).astype(np.int64)


def _check_k(k: int, top_k: np.ndarray) -> None:
    if k < 1 or k > np.asarray(top_k).shape[1]:
        raise SkiffConfigError(f"k={k} must be in 1..{np.asarray(top_k).shape[1]} "
                               "(the length of the ranked lists).")


def mrr_at_k(top_k: np.ndarray, targets: np.ndarray | Sequence[int], k: int = 20) -> float:
    """Mean reciprocal rank of the target within the first ``k`` of each list (0 if absent).

    :param top_k: ``(n, >= k)`` item ids, best first.
    :param targets: ``(n,)`` the true next items.
    :param k: cut-off.
    :return: MRR@k; 0.0 for no examples.
    :raises SkiffConfigError: ``k`` is out of range.
    """
    _check_k(k, top_k)
    r = target_ranks(np.asarray(top_k)[:, :k], targets)
    return float(np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0).mean()) if len(r) else 0.0


def hit_rate_at_k(top_k: np.ndarray, targets: np.ndarray | Sequence[int], k: int = 20) -> float:
    """Share of examples whose target is among the first ``k`` of the list.

    :param top_k: ``(n, >= k)`` item ids, best first.
    :param targets: ``(n,)`` the true next items.
    :param k: cut-off.
    :return: HitRate@k; 0.0 for no examples.
    :raises SkiffConfigError: ``k`` is out of range.
    """
    _check_k(k, top_k)
    r = target_ranks(np.asarray(top_k)[:, :k], targets)
    return float((r > 0).mean()) if len(r) else 0.0


def catalogue_coverage(top_k: np.ndarray, n_items: int, k: int = 20,
                       exclude: Sequence[int] = (0, 1)) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list.

    :param top_k: ``(n, >= k)`` item ids.
    :param n_items: vocabulary size (ids ``0..n_items - 1``).
    :param k: cut-off.
    :param exclude: ids that are not products (PAD, OOV): neither counted nor in the catalogue.
    :return: coverage in ``[0, 1]``.
    :raises SkiffConfigError: ``k`` is out of range or the catalogue is empty.
    """
    _check_k(k, top_k)
    catalogue = n_items - len(set(exclude))
    if catalogue < 1:
        raise SkiffConfigError(f"n_items={n_items} leaves an empty catalogue.")
    shown = np.setdiff1d(np.unique(np.asarray(top_k)[:, :k]), np.asarray(exclude))
    return float(len(shown) / catalogue)


def next_item_report(top_k: np.ndarray, targets: np.ndarray, n_items: int,
                     k: int = 20) -> dict[str, float]:
    """The headline next-item metrics.

    :param top_k: ``(n, >= k)`` ranked item ids.
    :param targets: ``(n,)`` true next items.
    :param n_items: vocabulary size.
    :param k: cut-off.
    :return: ``{"mrr@k", "hit_rate@k", "coverage@k", "n"}`` (keys spelled with the k used).
    """
    return {
        f"mrr@{k}": mrr_at_k(top_k, targets, k),
        f"hit_rate@{k}": hit_rate_at_k(top_k, targets, k),
        f"coverage@{k}": catalogue_coverage(top_k, n_items, k),
        "n": float(len(targets)),
    }


def next_item_slices(
    top_k: np.ndarray,
    targets: np.ndarray,
    prefix_lengths: np.ndarray,
    train_counts: np.ndarray,
    *,
    k: int = 20,
    short_max: int = 2,
    head_share: float = 0.2,
) -> dict[str, dict[str, float]]:
    """MRR@k and HitRate@k on behavioural slices, plus catalogue coverage of the lists.

    - ``short`` / ``long``: prefixes of at most / more than ``short_max`` items;
    - ``popular`` / ``long_tail``: targets among the ``head_share`` most popular items by
      training counts (ties broken by id) / all other items, unknown (OOV) ones included;
    - ``all``: every example, with ``coverage@k``.

    :param top_k: ``(n, >= k)`` ranked item ids.
    :param targets: ``(n,)`` true next items.
    :param prefix_lengths: ``(n,)`` items seen before each target.
    :param train_counts: ``(n_items,)`` occurrences of each id in training (ids 0, 1 are
        PAD and OOV and never popular).
    :param k: cut-off.
    :param short_max: longest prefix still "short".
    :param head_share: share of the catalogue that is "popular", in ``(0, 1)``.
    :return: ``{slice: {"mrr@k", "hit_rate@k", "n", "share"}}``; ``all`` also has ``coverage@k``.
    :raises SkiffConfigError: ``head_share`` is not in ``(0, 1)``.
    :raises DataContractError: lengths differ.
    """
    if not 0.0 < head_share < 1.0:
        raise SkiffConfigError(f"head_share={head_share} must be in (0, 1).")
    targets = np.asarray(targets)
    lengths = np.asarray(prefix_lengths)
    _same_length(targets, lengths, "targets and prefix_lengths")
    counts = np.asarray(train_counts, dtype=np.float64).copy()
    n_items = len(counts)
    counts[:2] = -np.inf  # PAD, OOV are not products
    n_head = max(1, int(round(head_share * (n_items - 2))))
    head = np.zeros(n_items, bool)
    head[np.lexsort((np.arange(n_items), -counts))[:n_head]] = True
    popular = head[np.clip(targets, 0, n_items - 1)] & (targets < n_items)
    slices = {
        "all": np.ones(len(targets), bool),
        "short": lengths <= short_max,
        "long": lengths > short_max,
        "popular": popular,
        "long_tail": ~popular,
    }
    out: dict[str, dict[str, float]] = {}
    for name, rows in slices.items():
        n = int(rows.sum())
        out[name] = {
            f"mrr@{k}": mrr_at_k(top_k[rows], targets[rows], k) if n else float("nan"),
            f"hit_rate@{k}": hit_rate_at_k(top_k[rows], targets[rows], k) if n else float("nan"),
            "n": float(n),
            "share": n / len(targets) if len(targets) else float("nan"),
        }
    out["all"][f"coverage@{k}"] = catalogue_coverage(top_k, n_items, k)
    return out


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate model should replace the champion, and why.

    :param promote: True to deploy the candidate.
    :param metric: the metric compared.
    :param candidate: the candidate's value.
    :param champion: the champion's value (None when there is no champion).
    :param margin: how much better the candidate had to be.
    :param reason: one sentence for logs, alerts and the run card.
    """

    promote: bool
    metric: str
    candidate: float
    champion: float | None
    margin: float
    reason: str


def compare(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    metric: str,
    margin: float = 0.0,
    *,
    higher_is_better: bool = True,
) -> GateDecision:
    """Decide whether ``candidate`` beats ``champion`` on ``metric`` by more than ``margin``.

    Both metric sets must come from the same evaluation sessions; this function cannot
    check that. With no champion (first deploy) the candidate is promoted. A gain within
    ``1e-9`` of ``margin`` counts as equal to it (not enough), so float noise cannot promote.

    :param candidate: the candidate's metrics.
    :param champion: the deployed model's metrics, or None if nothing is deployed.
    :param metric: the key to compare, e.g. ``"mrr@20"`` or ``"roc_auc"``.
    :param margin: required improvement, in the metric's units (``>= 0``).
    :param higher_is_better: False for losses.
    :return: the decision with a reason string.
    :raises SkiffConfigError: ``margin < 0``.
    :raises DataContractError: a metric set lacks ``metric`` or its value is not a finite number.
    """
    if margin < 0:
        raise SkiffConfigError(f"margin={margin} must be >= 0.")
    cand = _metric_value(candidate, metric, "candidate")
    if champion is None:
        return GateDecision(True, metric, cand, None, margin,
                            f"No champion: promote the candidate ({metric}={cand:.4f}).")
    champ = _metric_value(champion, metric, "champion")
    gain = (cand - champ) if higher_is_better else (champ - cand)
    better = "higher" if higher_is_better else "lower"
    promote = gain > margin + _TIE
    if promote:
        reason = (f"Promote: candidate {metric}={cand:.4f} beats champion {champ:.4f} "
                  f"by {gain:.4f} (> margin {margin:.4f}; {better} is better).")
    else:
        reason = (f"Keep champion: candidate {metric}={cand:.4f} vs champion {champ:.4f}, "
                  f"gain {gain:.4f} is not above margin {margin:.4f} ({better} is better).")
    return GateDecision(promote, metric, cand, champ, margin, reason)


def _metric_value(metrics: Mapping[str, float], metric: str, who: str) -> float:
    if metric not in metrics:
        raise DataContractError(f"The {who}'s metrics lack {metric!r}; "
                                f"they have {sorted(metrics)}.")
    try:
        value = float(metrics[metric])
    except (TypeError, ValueError) as exc:
        raise DataContractError(f"The {who}'s {metric!r} is not a number: "
                                f"{metrics[metric]!r}.") from exc
    if not math.isfinite(value):
        raise DataContractError(f"The {who}'s {metric!r} is {value}; need a finite number.")
    return value
