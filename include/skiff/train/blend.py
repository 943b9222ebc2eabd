"""Blend the next-item model's scores with the last item's smoothed transition probabilities
and the session's own earlier items.

The Keras model holds each product's successors less sharply than a count table does, and
gives returns to earlier products less mass than they get (docs/training.md, "How good can
they get"). The blend ranks by the mixture
``(1 - weight - returns) * p_model(j) + weight * p_trans(j | last) + returns * p_back(j)``,
where ``p_trans`` is the training sessions' (item -> next item) counts smoothed towards
popularity::

    p_trans(j | i) = (count(i, j) + alpha * share(j)) / (count(i) + alpha)

and ``p_back`` the session's earlier items (:func:`session_returns`): :data:`ANCHOR` of it on
the session's first item, :data:`STEP_BACK` on the item before the last, the rest spread
evenly over the window's items before the last (popularity when there is none).

``weight``, ``alpha`` and ``returns`` are chosen on a validation split carved from the
*training* sessions (:func:`choose`), never on the held-out ones. Pure numpy / scipy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train.baselines import last_items, transition_pairs
from skiff.train.features import OOV, PAD, NextItemExamples, Ragged

__all__ = ["ANCHOR", "STEP_BACK", "Transitions", "last_items", "session_returns", "blended_top_k",
           "choose"]

_FLOOR = 1e-12  # log floor: PAD / OOV get log(1e-12), never -inf
#: Share of the returns component on the session's first item (the shoppers' anchor).
ANCHOR = 0.3
#: Share of the returns component on the item before the last (a step back).
STEP_BACK = 0.3


@dataclass
class Transitions:
    """(item -> next item) counts of the training sessions and the items' popularity shares.

    :param n_items: vocabulary size (PAD and OOV included, never predicted).
    :param alpha: pseudo-count of the popularity prior, > 0.
    """

    n_items: int
    alpha: float = 5.0
    counts_: Any = field(default=None, repr=False)  # scipy.sparse.csr_matrix (n_items, n_items)
    share_: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def fit(self, sequences: Ragged) -> Transitions:
        """Count consecutive pairs within each session
        (:func:`skiff.train.baselines.transition_pairs`, as co-occurrence counts them).

        :param sequences: training item sequences.
        :return: self.
        """
        from scipy import sparse

        v = sequences.values.astype(np.int64)
        if len(v) and v.max() >= self.n_items:
            raise DataContractError(f"item id {int(v.max())} is outside the vocabulary of "
                                    f"{self.n_items}.")
        prev, nxt = transition_pairs(sequences)
        self.counts_ = sparse.csr_matrix((np.ones(len(prev), np.float32), (prev, nxt)),
                                         shape=(self.n_items, self.n_items))
        self.counts_.sum_duplicates()
        pop = np.bincount(v, minlength=self.n_items)[:self.n_items].astype(np.float64)
        pop[[PAD, OOV]] = 0.0
        self.share_ = pop / max(pop.sum(), 1.0)
        return self

    def log_probs(self, last: np.ndarray, alpha: float | None = None) -> np.ndarray:
        """``log p_trans(. | last)`` for a batch of last items.

        :param last: ``(b,)`` item ids.
        :param alpha: pseudo-count (default: the fitted one).
        :return: ``(b, n_items)`` float32.
        """
        a = self.alpha if alpha is None else alpha
        if a <= 0:
            raise SkiffConfigError(f"alpha={a} must be > 0.")
        rows = self._fitted()[np.asarray(last, np.int64)]
        total = np.asarray(rows.sum(axis=1)).ravel()
        p = rows.toarray().astype(np.float64)
        p += a * self.share_[None, :]
        p /= (total + a)[:, None]
        return np.log(np.maximum(p, _FLOOR)).astype(np.float32)

    def table(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Each item's ``m`` most frequent successors and their counts (ties by id; -1 and 0
        where it has fewer): the table a blended model carries.

        :param m: successors per item, >= 1.
        :return: ``(n_items, m)`` int32 ids and ``(n_items, m)`` float32 counts.
        """
        if m < 1:
            raise SkiffConfigError(f"m={m} must be >= 1.")
        coo = self._fitted().tocoo()
        order = np.lexsort((coo.col, -coo.data, coo.row))
        src, dst, cnt = coo.row[order], coo.col[order], coo.data[order]
        rank = np.arange(len(src)) - np.searchsorted(src, src, side="left")
        keep = rank < m
        ids = np.full((self.n_items, m), -1, np.int32)
        counts = np.zeros((self.n_items, m), np.float32)
        ids[src[keep], rank[keep]] = dst[keep]
        counts[src[keep], rank[keep]] = cnt[keep]
        return ids, counts

    def totals(self) -> np.ndarray:
        """Each item's number of training transitions (all successors, not only the table's).

        :return: ``(n_items,)`` float32.
        """
        return np.asarray(self._fitted().sum(axis=1), np.float32).ravel()

    def _fitted(self) -> Any:
        if self.counts_ is None:
            raise DataContractError("Transitions are not fitted.")
        return self.counts_


def session_returns(examples: NextItemExamples, share: np.ndarray, *, anchor: float = ANCHOR,
                    step_back: float = STEP_BACK) -> np.ndarray:
    """``p_back``: each example's distribution over the session's earlier items.

    ``anchor`` on the session's first item, ``step_back`` on the window's item before the
    last, the rest evenly over the window's items before the last (an item seen twice
    counts twice; PAD and OOV get nothing); an example with one item so far gets ``share``
    (popularity) instead.

    :param examples: next-item examples.
    :param share: ``(n_items,)`` the items' popularity shares.
    :param anchor: share on the first item, in ``[0, 1]``.
    :param step_back: share on the item before the last, ``anchor + step_back <= 1``.
    :return: ``(n, n_items)`` float64.
    :raises SkiffConfigError: shares outside ``[0, 1]`` or summing past 1.
    """
    if not (0 <= anchor <= 1 and 0 <= step_back <= 1 and anchor + step_back <= 1):
        raise SkiffConfigError(f"anchor={anchor} and step_back={step_back} must be in [0, 1] "
                               "and sum to at most 1.")
    n, window = examples.items.shape
    seen = np.minimum(examples.length, window)
    rows = np.arange(n)
    out = np.zeros((n, len(share)))
    before = np.arange(window)[None, :] < (seen - 1)[:, None]  # the window's items before the last
    r, c = np.nonzero(before)
    spread = (1.0 - anchor - step_back) / np.maximum(seen - 1, 1)
    np.add.at(out, (r, examples.items[r, c].astype(np.int64)), spread[r])
    has = seen >= 2
    np.add.at(out, (rows[has], examples.first[has].astype(np.int64)), anchor)
    np.add.at(out, (rows[has], examples.items[rows, np.maximum(seen - 2, 0)][has].astype(np.int64)),
              step_back)
    out[:, [PAD, OOV]] = 0.0  # never recommended (an unknown earlier item is no return)
    out[~has] = share
    return out


def model_log_probs(model: Any, examples: NextItemExamples, *, batch_size: int = 1024
                    ) -> Iterator[tuple[slice, np.ndarray]]:
    """The model's log-softmax over the catalogue, a batch of examples at a time.

    :param model: a Keras next-item model.
    :param examples: what to score.
    :param batch_size: rows per call.
    :return: ``(rows, (b, n_items) float32)`` pairs.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def fn(x: dict[str, Any]) -> Any:
        return tf.nn.log_softmax(model(x, training=False))

    inputs = examples.inputs()
    for start in range(0, len(examples), batch_size):
        rows = slice(start, min(start + batch_size, len(examples)))
        batch = {n: tf.constant(a[rows].astype(np.int32)) for n, a in inputs.items()}
        yield rows, np.asarray(fn(batch))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def blended_top_k(model: Any, examples: NextItemExamples, transitions: Transitions, *,
                  weights: Iterable[float], alphas: Iterable[float],
                  returns: Iterable[float] = (0.0,), k: int = 20, batch_size: int = 1024
                  ) -> dict[tuple[float, float, float], np.ndarray]:
    """Top-``k`` lists of every (weight, alpha, returns) mixture, the model run once.

    :param model: a Keras next-item model (not blended).
    :param examples: what to rank for.
    :param transitions: fitted on the model's training sessions.
    :param weights: the transitions' shares of the mixture, in ``[0, 1]`` (0: the model alone).
    :param alphas: pseudo-counts.
    :param returns: the session's earlier items' shares (:func:`session_returns`); a
        combination whose shares sum past 1 is left out.
    :param k: list length.
    :return: ``{(weight, alpha, returns): (n, k) int64 ids}``.
    :raises SkiffConfigError: a share outside ``[0, 1]``.
    """
    weights, alphas, returns = list(weights), list(alphas), list(returns)
    if any(not 0 <= w <= 1 for w in weights + returns):
        raise SkiffConfigError(f"blend weights {weights} and returns {returns} must be in [0, 1].")
    last = last_items(examples)
    keys = [(w, a, u) for w in weights for a in alphas for u in returns if w + u <= 1]
    out = {key: np.zeros((len(examples), k), np.int64) for key in keys}
    back = None
    for rows, logp in model_log_probs(model, examples, batch_size=batch_size):
        p_model = np.exp(logp.astype(np.float64))
        if any(u > 0 for u in returns):
            back = session_returns(examples.take(np.arange(rows.start, rows.stop)),
                                   transitions.share_)
        for a in alphas:
            p_trans = np.exp(transitions.log_probs(last[rows], a).astype(np.float64))
            for w, _, u in (key for key in keys if key[1] == a):
                mixed = (1 - w - u) * p_model + w * p_trans
                if u > 0:
                    mixed += u * back
                out[(w, a, u)][rows] = _top_k(mixed, k)
    return out


def choose(lists: dict[tuple[float, ...], np.ndarray], targets: np.ndarray, k: int = 20
           ) -> tuple[tuple[float, ...], dict[tuple[float, ...], float]]:
    """The (weight, alpha, returns) with the best MRR@k on validation examples (ties: the
    smallest shares).

    :param lists: :func:`blended_top_k`'s output on the validation examples.
    :param targets: their true next items.
    :return: the best pair and every pair's MRR@k.
    """
    from skiff.train.confidence import reciprocal_ranks

    mrr = {key: float(reciprocal_ranks(top, targets, k).mean()) for key, top in lists.items()}
    return max(mrr, key=lambda key: (mrr[key], -key[0], -key[-1])), mrr
