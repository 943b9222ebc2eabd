"""Baselines the Keras models must beat, in plain numpy (no scikit-learn).

Intent: :class:`MajorityClass` and :class:`LogisticRegression` (on
:func:`skiff.train.features.count_features`). Next item: :class:`MostPopular` and
:class:`CoOccurrence` (what followed the last item in training, topped up by popularity).
Each has ``fit`` returning ``self``; intent baselines have ``predict_proba``, next-item
baselines ``recommend(examples, k)`` returning ranked ``(n, k)`` item ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train.features import OOV, PAD, NextItemExamples, Ragged

__all__ = ["MajorityClass", "LogisticRegression", "MostPopular", "CoOccurrence", "last_items",
           "transition_pairs"]


def _labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise DataContractError(f"labels have shape {y.shape}; expected ({n},).")
    if n == 0:
        raise DataContractError("No training examples.")
    return y


@dataclass
class MajorityClass:
    """Always predicts the training share of positives (so it ranks nothing: AUC 0.5).

    :param rate: the positive rate learnt by :meth:`fit`.
    """

    rate: float = 0.5

    def fit(self, x: np.ndarray, y: np.ndarray) -> MajorityClass:
        """Learn the positive rate.

        :param x: ``(n, ...)`` inputs (only their number is used).
        :param y: ``(n,)`` 0/1 labels.
        :return: self.
        """
        self.rate = float(_labels(y, len(x)).mean())
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The same probability for every example.

        :param x: ``(n, ...)`` inputs.
        :return: ``(n,)`` probabilities.
        """
        return np.full(len(x), self.rate)

    @property
    def threshold(self) -> float:
        """The threshold that turns :meth:`predict_proba` into the majority label."""
        return self.rate if self.rate >= 0.5 else np.nextafter(self.rate, np.inf)


@dataclass
class LogisticRegression:
    """L2-regularised logistic regression fitted by Newton's method (IRLS) on standardised inputs.

    :param l2: ridge penalty on the weights (not the intercept), in units of the summed loss.
    :param max_iter: Newton steps at most.
    :param tol: stop when the largest weight change is below this.
    :param log1p: fit on ``log1p(x)`` (counts are skewed).
    """

    l2: float = 1.0
    max_iter: int = 50
    tol: float = 1e-8
    log1p: bool = True
    mean_: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    scale_: np.ndarray = field(default_factory=lambda: np.ones(0), repr=False)
    coef_: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    intercept_: float = 0.0

    def _design(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise DataContractError(f"Inputs must be (n, features), got shape {x.shape}.")
        return np.log1p(np.maximum(x, 0)) if self.log1p else x

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        """Fit the weights.

        :param x: ``(n, features)`` inputs (e.g. token counts).
        :param y: ``(n,)`` 0/1 labels.
        :return: self.
        :raises SkiffConfigError: ``l2 < 0``.
        """
        if self.l2 < 0:
            raise SkiffConfigError(f"l2={self.l2} must be >= 0.")
        z = self._design(x)
        y = _labels(y, len(z))
        self.mean_ = z.mean(axis=0)
        self.scale_ = np.where(z.std(axis=0) > 0, z.std(axis=0), 1.0)
        a = np.c_[np.ones(len(z)), (z - self.mean_) / self.scale_]
        w = np.zeros(a.shape[1])
        ridge = np.full(a.shape[1], self.l2)
        ridge[0] = 0.0
        for _ in range(self.max_iter):
            p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
            grad = a.T @ (p - y) + ridge * w
            hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(ridge + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < self.tol:
                break
        self.intercept_, self.coef_ = float(w[0]), w[1:]
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class.

        :param x: ``(n, features)`` inputs, as in :meth:`fit`.
        :return: ``(n,)`` probabilities.
        :raises DataContractError: the number of features differs from training.
        """
        z = self._design(x)
        if z.shape[1] != len(self.coef_):
            raise DataContractError(f"Expected {len(self.coef_)} features (as in fit), "
                                    f"got {z.shape[1]}.")
        logit = self.intercept_ + ((z - self.mean_) / self.scale_) @ self.coef_
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))


def _check_k(k: int, n_items: int) -> None:
    if not 1 <= k <= n_items - 2:
        raise SkiffConfigError(f"k={k} must be in 1..{n_items - 2} (the catalogue size).")


@dataclass
class MostPopular:
    """Recommends the items most often seen in training, the same list for everyone.

    :param n_items: vocabulary size (ids ``0..n_items - 1``; PAD and OOV never recommended).
    """

    n_items: int
    counts_: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def fit(self, sequences: Ragged) -> MostPopular:
        """Count the items of the training sessions.

        :param sequences: training item sequences.
        :return: self.
        """
        self.counts_ = np.bincount(sequences.values, minlength=self.n_items)[:self.n_items]
        return self

    def ranking(self) -> np.ndarray:
        """Every product id, most popular first (ties by id).

        :return: ``(n_items - 2,)`` ids.
        """
        counts = self.counts_.astype(np.float64).copy()
        counts[[PAD, OOV]] = -np.inf
        order = np.lexsort((np.arange(self.n_items), -counts))
        return order[:self.n_items - 2]

    def recommend(self, examples: NextItemExamples, k: int = 20) -> np.ndarray:
        """The ``k`` most popular items for every example.

        :param examples: what to recommend for (only their number is used).
        :param k: list length.
        :return: ``(n, k)`` ids.
        """
        _check_k(k, self.n_items)
        return np.broadcast_to(self.ranking()[:k], (len(examples), k)).copy()


@dataclass
class CoOccurrence:
    """Item-to-item: the items that most often came right after the last item, then popular ones.

    :param n_items: vocabulary size.
    :param k_max: longest list kept per item (``recommend``'s ``k`` must not exceed it, nor
        the catalogue size minus one).
    """

    n_items: int
    k_max: int = 100
    table_: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32), repr=False)
    popular_: MostPopular | None = field(default=None, repr=False)

    def fit(self, sequences: Ragged) -> CoOccurrence:
        """Count (item -> next item) transitions and fill each item's ranked list.

        Each item's list holds its successors by count (ties by id), then the most popular
        items not already in it, never the item itself (sessions do not repeat an item
        twice in a row). Items never followed by anything get the popular list.

        :param sequences: training item sequences.
        :return: self.
        """
        self.popular_ = MostPopular(self.n_items).fit(sequences)
        k = max(1, min(self.k_max, self.n_items - 3))  # every list excludes its own item
        prev, nxt = transition_pairs(sequences)
        pair = prev * self.n_items + nxt
        uniq, counts = np.unique(pair, return_counts=True)
        src, dst = uniq // self.n_items, uniq % self.n_items
        order = np.lexsort((dst, -counts, src))
        src, dst = src[order], dst[order]
        rank = np.arange(len(src)) - np.searchsorted(src, src, side="left")
        top = rank < k
        table = np.full((self.n_items, k), -1, np.int64)
        table[src[top], rank[top]] = dst[top]
        self.table_ = _top_up(table, self.popular_.ranking()).astype(np.int32)
        return self

    def recommend(self, examples: NextItemExamples, k: int = 20) -> np.ndarray:
        """The list of each example's last item.

        :param examples: the examples (their last non-padding item is used).
        :param k: list length (``<= k_max``).
        :return: ``(n, k)`` ids.
        """
        _check_k(k, self.n_items)
        if k > self.table_.shape[1]:
            raise SkiffConfigError(f"k={k} exceeds k_max={self.table_.shape[1]}; refit with a "
                                   "larger k_max.")
        return self.table_[last_items(examples), :k].copy()


def last_items(examples: NextItemExamples) -> np.ndarray:
    """Each example's last seen item (its window's last non-padding id): what co-occurrence
    and the blend (:mod:`skiff.train.blend`) look up.

    :param examples: next-item examples.
    :return: ``(n,)`` int64 ids.
    """
    seen = np.minimum(examples.length, examples.items.shape[1])
    return examples.items[np.arange(len(examples)), np.maximum(seen - 1, 0)].astype(np.int64)


def transition_pairs(sequences: Ragged) -> tuple[np.ndarray, np.ndarray]:
    """Every (item -> next item) step within the sessions: ``(prev, next)`` int64 arrays.

    A step into PAD or OOV is left out, and so is an item repeated in place (sessions do
    not repeat an item twice in a row as a transition).

    :param sequences: item sequences.
    """
    v, off = sequences.values.astype(np.int64), sequences.offsets
    is_last = np.zeros(len(v), bool)
    is_last[off[1:][off[1:] > off[:-1]] - 1] = True
    prev, nxt = v[:-1][~is_last[:-1]], v[1:][~is_last[:-1]]
    keep = (nxt > OOV) & (prev != nxt)
    return prev[keep], nxt[keep]


def _top_up(table: np.ndarray, popular: np.ndarray) -> np.ndarray:
    """Fill the -1 slots of row ``i`` with popular items not in it and other than ``i``."""
    k = table.shape[1]
    out = table.copy()
    candidates = popular[:2 * k + 1]
    for row in np.flatnonzero((table < 0).any(axis=1)):
        known = table[row][table[row] >= 0]
        fill = candidates[~np.isin(candidates, np.append(known, row))][:k - len(known)]
        out[row, len(known):len(known) + len(fill)] = fill
    return out
