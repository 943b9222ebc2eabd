"""Bootstrap confidence intervals over sessions, so a model's win over a baseline is a win.

A comparison (the model's MRR@20 over co-occurrence's, its ROC-AUC minus the logistic
baseline's) is computed on resamples of the held-out *sessions* drawn with replacement:
every example of a drawn session comes along (the intent task has one prefix per session
and offset, which are not independent), and both sides of the comparison are scored on the
same resample (paired), so the interval reflects the spread of the difference, not of each
side. The interval is the percentile one.

Pure numpy, like :mod:`skiff.train.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train import metrics

__all__ = ["Interval", "bootstrap", "reciprocal_ranks", "mrr_ratio", "auc_difference"]


@dataclass(frozen=True)
class Interval:
    """A statistic on all the examples and its bootstrap percentile interval.

    :param value: the statistic on every example.
    :param low: lower end of the interval.
    :param high: upper end.
    :param level: coverage, e.g. 0.95.
    :param rounds: resamples drawn.
    :param groups: sessions resampled.
    """

    value: float
    low: float
    high: float
    level: float
    rounds: int
    groups: int

    def as_dict(self) -> dict[str, float]:
        """The fields, for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(statistic: Callable[[np.ndarray], float], groups: np.ndarray, *,
              rounds: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """``statistic(rows)`` on all rows and on ``rounds`` resamples of the groups.

    :param statistic: takes example row indices (repeats allowed) and returns a number.
    :param groups: ``(n,)`` session of each example; a drawn session brings all its rows.
    :param rounds: resamples (>= 10).
    :param level: coverage of the interval, in (0, 1).
    :param seed: seeds the resampling.
    :return: the value and its percentile interval (NaN resamples are left out).
    :raises SkiffConfigError: ``rounds`` or ``level`` is out of range.
    :raises DataContractError: there are no examples.
    """
    if rounds < 10:
        raise SkiffConfigError(f"rounds={rounds} must be >= 10.")
    if not 0.0 < level < 1.0:
        raise SkiffConfigError(f"level={level} must be in (0, 1).")
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise DataContractError(f"groups must be a non-empty 1-d array; got shape {groups.shape}.")
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    rows = np.arange(len(groups))
    rng = np.random.default_rng(seed)
    values = np.empty(rounds)
    for i in range(rounds):
        times = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        values[i] = statistic(np.repeat(rows, times[inverse]))
    tail = (1.0 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return Interval(float(statistic(rows)), float(low), float(high), level, rounds, n_groups)


def reciprocal_ranks(top_k: np.ndarray, targets: np.ndarray, k: int = 20) -> np.ndarray:
    """``1 / rank`` of each target within the first ``k`` of its list, 0 when absent (the
    terms of MRR@k).

    :param top_k: ``(n, >= k)`` item ids, best first.
    :param targets: ``(n,)`` the true next items.
    :param k: cut-off.
    :return: ``(n,)`` float64.
    """
    ranks = metrics.target_ranks(np.asarray(top_k)[:, :k], targets)
    return np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0)


def mrr_ratio(model_rr: np.ndarray, baseline_rr: np.ndarray, *, rounds: int = 1000,
              seed: int = 0) -> Interval:
    """The model's MRR over the baseline's, with a 95% interval over held-out sessions (one
    example each: the next-item task scores each session's last item).

    :param model_rr: the model's :func:`reciprocal_ranks`.
    :param baseline_rr: the baseline's, on the same examples.
    :raises DataContractError: the two differ in length.
    """
    metrics._same_length(model_rr, baseline_rr, "model_rr and baseline_rr")

    def ratio(rows: np.ndarray) -> float:
        base = baseline_rr[rows].mean()
        return float(model_rr[rows].mean() / base) if base > 0 else float("nan")

    return bootstrap(ratio, np.arange(len(model_rr)), rounds=rounds, seed=seed)


def auc_difference(labels: np.ndarray, model_p: np.ndarray, baseline_p: np.ndarray,
                   sessions: np.ndarray, *, rounds: int = 1000, seed: int = 0) -> Interval:
    """The model's ROC-AUC minus the baseline's, with a 95% interval over sessions.

    :param labels: 0/1 label of each example.
    :param model_p: the model's scores.
    :param baseline_p: the baseline's, on the same examples.
    :param sessions: session of each example (its prefixes are resampled together).
    :raises DataContractError: the arrays differ in length.
    """
    for name, values in (("model_p", model_p), ("baseline_p", baseline_p),
                         ("sessions", sessions)):
        metrics._same_length(labels, values, f"labels and {name}")
    labels = np.asarray(labels)

    def difference(rows: np.ndarray) -> float:
        y = labels[rows]
        if not 0 < y.sum() < len(y):
            return float("nan")
        return metrics.roc_auc(y, model_p[rows]) - metrics.roc_auc(y, baseline_p[rows])

    return bootstrap(difference, sessions, rounds=rounds, seed=seed)
