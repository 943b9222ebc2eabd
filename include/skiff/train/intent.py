"""The shopper-intent task end to end, as plain functions: examples, baselines, model, scores.

Cart abandonment as in the Coveo challenge: for sessions with an add-to-cart, given the
event tokens up to the add (and 2/4/6/8/10 events after it), will the session end in a
purchase? ``IntentFlow``'s steps and ``bench/bench_models.py`` both call these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skiff.train import baselines, datasets, features, metrics

__all__ = ["MODEL", "IntentData", "prepare", "baseline_scores", "train", "model_scores", "score"]

#: The served model's name in metric tables.
MODEL = "keras gru (tokens)"


@dataclass
class IntentData:
    """Examples of the intent task, split by time.

    :param vocab: the event-token vocabulary.
    :param train: training prefixes (at the add and after it) with labels.
    :param held: held-out prefixes with labels.
    :param max_len: tokens kept per prefix (the latest).
    :param train_features: ``(len(train), len(SESSION_FEATURES))`` session features known at
        the add (:func:`skiff.train.features.intent_session_features`), or None: tokens only.
    :param held_features: the same for ``held``.
    """

    vocab: features.Vocabulary
    train: features.IntentExamples
    held: features.IntentExamples
    max_len: int
    train_features: np.ndarray | None = None
    held_features: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Session features per example (0: the model sees tokens only, and is servable)."""
        return 0 if self.train_features is None else self.train_features.shape[1]

    @property
    def info(self) -> dict[str, Any]:
        at_add = self.held.after_add == 0
        return {"train_examples": len(self.train), "eval_examples": len(self.held),
                "purchase_rate_at_add": float(self.held.labels[at_add].mean()) if at_add.any() else math.nan}

    def counts(self, which: str, *, with_features: bool = True) -> np.ndarray:
        """Token-count features of ``train`` or ``held`` (the logistic baseline's input),
        then the session features when the data has them and ``with_features``."""
        counts = features.count_features(getattr(self, which).prefixes, len(self.vocab))
        extra = getattr(self, f"{which}_features")
        return counts if extra is None or not with_features else np.c_[counts, extra]

    def tokens(self, which: str) -> dict[str, np.ndarray]:
        """Padded token ids of ``train`` or ``held`` (the model's input), and the session
        features when the data has them."""
        inputs = {"tokens": features.pad(getattr(self, which).prefixes, self.max_len)[0]}
        extra = getattr(self, f"{which}_features")
        if extra is not None:
            inputs["features"] = extra
        return inputs


def prepare(marts: datasets.Marts, cutoff: np.datetime64, *, max_len: int = 64,
            session_features: bool = False) -> IntentData:
    """Prefixes at the add and after it, for the sessions with an add, split by time.

    :param session_features: also compute :data:`skiff.train.features.SESSION_FEATURES`
        for every example (the model and the logistic baseline then both see them); off by
        default, since the served model takes event tokens only.
    """
    table = datasets.intent_table(marts)
    vocab = features.event_vocabulary()
    tokens = vocab.encode_many(table["event_tokens"])
    split = datasets.split_by_time(table["session_start_at"], cutoff)
    labels = table["has_purchase"].to_numpy(zero_copy_only=False).astype(np.int8)
    add_index = table["first_add_event_index"].to_numpy(zero_copy_only=False)
    stop = vocab.index("purchase")
    per_session = _session_features(table, marts.products, tokens, add_index, vocab) \
        if session_features else None

    def examples(rows: np.ndarray) -> tuple[features.IntentExamples, np.ndarray | None]:
        ex = features.intent_examples(tokens.take(rows), add_index[rows], labels[rows],
                                      after_add=features.COVEO_AFTER_ADD, stop_id=stop)
        return ex, None if per_session is None else per_session[rows][ex.session]

    (train_ex, train_x), (held_ex, held_x) = examples(split.train), examples(split.held_out)
    return IntentData(vocab, train_ex, held_ex, max_len, train_x, held_x)


def _session_features(table: pa.Table, products: pa.Table, tokens: features.Ragged,
                      add_index: np.ndarray, vocab: features.Vocabulary) -> np.ndarray:
    """:func:`skiff.train.features.intent_session_features` of every row of ``table``."""
    at_add = tokens.head(add_index)
    rows = np.repeat(np.arange(len(at_add)), at_add.lengths)
    details = np.bincount(rows[at_add.values == vocab.index("detail")], minlength=len(at_add))
    skus = table["sku_sequence"].combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(skus), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(skus).dictionary_encode().indices.to_numpy(zero_copy_only=False)
    items = features.Ragged.from_lengths(flat, lengths)
    seconds = pc.fill_null(table["seconds_to_first_add"], 0.0).to_numpy(zero_copy_only=False)
    return features.intent_session_features(
        seconds, details, datasets.first_item_price(skus, products),
        features.first_item_views(items, details))


def baseline_scores(data: IntentData) -> dict[str, tuple[np.ndarray, np.ndarray, float | None]]:
    """Scores of the baselines on train and held-out: ``{name: (p_train, p_held, threshold)}``.

    ``logistic (counts)`` sees what the model sees: the token counts, and the session
    features when the data has them (then ``logistic (counts only)`` is the tokens-only one).
    """
    x_train, x_held = data.counts("train"), data.counts("held")
    majority = baselines.MajorityClass().fit(x_train, data.train.labels)
    logreg = baselines.LogisticRegression().fit(x_train, data.train.labels)
    out = {
        "majority class": (majority.predict_proba(x_train), majority.predict_proba(x_held),
                           majority.threshold),
        "logistic (counts)": (logreg.predict_proba(x_train), logreg.predict_proba(x_held), None),
    }
    if data.n_features:
        c_train = data.counts("train", with_features=False)
        only = baselines.LogisticRegression().fit(c_train, data.train.labels)
        out["logistic (counts only)"] = (only.predict_proba(c_train), only.predict_proba(
            data.counts("held", with_features=False)), None)
    return out


def train(data: IntentData, *, epochs: int = 8, seed: int = 42, start_from: Any = None,
          **fit: Any) -> Any:
    """Build and fit the Keras sequence model on event tokens, in mixed precision when
    ``SKIFF_TRAIN_MIXED_PRECISION`` says so (by default on a GPU).

    :param start_from: a :class:`skiff.train.warm.StartFrom`: fine-tune the champion's weights
        for its epochs (from scratch, for ``epochs``, when its architecture differs).
    :param fit: more arguments of :func:`skiff.train.models.train_intent` (``batch_size``,
        ``learning_rate``, ``callbacks``).
    :return: :class:`skiff.train.models.TrainResult`; its model computes in float32
        (:func:`skiff.train.device.float32_copy`), its params name the training policy
        and device.
    """
    from skiff.train import device, models, warm

    with device.training_precision() as policy:
        extra = data.train_features
        model = models.build_intent_model(
            len(data.vocab), n_features=data.n_features,
            feature_mean=None if extra is None else extra.mean(axis=0),
            feature_variance=None if extra is None else np.maximum(extra.var(axis=0), 1e-6))
        epochs, warmed = warm.start(model, start_from, data.vocab.tokens, epochs)
        fitted = models.train_intent(model, data.tokens("train"), data.train.labels,
                                     epochs=epochs, seed=seed, **fit)
    fitted.model = device.float32_copy(fitted.model)
    fitted.params.update(dtype_policy=policy, device=device.device_name(), **warmed)
    return fitted


def model_scores(model: Any, data: IntentData) -> tuple[np.ndarray, np.ndarray, None]:
    """A fitted model's scores on train and held-out (threshold chosen on train)."""
    from skiff.train import models

    return models.predict_intent(model, data.tokens("train")), models.predict_intent(model, data.tokens("held")), None


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return metrics.roc_auc(y, p) if 0 < y.sum() < len(y) else math.nan


def score(data: IntentData, p_train: np.ndarray, p_held: np.ndarray,
          threshold: float | None = None) -> dict[str, float]:
    """ROC-AUC (pooled, at the add, at add+k), F1/precision/recall at the threshold that
    maximises F1 on training data, and the Coveo weighted micro-F1 at 0.5."""
    held = data.held
    thr = metrics.best_f1_threshold(data.train.labels, p_train) if threshold is None else threshold
    s = metrics.binary_scores(held.labels, p_held, thr)
    at = held.after_add == 0
    row: dict[str, float] = {
        "roc_auc": _auc(held.labels, p_held),
        "roc_auc@add": _auc(held.labels[at], p_held[at]),
        "f1": s.f1, "precision": s.precision, "recall": s.recall, "threshold": float(thr),
        "weighted_micro_f1@0.5": metrics.weighted_micro_f1(held.labels, p_held >= 0.5, held.after_add),
    }
    for k in features.COVEO_AFTER_ADD[1:]:
        rows = held.after_add == k
        row[f"roc_auc@add+{k}"] = _auc(held.labels[rows], p_held[rows])
    per_offset = [row["roc_auc@add"]] + [row[f"roc_auc@add+{k}"] for k in features.COVEO_AFTER_ADD[1:]]
    row["roc_auc mean over offsets"] = float(np.nanmean(per_offset))
    return row
