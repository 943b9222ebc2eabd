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
    """

    vocab: features.Vocabulary
    train: features.IntentExamples
    held: features.IntentExamples
    max_len: int

    @property
    def info(self) -> dict[str, Any]:
        at_add = self.held.after_add == 0
        return {"train_examples": len(self.train), "eval_examples": len(self.held),
                "purchase_rate_at_add": float(self.held.labels[at_add].mean()) if at_add.any() else math.nan}

    def counts(self, which: str) -> np.ndarray:
        """Token-count features of ``train`` or ``held`` (the logistic baseline's input)."""
        return features.count_features(getattr(self, which).prefixes, len(self.vocab))

    def tokens(self, which: str) -> dict[str, np.ndarray]:
        """Padded token ids of ``train`` or ``held`` (the model's input)."""
        return {"tokens": features.pad(getattr(self, which).prefixes, self.max_len)[0]}


def prepare(marts: datasets.Marts, cutoff: np.datetime64, *, max_len: int = 64) -> IntentData:
    """Prefixes at the add and after it, for the sessions with an add, split by time."""
    table = datasets.intent_table(marts)
    vocab = features.event_vocabulary()
    tokens = vocab.encode_many(table["event_tokens"])
    split = datasets.split_by_time(table["session_start_at"], cutoff)
    labels = table["has_purchase"].to_numpy(zero_copy_only=False).astype(np.int8)
    add_index = table["first_add_event_index"].to_numpy(zero_copy_only=False)
    stop = vocab.index("purchase")

    def examples(rows: np.ndarray) -> features.IntentExamples:
        return features.intent_examples(tokens.take(rows), add_index[rows], labels[rows],
                                        after_add=features.COVEO_AFTER_ADD, stop_id=stop)

    return IntentData(vocab, examples(split.train), examples(split.held_out), max_len)


def baseline_scores(data: IntentData) -> dict[str, tuple[np.ndarray, np.ndarray, float | None]]:
    """Scores of the baselines on train and held-out: ``{name: (p_train, p_held, threshold)}``."""
    x_train, x_held = data.counts("train"), data.counts("held")
    majority = baselines.MajorityClass().fit(x_train, data.train.labels)
    logreg = baselines.LogisticRegression().fit(x_train, data.train.labels)
    return {
        "majority class": (majority.predict_proba(x_train), majority.predict_proba(x_held),
                           majority.threshold),
        "logistic (counts)": (logreg.predict_proba(x_train), logreg.predict_proba(x_held), None),
    }


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
        model = models.build_intent_model(len(data.vocab))
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
