"""The next-item task end to end, as plain functions: examples, baselines, model, scores.

``RecFlow``'s steps and ``bench/bench_models.py`` call these, so the flow and the
benchmark measure the same thing. Held-out sessions are the latest by start time; each
is scored on its last item given the items before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from skiff.train import baselines, datasets, features, metrics

__all__ = ["K", "MODEL", "BLEND", "BLEND_SUCCESSORS", "NextItemData", "prepare", "baseline_top_k",
           "popular_items", "train", "with_blend", "model_top_k", "score"]

#: Cut-off of the ranked lists (MRR@K, HitRate@K).
K = 20
#: The served model's name in metric tables.
MODEL = "keras gru+copy"
#: ``(weight, alpha, returns)`` of the mixture with the last item's transitions and the
#: session's earlier items (:mod:`skiff.train.blend`), chosen on a validation split of the
#: 100k-session bench's training sessions (docs/training.md); ``(0, ..., 0)``: the model alone.
BLEND = (0.5, 5.0, 0.2)
#: Successors per item in the table a blended model carries (the rest count as unseen).
BLEND_SUCCESSORS = 64


@dataclass
class NextItemData:
    """Everything the models are fitted and scored on.

    :param vocab: SKU vocabulary (PAD=0, OOV=1) built on the training sessions.
    :param train_seqs: training sessions as item ids.
    :param train_examples: (window -> next item) examples of every training position.
    :param eval_examples: the last item of every held-out session.
    :param counts: training item counts (popularity; the popular / long-tail slices).
    :param window: items the model sees.
    """

    vocab: features.Vocabulary
    train_seqs: features.Ragged
    train_examples: features.NextItemExamples
    eval_examples: features.NextItemExamples
    counts: np.ndarray
    window: int

    @property
    def info(self) -> dict[str, Any]:
        return {"items": len(self.vocab), "train_sessions": len(self.train_seqs),
                "train_examples": len(self.train_examples),
                "eval_examples": len(self.eval_examples),
                "oov_targets": float((self.eval_examples.target == 1).mean())}


def prepare(sequences: pa.Table, cutoff: np.datetime64, *, window: int = 10,
            min_count: int = 1) -> NextItemData:
    """Split ``fct_session_sequences`` by time at ``cutoff`` and build the examples.

    :param sequences: rows with ``session_start_at`` and ``sku_sequence``.
    :param cutoff: sessions starting at or after it are held out.
    :param window: items before the target the model sees.
    :param min_count: SKUs seen fewer times in training map to OOV.
    """
    split = datasets.split_by_time(sequences["session_start_at"], cutoff)
    vocab = features.build_vocabulary(sequences["sku_sequence"].take(split.train), min_count=min_count)
    ids = vocab.encode_many(sequences["sku_sequence"])
    train_seqs, held = ids.take(split.train), ids.take(split.held_out)
    return NextItemData(
        vocab=vocab,
        train_seqs=train_seqs,
        train_examples=features.next_item_examples(train_seqs, window=window, drop_oov_targets=True),
        eval_examples=features.next_item_examples(held, window=window, positions="last"),
        counts=features.item_counts(train_seqs, len(vocab)),
        window=window,
    )


def baseline_top_k(data: NextItemData, k: int = K) -> dict[str, np.ndarray]:
    """Top-``k`` lists of the baselines (most popular, item-to-item co-occurrence)."""
    n = len(data.vocab)
    return {
        "most popular": baselines.MostPopular(n).fit(data.train_seqs).recommend(data.eval_examples, k),
        "co-occurrence": baselines.CoOccurrence(n).fit(data.train_seqs).recommend(data.eval_examples, k),
    }


def popular_items(data: NextItemData, k: int = K) -> dict[str, list]:
    """The bundle's fallback for sessions with no known SKU: the most popular baseline's list.

    :param data: the prepared data (its training sessions are counted).
    :param k: list length (at most the catalogue size).
    :return: ``{"items": [SKU, ...], "scores": [share, ...]}``, most popular first; a
        score is the item's share of the training sessions' items.
    """
    popular = baselines.MostPopular(len(data.vocab)).fit(data.train_seqs)
    ids = popular.ranking()[:k]
    total = max(int(popular.counts_[2:].sum()), 1)
    return {"items": [data.vocab.tokens[i] for i in ids],
            "scores": [round(float(popular.counts_[i]) / total, 6) for i in ids]}


def train(data: NextItemData, *, epochs: int = 6, seed: int = 42, copy: bool = True,
          blend: tuple[float, ...] = BLEND, start_from: Any = None, **fit: Any) -> Any:
    """Build and fit the Keras model (SKU embeddings + GRU, with the copy head by default), in
    mixed precision when ``SKIFF_TRAIN_MIXED_PRECISION`` says so (by default on a GPU), then
    mix its scores with the last item's transitions counted on ``data``'s training sessions
    and the session's earlier items (:func:`with_blend`; a warm start fine-tunes the
    champion's weights, never its table).

    :param blend: ``(weight, alpha[, returns])`` of the mixture (:data:`BLEND`); weight and
        returns 0: the model alone.
    :param start_from: a :class:`skiff.train.warm.StartFrom`: fine-tune the champion's weights
        for its epochs (from scratch, for ``epochs``, when its architecture differs).
    :param fit: more arguments of :func:`skiff.train.models.train_next_item` (``head``,
        ``batch_size``, ``num_sampled``, ``learning_rate``, ``callbacks``).

    :return: :class:`skiff.train.models.TrainResult`; its model computes in float32
        (:func:`skiff.train.device.float32_copy`), its params name the training policy
        and device.
    """
    from skiff.train import device, models, warm

    prior = np.log(data.counts + 1.0)
    prior -= prior.mean()
    with device.training_precision() as policy:
        model = models.build_next_item_model(len(data.vocab), max_position=data.window,
                                             item_log_prior=prior, copy=copy)
        epochs, warmed = warm.start(model, start_from, data.vocab.tokens, epochs)
        fitted = models.train_next_item(model, data.train_examples.inputs(),
                                        data.train_examples.target, epochs=epochs, seed=seed,
                                        **fit)
    fitted.model = with_blend(device.float32_copy(fitted.model), data, *blend)
    fitted.params.update(dtype_policy=policy, device=device.device_name(), blend_weight=blend[0],
                         blend_alpha=blend[1], blend_returns=blend[2] if len(blend) > 2 else 0.0,
                         **warmed)
    return fitted


def with_blend(model: Any, data: NextItemData, weight: float, alpha: float,
               returns: float = 0.0) -> Any:
    """``model`` ranking by the mixture with the last item's smoothed transitions and the
    session's earlier items, the table (:data:`BLEND_SUCCESSORS` per item) counted on
    ``data``'s training sessions and carried by the returned model
    (:func:`skiff.train.models.with_transition_blend`).

    :param model: a fitted next-item model, not blended.
    :param weight: the transitions' share, in ``[0, 1]``; with ``returns`` 0, 0 returns
        ``model`` as is.
    :param alpha: pseudo-count of the popularity prior, > 0.
    :param returns: the session's earlier items' share, ``weight + returns <= 1``.
    :return: the model to score, save and serve.
    """
    from skiff.train import blend as mixing
    from skiff.train import models

    if weight == 0 and returns == 0:
        return model
    transitions = mixing.Transitions(len(data.vocab), alpha).fit(data.train_seqs)
    successors, counts = transitions.table(BLEND_SUCCESSORS)
    return models.with_transition_blend(model, successors, counts, transitions.totals(),
                                        transitions.share_, weight=weight, alpha=alpha,
                                        returns=returns)


def model_top_k(model: Any, data: NextItemData, k: int = K) -> np.ndarray:
    """Top-``k`` lists of a fitted model on the held-out examples."""
    from skiff.train import models

    return models.predict_next_item(model, data.eval_examples.inputs(), k)[0]


def score(top: np.ndarray, data: NextItemData, k: int = K) -> dict[str, float]:
    """MRR@k, HitRate@k, coverage@k and the behavioural slices of one ranked list."""
    ex = data.eval_examples
    row = metrics.next_item_report(top, ex.target, len(data.vocab), k)
    slices = metrics.next_item_slices(top, ex.target, ex.length, data.counts, k=k)
    for name in ("short", "long", "popular", "long_tail"):
        row[f"mrr@{k} {name}"] = slices[name][f"mrr@{k}"]
        row[f"hit_rate@{k} {name}"] = slices[name][f"hit_rate@{k}"]
    return row
