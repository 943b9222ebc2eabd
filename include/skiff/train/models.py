"""The two Keras models: build, train, predict without ``model.predict``, export, load.

- **Intent** (:func:`build_intent_model`): event-token ids -> masked GRU/LSTM, with the
  token counts computed in-graph, and optional extra session features -> P(purchase).
- **Next item** (:func:`build_next_item_model`): the session's last ``max_len`` item ids
  and its first item -> GRU/LSTM session vector -> logits over the catalogue, plus a
  *copy* score for each item already in the session (returns to the first product, steps
  back), like pointer/repeat-aware session recommenders. :func:`train_next_item` fits it on a
  sampled softmax by default (:data:`HEADS`); the fitted model scores the whole catalogue.
  :func:`with_transition_blend` wraps a fitted one to rank by the mixture with the last
  item's transitions (:mod:`skiff.train.blend`), the table carried as weights.

Both take right-padded int32 ids of any length (:func:`skiff.train.features.pad`; 0 is padding).
GPU-ready: the recurrent encoders meet Keras 3's cuDNN conditions and the fit loops refuse
ids cuDNN would not take (:mod:`skiff.train.device`); the output layers compute in float32,
so the models build and train under a mixed-precision policy; :func:`train_intent` and
:func:`train_next_item` feed a ``tf.data`` pipeline (:mod:`skiff.train.pipeline`).
TensorFlow and Keras are imported inside the functions, so importing this module is cheap.

Serving: :func:`export_saved_model` writes a TF SavedModel whose ``serve`` signature the
SageMaker TensorFlow container and the local server load; :func:`predict_intent` and
:func:`predict_next_item` run a Keras model or such a reloaded SavedModel through a traced
``tf.function`` (no ``model.predict`` per request).
"""

# Longer than ~400 lines: both models' build, fit (the sampled-softmax trainer included),
# traced predict and SavedModel export share the private helpers here; splitting by model
# would copy them.

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skiff.exceptions import DataContractError, MissingInputError, SkiffConfigError

if TYPE_CHECKING:
    import keras

__all__ = [
    "CELLS",
    "HEADS",
    "NUM_SAMPLED",
    "TrainResult",
    "build_intent_model",
    "build_next_item_model",
    "train_intent",
    "train_next_item",
    "sampling_log_q",
    "predict_intent",
    "predict_next_item",
    "with_transition_blend",
    "save_keras",
    "load_keras",
    "export_saved_model",
    "load_saved_model",
]

log = logging.getLogger(__name__)

#: Recurrent cells the builders accept.
CELLS = ("gru", "lstm")
#: Training losses of the next-item model: ``sampled`` softmax (the default: the target, the
#: session's items and :data:`NUM_SAMPLED` popularity draws, logQ-corrected) or the ``full``
#: softmax over the catalogue. Either way the fitted model scores the whole catalogue.
HEADS = ("sampled", "full")
#: Batches per length-sorted chunk of the training pipeline (:func:`skiff.train.pipeline.batches`):
#: a batch of short sessions steps the recurrent layer through its longest row, not the set's.
BUCKET = 50
#: Catalogue draws per batch of the sampled softmax.
NUM_SAMPLED = 2048
#: Draws follow ``(target count + 1) ** SAMPLE_POWER`` (word2vec's smoothed unigram).
SAMPLE_POWER = 0.75


@dataclass
class TrainResult:
    """A fitted model and how training went.

    :param model: the fitted Keras model.
    :param history: per-epoch metrics (``loss``, ``val_loss``, ...), as lists of floats.
    :param seconds: wall time of ``fit``.
    :param params: the training parameters used (for run artifacts).
    """

    model: Any
    history: dict[str, list[float]]
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)


def _check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise SkiffConfigError(f"cell={cell!r} is not supported; use one of {CELLS}.")


def _rnn(cell: str, units: int, **kwargs: Any) -> Any:
    import keras

    return (keras.layers.GRU if cell == "gru" else keras.layers.LSTM)(units, **kwargs)


def build_intent_model(
    vocab_size: int,
    *,
    n_features: int = 0,
    feature_mean: np.ndarray | None = None,
    feature_variance: np.ndarray | None = None,
    embedding_dim: int = 16,
    units: int = 32,
    cell: str = "gru",
    dropout: float = 0.1,
    token_counts: bool = True,
) -> keras.Model:
    """Shopper intent: a masked recurrent net over event tokens -> P(purchase).

    Inputs (by name): ``tokens`` int32 ``(batch, time)`` right-padded ids, and when
    ``n_features > 0`` also ``features`` float32 ``(batch, n_features)``.
    Output: ``(batch, 1)`` probability.

    :param vocab_size: size of the event vocabulary (PAD and OOV included).
    :param n_features: extra per-session features (0: tokens only, servable from tokens).
    :param feature_mean: per-feature mean for the built-in normalisation (training data).
    :param feature_variance: per-feature variance, as ``feature_mean``.
    :param embedding_dim: token embedding size.
    :param units: recurrent units.
    :param cell: ``gru`` or ``lstm``.
    :param dropout: dropout before the output layer, in ``[0, 1)``.
    :param token_counts: also feed ``log1p`` token counts and length (computed in-graph),
        so the net starts from what the logistic baseline sees.
    :return: an uncompiled model (``train_intent`` compiles it).
    :raises SkiffConfigError: a size is not positive, or ``cell`` is unknown.
    """
    import keras

    from skiff.train.layers import TokenCounts

    _check_cell(cell)
    _check_sizes(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units)
    _check_dropout(dropout)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    inputs: dict[str, Any] = {"tokens": tokens}
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="token_embedding")(
        tokens)
    parts = [_rnn(cell, units, name="encoder")(x)]
    if token_counts:
        parts.append(TokenCounts(vocab_size, name="token_counts")(tokens))
    if n_features:
        features = keras.Input(shape=(n_features,), dtype="float32", name="features")
        inputs["features"] = features
        norm = keras.layers.Normalization(
            mean=feature_mean, variance=feature_variance, name="feature_norm") \
            if feature_mean is not None else keras.layers.Identity(name="feature_norm")
        parts.append(norm(features))
    h = keras.layers.Concatenate(name="joined")(parts) if len(parts) > 1 else parts[0]
    h = keras.layers.Dense(units, activation="relu", name="hidden")(h)
    h = keras.layers.Dropout(dropout, name="dropout")(h)
    # float32 whatever the policy: a mixed-precision model's output stays numerically safe
    out = keras.layers.Dense(1, activation="sigmoid", name="probability", dtype="float32")(h)
    return keras.Model(inputs, out, name="skiff_intent")


def build_next_item_model(
    n_items: int,
    *,
    embedding_dim: int = 32,
    units: int = 64,
    cell: str = "gru",
    dropout: float = 0.4,
    copy: bool = True,
    max_position: int = 10,
    item_log_prior: np.ndarray | None = None,
) -> keras.Model:
    """Next item: item embeddings -> recurrent session vector -> logits over the catalogue.

    Inputs (by name): ``items`` int32 ``(batch, time)`` right-padded ids of the last items
    seen; ``first`` int32 ``(batch,)`` the session's first item (its anchor, which the
    window may have dropped). Output: ``(batch, n_items)`` logits (PAD and OOV masked).

    With ``copy``, each item already in the session (and the first item) also gets a
    learnt score from its embedding, its position from the end and the session vector,
    added to its logit: this is how the model learns returns and steps back, which
    item-to-item co-occurrence cannot see.

    :param n_items: catalogue size (vocabulary, PAD and OOV included).
    :param embedding_dim: item embedding size.
    :param units: recurrent units.
    :param cell: ``gru`` or ``lstm``.
    :param dropout: dropout on the embeddings and the session vector, in ``[0, 1)``.
    :param copy: add the copy scores of in-session items.
    :param max_position: positions from the end that get their own copy embedding.
    :param item_log_prior: ``(n_items,)`` initial output bias, e.g. log training popularity.
    :return: an uncompiled model (``train_next_item`` compiles it, or the sampled-softmax
        model it builds around it).
    :raises SkiffConfigError: a size is not positive, or ``cell`` is unknown.
    """
    import keras

    from skiff.train.layers import CatalogueLogits, CopyCandidates, FirstStep

    _check_cell(cell)
    _check_sizes(n_items=n_items, embedding_dim=embedding_dim, units=units,
                 max_position=max_position)
    _check_dropout(dropout)
    if item_log_prior is not None and np.shape(item_log_prior) != (n_items,):
        raise DataContractError(f"item_log_prior has shape {np.shape(item_log_prior)}; "
                                f"expected ({n_items},).")
    items = keras.Input(shape=(None,), dtype="int32", name="items")
    first = keras.Input(shape=(), dtype="int32", name="first")
    embed = keras.layers.Embedding(n_items, embedding_dim, mask_zero=True, name="item_embedding")
    e_items = embed(items)
    e_first = embed(keras.layers.Reshape((1,), name="first_as_seq")(first))
    e_first = FirstStep(name="first_vector")(e_first)
    x = keras.layers.SpatialDropout1D(dropout, name="embedding_dropout")(e_items)
    state = _rnn(cell, units, name="encoder")(x)
    session = keras.layers.Concatenate(name="session_parts")([state, e_first])
    session = keras.layers.Dense(units, activation="tanh", name="session")(session)
    session = keras.layers.Dropout(dropout, name="session_dropout")(session)
    generated = _catalogue_head(session, n_items)
    if not copy:
        logits = CatalogueLogits(n_items, name="logits", dtype="float32")(generated)
        return _with_prior(keras.Model({"items": items, "first": first}, logits,
                                       name="skiff_next_item"), item_log_prior)
    # copy scores: each item of the window, then the first item, scored from its embedding,
    # its position from the end and the session vector
    cand_ids, cand = CopyCandidates(max_position, name="copy_candidates")(
        items, first, e_items, e_first, session)
    c = keras.layers.Dense(units // 2, activation="tanh", name="copy_hidden")(cand)
    scores = keras.layers.Dense(1, name="copy_score")(c)
    scores = keras.layers.Reshape((-1,), name="copy_scores")(scores)
    logits = CatalogueLogits(n_items, name="logits", dtype="float32")(
        generated, cand_ids, scores)
    return _with_prior(keras.Model({"items": items, "first": first}, logits,
                                   name="skiff_next_item"), item_log_prior)


def with_transition_blend(model: keras.Model, successors: np.ndarray, counts: np.ndarray,
                          totals: np.ndarray, share: np.ndarray, *, weight: float,
                          alpha: float, returns: float = 0.0) -> keras.Model:
    """The fitted next-item ``model``'s distribution mixed with the last item's smoothed
    transition probabilities and the session's earlier items
    (:class:`skiff.train.layers.TransitionBlend`), for ranking only.

    The result shares ``model``'s layers and adds the transition table as non-trainable
    weights (saved, exported and served with it); its output is the log of the mixture (so
    its softmax is the mixture). Train ``model``, not the result.

    :param model: a next-item model (inputs ``items`` and ``first``).
    :param successors: ``(n_items, m)`` each item's most frequent training successors
        (-1: none); ``counts`` their counts.
    :param totals: ``(n_items,)`` each item's training transitions.
    :param share: ``(n_items,)`` each item's share of the training items.
    :param weight: the transitions' share of the mixture, in ``[0, 1]`` (0: the model's own
        ranking).
    :param alpha: pseudo-count of the popularity prior, > 0.
    :param returns: the session's earlier items' share (:func:`skiff.train.blend.session_returns`,
        with its :data:`~skiff.train.blend.ANCHOR` and :data:`~skiff.train.blend.STEP_BACK`);
        ``weight + returns <= 1``.
    :return: the blended model.
    :raises DataContractError: the arrays do not match the model's catalogue.
    :raises SkiffConfigError: ``weight`` or ``returns`` outside ``[0, 1]``, their sum past 1,
        or ``alpha <= 0``.
    """
    import keras

    from skiff.train.blend import ANCHOR, STEP_BACK
    from skiff.train.layers import TransitionBlend

    n_items = int(model.output.shape[-1])
    if np.shape(successors) != np.shape(counts) or np.ndim(successors) != 2 or \
            np.shape(successors)[0] != n_items or np.shape(totals) != (n_items,) or \
            np.shape(share) != (n_items,):
        raise DataContractError(
            f"transition table shapes {np.shape(successors)}, {np.shape(counts)}, "
            f"{np.shape(totals)}, {np.shape(share)} do not match a catalogue of {n_items}.")
    if not 0 <= weight <= 1 or not 0 <= returns <= 1 or weight + returns > 1 or alpha <= 0:
        raise SkiffConfigError(f"blend weight={weight} and returns={returns} must be in [0, 1] "
                               f"with a sum <= 1, and alpha={alpha} > 0.")
    layer = TransitionBlend(n_items, int(np.shape(successors)[1]), weight, alpha, returns,
                            ANCHOR, STEP_BACK, name="transition_blend", dtype="float32")
    out = layer(model.output, model.input["items"], model.input["first"])
    for variable, value in ((layer.successors, successors), (layer.counts, counts),
                            (layer.totals, totals), (layer.share, share)):
        variable.assign(np.asarray(value, variable.dtype))
    return keras.Model(model.input, out, name=model.name)


def _catalogue_head(session: Any, n_items: int) -> Any:
    """Logits of every item from the session vector (the sampled softmax trains the same
    item vectors and bias a row at a time: :func:`_sampled_trainer`)."""
    from skiff.train.layers import CatalogueHead

    return CatalogueHead(n_items, name="catalogue")(session)


def _with_prior(model: Any, item_log_prior: np.ndarray | None) -> Any:
    """Start the catalogue bias at ``item_log_prior`` (a weight, not a config value)."""
    if item_log_prior is not None:
        model.get_layer("catalogue").bias.assign(np.asarray(item_log_prior, np.float32))
    return model


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise SkiffConfigError(f"{name}={value!r} must be a positive integer.")


def _check_sequences(inputs: Mapping[str, np.ndarray]) -> None:
    """Padded id inputs (2-D integers) must be right-padded, none empty: what cuDNN takes."""
    from skiff.train.device import check_right_padded

    for name, value in inputs.items():
        value = np.asarray(value)
        if value.ndim == 2 and np.issubdtype(value.dtype, np.integer):
            check_right_padded(name, value)


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise SkiffConfigError(f"dropout={dropout} must be in [0, 1).")


def _fit(model: Any, inputs: Mapping[str, np.ndarray], y: np.ndarray, *, loss: Any,
         metrics: list[Any], epochs: int, batch_size: int, learning_rate: float,
         validation: tuple[Mapping[str, np.ndarray], np.ndarray] | None, seed: int | None,
         verbose: int, callbacks: list[Any] | None, trainer: Any = None,
         bucket: int = BUCKET, lazy: bool = False) -> TrainResult:
    """Fit ``trainer`` (default: ``model``; else a model around ``model``'s layers with its own
    loss, taking ``y`` as the extra input ``target`` too) and return ``model`` fitted, with
    Adam (``lazy``: :class:`skiff.train.optimizers.LazyAdam`)."""
    import keras

    from skiff.train import pipeline

    _check_sizes(epochs=epochs, batch_size=batch_size)
    if learning_rate <= 0:
        raise SkiffConfigError(f"learning_rate={learning_rate} must be > 0.")
    n = len(y)  # pipeline.batches checks every input has n rows and n > 0
    _check_sequences(inputs)
    if validation:
        _check_sequences(validation[0])
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if trainer is not None:
        trainer = trainer()  # built after seeding: its first draws repeat too
        inputs = {**inputs, "target": y}
        if validation:
            validation = ({**validation[0], "target": validation[1]}, validation[1])
    fitting = trainer if trainer is not None else model
    train = pipeline.batches(inputs, y, batch_size=batch_size, seed=seed, bucket=bucket)
    held = pipeline.batches(validation[0], np.asarray(validation[1], dtype=y.dtype),
                            batch_size=batch_size, shuffle=False) if validation else None
    # jit_compile=False: XLA's compile time outweighs its gain for these small models on CPU
    # (and Keras turns it off anyway where a recurrent layer runs on cuDNN)
    if lazy:
        from skiff.train.optimizers import LazyAdam

        optimizer = LazyAdam(learning_rate)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    fitting.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=False)
    began = time.perf_counter()
    fitted = fitting.fit(train, epochs=epochs, validation_data=held, verbose=verbose,
                       callbacks=callbacks, shuffle=False)  # the pipeline shuffles
    seconds = time.perf_counter() - began
    history = {k: [float(v) for v in vals] for k, vals in fitted.history.items()}
    log.info("Trained %s on %s examples in %.1f s: %s", model.name, n, seconds,
             {k: round(v[-1], 4) for k, v in history.items()})
    params = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
              "seed": seed, "bucket": bucket}
    return TrainResult(model, history, seconds, params)


def train_intent(
    model: keras.Model,
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    validation: tuple[Mapping[str, np.ndarray], np.ndarray] | None = None,
    seed: int | None = 42,
    verbose: int = 0,
    callbacks: list[Any] | None = None,
    bucket: int = BUCKET,
) -> TrainResult:
    """Compile (Adam, binary cross-entropy, AUC) and fit the intent model.

    :param model: from :func:`build_intent_model`.
    :param inputs: ``{"tokens": (n, time) int32[, "features": (n, f) float32]}``.
    :param labels: ``(n,)`` 0/1 purchase labels.
    :param epochs: passes over the data.
    :param batch_size: examples per step.
    :param learning_rate: Adam's learning rate.
    :param validation: optional ``(inputs, labels)`` scored after each epoch.
    :param seed: seeds Python, numpy and TensorFlow (global) and the shuffling of the batches
        (:func:`skiff.train.pipeline.batches`) for repeatable runs; None: don't.
    :param verbose: Keras verbosity (0 silent).
    :param callbacks: extra Keras callbacks (e.g. a W&B logger).
    :param bucket: batches per length-sorted chunk (:func:`skiff.train.pipeline.batches`;
        0: batches of random lengths, padded to the longest row of the set).
    :return: the fitted model, its history and timing.
    :raises SkiffConfigError: a training parameter is out of range.
    :raises DataContractError: inputs and labels disagree in length, there are none, or the
        token ids are not right-padded (an empty row included).
    """
    import keras

    y = np.asarray(labels, dtype=np.float32)
    return _fit(model, inputs, y, loss="binary_crossentropy",
                metrics=[keras.metrics.AUC(name="auc")], epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, validation=validation, seed=seed, verbose=verbose,
                callbacks=callbacks, bucket=bucket)


def train_next_item(
    model: keras.Model,
    inputs: Mapping[str, np.ndarray],
    targets: np.ndarray,
    *,
    epochs: int = 6,
    batch_size: int = 512,
    learning_rate: float = 5e-3,
    head: str = "sampled",
    num_sampled: int = NUM_SAMPLED,
    validation: tuple[Mapping[str, np.ndarray], np.ndarray] | None = None,
    seed: int | None = 42,
    verbose: int = 0,
    callbacks: list[Any] | None = None,
    bucket: int = BUCKET,
) -> TrainResult:
    """Compile (Adam, softmax cross-entropy) and fit the next-item model.

    ``head="sampled"`` (the default) trains on a sampled softmax: each batch's loss is over
    the targets, the sessions' own items and ``num_sampled`` catalogue draws by target
    popularity, logQ-corrected (:class:`skiff.train.layers.SampledCatalogueLogits`), which
    costs a fraction of the ``full`` softmax over the catalogue. The returned model is the
    same either way, and scores the whole catalogue.

    :param model: from :func:`build_next_item_model`.
    :param inputs: ``{"items": (n, time) int32, "first": (n,) int32}``
        (:meth:`skiff.train.features.NextItemExamples.inputs`).
    :param targets: ``(n,)`` next item ids (drop OOV targets for training).
    :param epochs: passes over the data.
    :param batch_size: examples per step.
    :param learning_rate: Adam's learning rate.
    :param head: ``sampled`` or ``full`` (:data:`HEADS`).
    :param num_sampled: catalogue draws per batch of the sampled softmax.
    :param validation: optional ``(inputs, targets)`` scored after each epoch (with the
        training loss: sampled, for the sampled head).
    :param seed: seeds Python, numpy and TensorFlow (global) and the batch shuffling; None: don't.
    :param verbose: Keras verbosity (0 silent).
    :param callbacks: extra Keras callbacks.
    :param bucket: batches per length-sorted chunk, as :func:`train_intent`'s (0: none).
        Windows are mostly short (3.6 items on average at the real dataset's size, 9% full),
        so like-length batches run the recurrent layer over a few steps, not ten: at 60,002
        SKUs 12,900 -> 20,000 examples/s (``docs/training.md``).
    :return: the fitted model, its history and timing (the full head also tracks hit_rate@20).
    :raises SkiffConfigError: a training parameter is out of range, or ``head`` is unknown.
    :raises DataContractError: inputs and targets disagree in length, there are none, the
        item ids are not right-padded (an empty row included), or a target is not an id of
        the catalogue.
    """
    import keras

    if head not in HEADS:
        raise SkiffConfigError(f"head={head!r} is not supported; use one of {HEADS}.")
    y = np.asarray(targets, dtype=np.int32)
    if head == "full":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return _fit(model, inputs, y, loss=loss,
                    metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=20,
                                                                         name="hit_rate@20")],
                    epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                    validation=validation, seed=seed, verbose=verbose, callbacks=callbacks,
                    bucket=bucket)
    from skiff.train.layers import positive_first_loss

    _check_sizes(num_sampled=num_sampled)
    n_items = model.get_layer("catalogue").n_items
    if y.size and (y.min() < 0 or y.max() >= n_items):
        raise DataContractError(f"Targets must be item ids in [0, {n_items}); got "
                                f"[{y.min()}, {y.max()}].")
    fitted = _fit(model, inputs, y, loss=positive_first_loss, metrics=[], epochs=epochs,
                  batch_size=batch_size, learning_rate=learning_rate, validation=validation,
                  seed=seed, verbose=verbose, callbacks=callbacks, bucket=bucket,
                  trainer=lambda: _sampled_trainer(model, y, num_sampled), lazy=True)
    fitted.params.update(head=head, num_sampled=num_sampled)
    return fitted


def sampling_log_q(targets: np.ndarray, n_items: int, power: float = SAMPLE_POWER) -> np.ndarray:
    """Log probabilities of the sampled softmax's draws: ``(count + 1) ** power`` of each
    item as a target, normalised; PAD and OOV (ids 0, 1) are never drawn (``-inf``).

    :param targets: training target ids.
    :param n_items: catalogue size.
    :param power: < 1 flattens popularity (more tail items drawn).
    :return: ``(n_items,)`` float64.
    """
    weight = (np.bincount(targets, minlength=n_items)[:n_items] + 1.0) ** power
    weight[:2] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(weight / weight.sum())


def _sampled_trainer(model: Any, targets: np.ndarray, num_sampled: int) -> Any:
    """A model around ``model``'s layers (shared weights) whose output is the sampled
    softmax's logits, with the extra input ``target``."""
    import keras

    from skiff.train.layers import SampledCatalogueLogits

    catalogue = model.get_layer("catalogue")
    target = keras.Input(shape=(), dtype="int32", name="target")
    parts = [model.get_layer("session_dropout").output, target]
    if any(layer.name == "copy_candidates" for layer in model.layers):
        parts += [model.get_layer("copy_candidates").output[0],
                  model.get_layer("copy_scores").output]
    logits = SampledCatalogueLogits(catalogue, sampling_log_q(targets, catalogue.n_items),
                                    num_sampled, name="sampled_logits", dtype="float32")(*parts)
    return keras.Model({**model.input, "target": target}, logits, name=f"{model.name}_sampled")


# --------------------------------------------------------------------------- inference

# traced inference functions per model object (weak keys: they die with the model)
_TRACED: weakref.WeakKeyDictionary[Any, dict[Any, Callable[..., Any]]] = \
    weakref.WeakKeyDictionary()


def _is_keras(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _traced(model: Any, key: Any, build: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    fns = _TRACED.setdefault(model, {})
    if key not in fns:
        fns[key] = build()
    return fns[key]


def _batches(inputs: Mapping[str, np.ndarray], batch_size: int) -> Any:
    n = len(next(iter(inputs.values())))
    for lo in range(0, n, batch_size):
        yield {k: v[lo:lo + batch_size] for k, v in inputs.items()}


def _check_inputs(inputs: Mapping[str, np.ndarray], names: tuple[str, ...]) -> dict[str, Any]:
    missing = [n for n in names if n not in inputs]
    if missing:
        raise DataContractError(f"Inputs lack {missing}; got {sorted(inputs)}.")
    arrays = {n: np.asarray(inputs[n]) for n in names}
    lengths = {n: len(a) for n, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataContractError(f"Inputs have different numbers of rows: {lengths}.")
    return arrays


def predict_intent(model: Any, inputs: Mapping[str, np.ndarray], *,
                   batch_size: int = 4096) -> np.ndarray:
    """P(purchase) for each row, from a Keras intent model or its reloaded SavedModel.

    Runs a ``tf.function`` traced once per model (variable batch and length), not
    ``model.predict``, so a server can call it per request cheaply.

    :param model: a model from :func:`build_intent_model` / :func:`load_keras`, or a
        SavedModel from :func:`load_saved_model`.
    :param inputs: ``{"tokens": (n, time) int32[, "features": (n, f)]}``.
    :param batch_size: rows per call.
    :return: ``(n,)`` float32 probabilities.
    :raises DataContractError: an input is missing or the row counts differ.
    """
    import tensorflow as tf

    names = ("tokens", "features") if "features" in inputs else ("tokens",)
    arrays = _check_inputs(inputs, names)
    arrays["tokens"] = arrays["tokens"].astype(np.int32)
    if "features" in arrays:
        arrays["features"] = arrays["features"].astype(np.float32)
    if _is_keras(model):
        def build() -> Callable[..., Any]:
            spec = {"tokens": tf.TensorSpec((None, None), tf.int32)}
            if "features" in arrays:
                spec["features"] = tf.TensorSpec((None, arrays["features"].shape[1]), tf.float32)
            return tf.function(lambda x: {"probability": tf.reshape(model(x, training=False),
                                                                    [-1])},
                               input_signature=[spec])
        fn = _traced(model, ("intent", tuple(names)), build)
    else:
        fn = _serve(model)
    out = [np.asarray(fn(b)["probability"]).reshape(-1) for b in _batches(arrays, batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def predict_next_item(model: Any, inputs: Mapping[str, np.ndarray], k: int = 20, *,
                      batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` next items and their probabilities, best first.

    Keras models run a traced ``tf.function`` (softmax + ``top_k`` in-graph); a reloaded
    SavedModel runs its ``serve`` signature, which returns its export-time ``k`` items
    (``k`` here must not exceed it).

    :param model: a next-item model, or a SavedModel from :func:`load_saved_model`.
    :param inputs: ``{"items": (n, time) int32, "first": (n,) int32}``.
    :param k: list length.
    :param batch_size: rows per call.
    :return: ``(items, scores)``: ``(n, k)`` int32 ids and float32 probabilities.
    :raises SkiffConfigError: ``k < 1`` or larger than the SavedModel's lists.
    :raises DataContractError: an input is missing or the row counts differ.
    """
    import tensorflow as tf

    _check_sizes(k=k)
    arrays = {n: a.astype(np.int32) for n, a in _check_inputs(inputs, ("items", "first")).items()}
    if _is_keras(model):
        def build() -> Callable[..., Any]:
            spec = {"items": tf.TensorSpec((None, None), tf.int32),
                    "first": tf.TensorSpec((None,), tf.int32)}
            return tf.function(lambda x: _top_k(tf.nn.softmax(model(x, training=False)), k),
                               input_signature=[spec])
        fn = _traced(model, ("next_item", k), build)
    else:
        fn = _serve(model)
    items, scores = [], []
    for b in _batches(arrays, batch_size):
        out = fn(b)
        if out["items"].shape[1] < k:
            raise SkiffConfigError(f"k={k} exceeds the {out['items'].shape[1]} items the "
                                   "SavedModel was exported with; export with a larger k.")
        items.append(np.asarray(out["items"])[:, :k])
        scores.append(np.asarray(out["scores"])[:, :k])
    if not items:
        return np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
    return np.concatenate(items).astype(np.int32), np.concatenate(scores).astype(np.float32)


def _top_k(probabilities: Any, k: int) -> dict[str, Any]:
    import tensorflow as tf

    top = tf.math.top_k(probabilities, k=k)
    return {"items": tf.cast(top.indices, tf.int32), "scores": top.values}


def _serve(saved: Any) -> Callable[[dict[str, np.ndarray]], dict[str, Any]]:
    if not hasattr(saved, "serve"):
        raise DataContractError(f"{type(saved).__name__} is neither a Keras model nor a "
                                "SavedModel with a 'serve' endpoint.")
    return lambda batch: saved.serve(**batch)


# --------------------------------------------------------------------------- persistence

def save_keras(model: keras.Model, path: str | Path) -> Path:
    """Save the model as a ``.keras`` file (architecture, weights, optimizer state).

    :param model: the model.
    :param path: file to write; ``.keras`` is appended if missing; folders are created.
    :return: the path written.
    """
    path = Path(path)
    if path.suffix != ".keras":
        path = path.with_name(path.name + ".keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def load_keras(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file written by :func:`save_keras` (Skiff's layers registered).

    :param path: the file.
    :return: the model.
    :raises MissingInputError: the file does not exist.
    """
    import keras

    import skiff.train.layers  # noqa: F401  (registers the custom layers)

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"No Keras model file at {path}.")
    return keras.models.load_model(path)


def export_saved_model(model: keras.Model, path: str | Path, *, k: int = 20) -> Path:
    """Export a TF SavedModel with a ``serve`` signature, for TF Serving / SageMaker.

    Signatures (input names -> outputs):

    - intent: ``tokens`` int32 ``(batch, time)`` [+ ``features`` float32] ->
      ``probability`` float32 ``(batch,)``;
    - next item: ``items`` int32 ``(batch, time)``, ``first`` int32 ``(batch,)`` ->
      ``items`` int32 ``(batch, k)`` and ``scores`` float32 ``(batch, k)``, best first.

    :param model: an intent or next-item model (told apart by its input names).
    :param path: folder to write (replaced if it exists).
    :param k: list length of the next-item signature.
    :return: the folder.
    :raises DataContractError: the model's inputs are neither kind's.
    """
    import shutil

    import keras
    import tensorflow as tf

    _check_sizes(k=k)
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = set(model.input.keys()) if isinstance(model.input, dict) else set()
    archive = keras.export.ExportArchive()
    archive.track(model)
    if names == {"items", "first"}:
        def serve(items: Any, first: Any) -> dict[str, Any]:
            logits = model({"items": items, "first": first}, training=False)
            return _top_k(tf.nn.softmax(logits), k)
        signature = [tf.TensorSpec((None, None), tf.int32, name="items"),
                     tf.TensorSpec((None,), tf.int32, name="first")]
    elif names in ({"tokens"}, {"tokens", "features"}):
        if "features" in names:
            n_features = model.input["features"].shape[1]

            def serve(tokens: Any, features: Any) -> dict[str, Any]:  # type: ignore[misc]
                p = model({"tokens": tokens, "features": features}, training=False)
                return {"probability": tf.reshape(p, [-1])}
            signature = [tf.TensorSpec((None, None), tf.int32, name="tokens"),
                         tf.TensorSpec((None, n_features), tf.float32, name="features")]
        else:
            def serve(tokens: Any) -> dict[str, Any]:  # type: ignore[misc]
                return {"probability": tf.reshape(model({"tokens": tokens}, training=False),
                                                  [-1])}
            signature = [tf.TensorSpec((None, None), tf.int32, name="tokens")]
    else:
        raise DataContractError(f"Cannot export a model with inputs {sorted(names)}; expected "
                                "('tokens'[, 'features']) or ('items', 'first').")
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    return path


def load_saved_model(path: str | Path) -> Any:
    """Load a SavedModel written by :func:`export_saved_model` (usable by the predict functions).

    :param path: the SavedModel folder.
    :return: the restored object; call ``.serve(...)`` or pass it to ``predict_*``.
    :raises MissingInputError: the folder holds no SavedModel.
    """
    import tensorflow as tf

    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise MissingInputError(f"No SavedModel (saved_model.pb) in {path}.")
    return tf.saved_model.load(str(path))
