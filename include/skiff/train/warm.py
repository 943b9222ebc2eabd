"""Warm start: a new model starts from the serving champion's weights, row by row across vocabularies.

An hourly run's window differs from the champion's by an hour of sessions, so fine-tuning the
champion on the new window (a couple of epochs) costs a fraction of a fit from scratch.
:func:`should_warm_start` says whether a run does (``SKIFF_TRAIN_WARM_START``, the flows'
``full_retrain`` parameter, the daily retrain); :func:`champion_weights` reads the weights out
of the champion's bundle (its SavedModel's variables carry the Keras paths);
:func:`warm_start` copies them into a freshly built model of the same architecture.

Vocabularies move (SKUs come and go), so the rows of the id-indexed weights (the item or token
embedding, the catalogue's item vectors and bias) are copied token by token: a token both
know gets the champion's row, a new token keeps its fresh initialisation (for the catalogue
bias: the popularity prior). Every other weight must have the champion's shape, else the
champion is another architecture and the run trains from scratch (the log says why).
The gate is unchanged: the run's model and the champion are scored on the run's held-out
sessions, which start after every session the champion was trained on (windows move
forward, and each run holds out its latest sessions).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from skiff.exceptions import SkiffConfigError

__all__ = ["WARM_START", "VOCAB_AXES", "StartFrom", "WarmStart", "should_warm_start",
           "champion_weights", "from_champion", "warm_start", "start"]

log = logging.getLogger(__name__)

#: Values of ``SKIFF_TRAIN_WARM_START``.
WARM_START = ("off", "on")
#: Weights indexed by vocabulary id, by Keras path: the axis of the ids.
VOCAB_AXES = {"item_embedding/embeddings": 0, "catalogue/item_vectors": 0, "catalogue/bias": 0,
              "token_embedding/embeddings": 0}
_PAD, _OOV = 0, 1


@dataclass(frozen=True)
class StartFrom:
    """The champion a run fine-tunes: its weights, vocabulary, and the epochs to fine-tune.

    :param pathspec: the champion's run (for the run's params).
    :param weights: :func:`champion_weights`.
    :param tokens: the champion's vocabulary, by id.
    :param epochs: epochs of the fine-tuning fit.
    """

    pathspec: str
    weights: Mapping[str, np.ndarray]
    tokens: Sequence[str]
    epochs: int


@dataclass(frozen=True)
class WarmStart:
    """What :func:`warm_start` copied.

    :param weights: weights copied whole.
    :param rows: vocabulary rows copied from the champion (of the largest id-indexed weight).
    :param new_rows: rows the champion did not know (kept fresh).
    """

    weights: int
    rows: int
    new_rows: int

    def as_params(self) -> dict[str, int]:
        """For the run's training params."""
        return {"warm_start_weights": self.weights, "warm_start_rows": self.rows,
                "warm_start_new_rows": self.new_rows}


def should_warm_start(setting: str, *, full_retrain: bool = False,
                      interval_end: str | datetime | None = None) -> bool:
    """Whether a run fine-tunes the champion rather than training from scratch.

    :param setting: ``SKIFF_TRAIN_WARM_START``: ``off`` or ``on``.
    :param full_retrain: the run's ``full_retrain`` parameter: train from scratch.
    :param interval_end: the run's data interval end; the run whose interval ends at 00:00
        (UTC, the DAG's timezone) retrains from scratch: the daily full retrain.
    :return: True to warm start (when there is a champion to start from).
    :raises SkiffConfigError: ``setting`` is not one of :data:`WARM_START`.
    """
    if setting not in WARM_START:
        raise SkiffConfigError(f"warm start {setting!r} is not one of {WARM_START}.")
    if setting == "off" or full_retrain:
        return False
    if interval_end:
        end = datetime.fromisoformat(interval_end) if isinstance(interval_end, str) \
            else interval_end
        if (end.hour, end.minute, end.second) == (0, 0, 0):
            return False
    return True


def champion_weights(bundle_dir: str | Path) -> dict[str, np.ndarray]:
    """The Keras weights of a bundle's SavedModel, by path (``item_embedding/embeddings``).

    :param bundle_dir: the bundle folder (:attr:`skiff.serve.LoadedModel.path`).
    :return: ``{path: values}``, the dropout layers' seed states left out.
    :raises MissingInputError: the folder holds no SavedModel.
    """
    from skiff.serve.bundle import SAVED_MODEL_DIR
    from skiff.train import models

    saved = models.load_saved_model(Path(bundle_dir) / SAVED_MODEL_DIR)
    return {v.name.removesuffix(":0"): v.numpy() for v in saved.variables
            if "seed_generator" not in v.name}


def from_champion(champion: Any, epochs: int) -> StartFrom | None:
    """What :func:`skiff.train.champion.load_champion` loaded, as a start for a new model.

    :param champion: a :class:`skiff.train.champion.Champion`, or None (no champion).
    :param epochs: epochs of the fine-tuning fit.
    :return: None without a champion, or when its weights cannot be read (logged).
    """
    if champion is None:
        return None
    try:
        weights = champion_weights(champion.model.path)
    except Exception as exc:  # noqa: BLE001  (TF raises many types: train from scratch, say why)
        log.warning("Warm start skipped: cannot read the weights of %s: %s: %s",
                    champion.record.pathspec, type(exc).__name__, exc)
        return None
    return StartFrom(champion.record.pathspec, weights, list(champion.model.codec.tokens), epochs)


def _rows(tokens: Sequence[str], champion_tokens: Sequence[str]) -> np.ndarray:
    """Champion id of each of ``tokens`` (PAD and OOV to themselves), -1 where it has none."""
    index = {t: i for i, t in enumerate(champion_tokens)}
    rows = np.array([index.get(t, -1) for t in tokens], dtype=np.int64)
    rows[_PAD], rows[_OOV] = _PAD, _OOV
    return rows


def warm_start(model: Any, weights: Mapping[str, np.ndarray], *, tokens: Sequence[str],
               champion_tokens: Sequence[str]) -> WarmStart | None:
    """Copy the champion's ``weights`` into ``model`` (in place), id-indexed ones by token.

    :param model: a freshly built model (not fitted).
    :param weights: :func:`champion_weights`.
    :param tokens: ``model``'s vocabulary, by id.
    :param champion_tokens: the champion's vocabulary, by id.
    :return: what was copied; None when the champion is another architecture (a weight is
        missing or has another shape): ``model`` is left as built.
    """
    rows = _rows(tokens, champion_tokens)
    known = rows >= 0
    plan = []
    for variable in model.weights:
        path = variable.path
        if "seed_generator" in path:
            continue
        theirs = weights.get(path)
        if theirs is None:
            log.warning("Warm start skipped: the champion has no weight %s.", path)
            return None
        axis = VOCAB_AXES.get(path)
        ours = tuple(variable.shape)
        other = [d for i, d in enumerate(ours) if i != axis]
        if axis is None and ours != theirs.shape or axis is not None and (
                len(ours) != theirs.ndim or
                other != [d for i, d in enumerate(theirs.shape) if i != axis] or
                ours[axis] != len(tokens)):
            log.warning("Warm start skipped: %s has shape %s here, %s in the champion.",
                        path, ours, theirs.shape)
            return None
        plan.append((variable, theirs, axis))
    for variable, theirs, axis in plan:
        if axis is None:
            variable.assign(theirs)
            continue
        value = np.array(variable.numpy())
        index = [slice(None)] * value.ndim
        index[axis] = known
        source = [slice(None)] * value.ndim
        source[axis] = rows[known]
        value[tuple(index)] = theirs[tuple(source)]
        variable.assign(value)
    copied = WarmStart(weights=len(plan), rows=int(known.sum()), new_rows=int((~known).sum()))
    log.info("Warm start from the champion: %s weights, %s of %s vocabulary rows (%s new).",
             copied.weights, copied.rows, len(tokens), copied.new_rows)
    return copied


def start(model: Any, start_from: StartFrom | None, tokens: Sequence[str], epochs: int
          ) -> tuple[int, dict[str, Any]]:
    """Warm-start ``model`` from ``start_from`` if given: the epochs to fit and the run's params.

    :param model: the freshly built model.
    :param start_from: the champion to start from, or None (train from scratch).
    :param tokens: ``model``'s vocabulary, by id.
    :param epochs: epochs of a fit from scratch.
    :return: ``(epochs, params)``: the champion's fine-tuning epochs when its weights were
        copied; params name the champion (``warm_start_from``, None from scratch).
    """
    if start_from is None:
        return epochs, {"warm_start_from": None}
    copied = warm_start(model, start_from.weights, tokens=tokens,
                        champion_tokens=start_from.tokens)
    if copied is None:
        return epochs, {"warm_start_from": None}
    return start_from.epochs, {"warm_start_from": start_from.pathspec, **copied.as_params()}
