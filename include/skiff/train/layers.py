"""Custom Keras layers of Skiff's models (TensorFlow backend).

Imported only by :mod:`skiff.train.models` when a model is built or loaded, so importing the
rest of the package stays cheap. Each layer is registered as ``skiff>Name`` so a saved
``.keras`` file loads back with :func:`skiff.train.models.load_keras`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["TokenCounts", "FirstStep", "CopyCandidates", "CatalogueHead", "CatalogueLogits",
           "SampledCatalogueLogits", "TransitionBlend", "positive_first_loss",
           "relative_positions"]

_NEG = -1e9  # logit of ids that are never recommended (PAD, OOV)


@keras.saving.register_keras_serializable(package="skiff")
class TokenCounts(keras.layers.Layer):
    """``log1p`` of the count of each token id (1..vocab_size-1) and of the length, in-graph.

    The same inputs as :func:`skiff.train.features.count_features`, computed from the token ids,
    so a served model needs nothing but the tokens.

    :param vocab_size: size of the token vocabulary (PAD included).
    """

    def __init__(self, vocab_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def call(self, tokens: tf.Tensor) -> tf.Tensor:
        one_hot = tf.one_hot(tf.cast(tokens, tf.int32), self.vocab_size,
                             dtype=self.compute_dtype)  # PAD is column 0
        counts = tf.reduce_sum(one_hot, axis=1)
        length = tf.reduce_sum(counts[:, 1:], axis=1, keepdims=True)
        return tf.math.log1p(tf.concat([counts[:, 1:], length], axis=1))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], self.vocab_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size}


def relative_positions(ids: tf.Tensor, max_position: int) -> tf.Tensor:
    """Position of each id from the end of its right-padded row (1: last); padding gets 0.

    :param ids: ``(batch, time)`` ids, 0 for padding.
    :param max_position: positions beyond it are clipped to it.
    :return: ``(batch, time)`` int32 positions.
    """
    real = tf.cast(tf.not_equal(ids, 0), tf.int32)
    length = tf.reduce_sum(real, axis=1, keepdims=True)
    index = tf.range(tf.shape(ids)[1])[tf.newaxis, :]
    return tf.clip_by_value(length - index, 0, max_position) * real


@keras.saving.register_keras_serializable(package="skiff")
class FirstStep(keras.layers.Layer):
    """``x[:, 0]``: the first time step of a sequence, without its mask."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x[:, 0]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], *input_shape[2:])

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None


@keras.saving.register_keras_serializable(package="skiff")
class CopyCandidates(keras.layers.Layer):
    """The items a next-item model may copy from the session, with what to score them on.

    Candidates are the window's items, then the session's first item. Each candidate's
    features are its item embedding, a learnt embedding of its position from the end
    (the first item has its own position, ``max_position + 1``) and the session vector.

    :param max_position: positions from the end with their own embedding.
    :param position_dim: size of the position embedding.
    """

    def __init__(self, max_position: int, position_dim: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_position = max_position
        self.position_dim = position_dim

    def build(self, *input_shapes: Any) -> None:
        self.positions = self.add_weight(shape=(self.max_position + 2, self.position_dim),
                                         initializer="uniform", name="position_embedding")

    def call(self, items: tf.Tensor, first: tf.Tensor, item_vectors: tf.Tensor,
             first_vector: tf.Tensor, session: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        items = tf.cast(items, tf.int32)
        first = tf.cast(first, tf.int32)[:, tf.newaxis]
        ids = tf.concat([items, first], axis=1)
        positions = tf.concat([relative_positions(items, self.max_position),
                               tf.fill(tf.shape(first), self.max_position + 1)], axis=1)
        vectors = tf.concat([item_vectors, first_vector[:, tf.newaxis, :]], axis=1)
        shape = tf.concat([tf.shape(ids), tf.shape(session)[1:]], axis=0)
        per_candidate = tf.broadcast_to(session[:, tf.newaxis, :], shape)
        features = tf.concat([vectors, tf.gather(self.positions, positions), per_candidate],
                             axis=2)
        return ids, features

    def compute_output_spec(self, items: Any, first: Any, item_vectors: Any, first_vector: Any,
                            session: Any) -> tuple[Any, Any]:
        n = None if items.shape[1] is None else items.shape[1] + 1
        width = item_vectors.shape[2] + self.position_dim + session.shape[1]
        return (keras.KerasTensor((items.shape[0], n), dtype="int32"),
                keras.KerasTensor((items.shape[0], n, width), dtype=self.compute_dtype))

    def compute_mask(self, *args: Any, **kwargs: Any) -> None:
        return None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_position": self.max_position,
                "position_dim": self.position_dim}


@keras.saving.register_keras_serializable(package="skiff")
class CatalogueHead(keras.layers.Layer):
    """Each catalogue item's logit from the session vector: ``session @ item_vectors.T + bias``.

    A ``Dense(n_items)`` with its kernel stored item by item, ``(n_items, units)``: the
    sampled softmax (:class:`SampledCatalogueLogits`) gathers the rows of the items it scores,
    so a batch's gradient is those rows only (``tf.IndexedSlices``), which
    :class:`skiff.train.optimizers.LazyAdam` applies without touching the rest of the catalogue.

    :param n_items: catalogue (vocabulary) size.
    """

    def __init__(self, n_items: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_items = n_items

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.item_vectors = self.add_weight(shape=(self.n_items, input_shape[-1]),
                                            initializer="glorot_uniform", name="item_vectors")
        self.bias = self.add_weight(shape=(self.n_items,), initializer="zeros", name="bias")

    def call(self, session: tf.Tensor) -> tf.Tensor:
        return tf.matmul(session, self.item_vectors, transpose_b=True) + self.bias

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], self.n_items)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_items": self.n_items}


@keras.saving.register_keras_serializable(package="skiff")
class CatalogueLogits(keras.layers.Layer):
    """Catalogue logits plus a copy score for each item of the session; PAD and OOV masked.

    ``logits[b, i] = generated[b, i] + sum of copy_scores[b, j] over j with ids[b, j] == i``,
    then ids 0 (PAD) and 1 (OOV) get a large negative logit.

    :param n_items: catalogue (vocabulary) size.
    """

    def __init__(self, n_items: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_items = n_items

    def call(self, generated: tf.Tensor, ids: tf.Tensor | None = None,
             copy_scores: tf.Tensor | None = None) -> tf.Tensor:
        logits = generated
        if ids is not None and copy_scores is not None:
            ids = tf.cast(ids, tf.int32)
            batch = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, tf.newaxis], tf.shape(ids))
            where = tf.stack([tf.reshape(batch, [-1]), tf.reshape(ids, [-1])], axis=1)
            logits = tf.tensor_scatter_nd_add(logits, where, tf.reshape(copy_scores, [-1]))
        special = tf.one_hot([0, 1], self.n_items, dtype=logits.dtype)
        return logits + _NEG * tf.reduce_sum(special, axis=0)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (None, self.n_items)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_items": self.n_items}


@keras.saving.register_keras_serializable(package="skiff")
class TransitionBlend(keras.layers.Layer):
    """Mix the model's next-item distribution with the last item's smoothed transition one and
    the session's earlier items.

    ``out[b, j] = log((1 - weight - returns) * softmax(logits)[b, j] + weight * p(j | last[b])
    + returns * back[b, j])`` with ``p(j | i) = (count(i, j) + alpha * share(j)) / (total(i) +
    alpha)`` and ``back`` the session's earlier items: ``anchor`` on ``first``, ``step_back``
    on the item before the last, the rest evenly over the items before the last (popularity
    for a session of one item) (:mod:`skiff.train.blend`); ``softmax(out)`` is the mixture
    itself. The counts are a fixed ``(n_items, m)`` table of each item's ``m`` most frequent
    training successors (ids, -1 where fewer, and counts), with each item's total transitions
    and the items' popularity shares: non-trainable weights, so they are saved, exported and
    served with the model. The last item is the last non-PAD id of each right-padded row of
    ``items``.

    :param n_items: catalogue size.
    :param m: successors kept per item.
    :param weight: the transitions' share of the mixture, in ``[0, 1]``.
    :param alpha: pseudo-count of the popularity prior (> 0).
    :param returns: the earlier items' share (``weight + returns <= 1``; 0: none).
    :param anchor: share of ``back`` on the session's first item.
    :param step_back: share of ``back`` on the item before the last.
    """

    def __init__(self, n_items: int, m: int, weight: float, alpha: float, returns: float = 0.0,
                 anchor: float = 0.3, step_back: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_items, self.m = int(n_items), int(m)
        self.weight, self.alpha = float(weight), float(alpha)
        self.returns, self.anchor, self.step_back = float(returns), float(anchor), float(step_back)

    def build(self, *input_shapes: Any) -> None:
        self.successors = self.add_weight(shape=(self.n_items, self.m), dtype="int32",
                                          trainable=False, initializer="zeros", name="successors")
        self.counts = self.add_weight(shape=(self.n_items, self.m), dtype="float32",
                                      trainable=False, initializer="zeros", name="counts")
        self.totals = self.add_weight(shape=(self.n_items,), dtype="float32", trainable=False,
                                      initializer="zeros", name="totals")
        self.share = self.add_weight(shape=(self.n_items,), dtype="float32", trainable=False,
                                     initializer="zeros", name="share")

    def call(self, logits: tf.Tensor, items: tf.Tensor, first: tf.Tensor | None = None
             ) -> tf.Tensor:
        items = tf.cast(items, tf.int32)
        length = tf.reduce_sum(tf.cast(tf.not_equal(items, 0), tf.int32), axis=1)
        last = tf.gather(items, tf.maximum(length - 1, 0), batch_dims=1)
        ids, counts = tf.gather(self.successors, last), tf.gather(self.counts, last)
        dense = _scatter_rows(tf.maximum(ids, 0), counts, self.n_items)  # -1 ids: 0 onto PAD
        p = (dense + self.alpha * self.share[tf.newaxis, :]) / (
            tf.gather(self.totals, last)[:, tf.newaxis] + self.alpha)
        mixed = (1.0 - self.weight - self.returns) * tf.nn.softmax(tf.cast(logits, tf.float32)) \
            + self.weight * p
        if self.returns > 0:
            mixed += self.returns * self._back(items, length, first)
        return tf.math.log(tf.maximum(mixed, 1e-30))

    def _back(self, items: tf.Tensor, length: tf.Tensor, first: tf.Tensor | None) -> tf.Tensor:
        """The session's earlier items (:func:`skiff.train.blend.session_returns`)."""
        first = items[:, 0] if first is None else tf.reshape(tf.cast(first, tf.int32), [-1])
        before = tf.range(tf.shape(items)[1])[tf.newaxis, :] < (length - 1)[:, tf.newaxis]
        spread = (1.0 - self.anchor - self.step_back) / tf.cast(tf.maximum(length - 1, 1),
                                                                tf.float32)
        ids = tf.concat([items, first[:, tf.newaxis],
                         tf.gather(items, tf.maximum(length - 2, 0), batch_dims=1)[:, tf.newaxis]],
                        axis=1)
        mass = tf.concat([tf.cast(before, tf.float32) * spread[:, tf.newaxis],
                          tf.fill([tf.shape(items)[0], 1], self.anchor),
                          tf.fill([tf.shape(items)[0], 1], self.step_back)], axis=1)
        back = _scatter_rows(ids, mass, self.n_items)
        back *= 1.0 - tf.reduce_sum(tf.one_hot([0, 1], self.n_items, dtype=back.dtype), axis=0)
        one = (length < 2)[:, tf.newaxis]
        return tf.where(one, tf.broadcast_to(self.share[tf.newaxis, :], tf.shape(back)), back)

    def compute_output_shape(self, *input_shapes: Any) -> tuple[int | None, int]:
        return (None, self.n_items)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_items": self.n_items, "m": self.m,
                "weight": self.weight, "alpha": self.alpha, "returns": self.returns,
                "anchor": self.anchor, "step_back": self.step_back}


def _scatter_rows(ids: tf.Tensor, values: tf.Tensor, n_items: int) -> tf.Tensor:
    """``(b, n_items)`` dense rows: ``values[b, c]`` added at column ``ids[b, c]``."""
    batch = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, tf.newaxis], tf.shape(ids))
    where = tf.stack([tf.reshape(batch, [-1]), tf.reshape(ids, [-1])], axis=1)
    return tf.scatter_nd(where, tf.reshape(values, [-1]), tf.stack([tf.shape(ids)[0], n_items]))


class SampledCatalogueLogits(keras.layers.Layer):
    """Training-only logits of a sampled softmax: the target, the session's items, and a
    popularity sample of the catalogue, with the logQ correction on the sampled ones.

    The full softmax's normaliser is a sum over the whole catalogue; here it is split into
    the items that are always candidates (the target and, with the copy head, every item of
    the session, scored as :class:`CatalogueLogits` scores them: catalogue logit plus the sum
    of its copy scores) and the rest, estimated from ``num_sampled`` draws (with
    replacement) from ``q``: a drawn item's logit gets ``- log(num_sampled * q)`` (its
    expected count: the popularity, logQ, correction) ``+ log(times drawn)``, and a draw
    that is already a candidate (an accidental hit) is masked out. So the expected
    normaliser is the full one, and the gradient of a batch is the rows of the items it
    scored (at most ``num_sampled`` draws and the batch's candidates), not the catalogue.

    Not saved with a model (a fit builds it around the full model's layers, see
    :func:`skiff.train.models.train_next_item`). Output: ``(batch, 1 + window + 1 + drawn)``
    logits, the target first (column 0, the label :func:`positive_first_loss` uses), masked
    candidates at a large negative value.

    :param catalogue: the full model's :class:`CatalogueHead`: its item vectors and bias are
        the ones trained (tracked here, so a fit of the sampled model updates them).
    :param log_q: ``(n_items,)`` log sampling probabilities (``-inf`` for never-drawn ids).
    :param num_sampled: draws per batch, shared by the batch's rows.
    """

    def __init__(self, catalogue: keras.layers.Layer, log_q: Any, num_sampled: int,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalogue = catalogue
        q = tf.exp(tf.constant(log_q, tf.float32))
        self._cdf = tf.math.cumsum(q / tf.reduce_sum(q))
        self._log_q = tf.constant(log_q, tf.float32)
        self.n_items = int(self._log_q.shape[0])
        self.num_sampled = num_sampled

    def _draw(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Distinct drawn ids and their correction ``log(count) - log(num_sampled * q)``."""
        u = tf.random.uniform([self.num_sampled], 0.0, 1.0)
        draws = tf.minimum(tf.searchsorted(self._cdf, u, side="right"), self.n_items - 1)
        drawn, where = tf.unique(tf.cast(draws, tf.int32))
        count = tf.math.unsorted_segment_sum(tf.ones_like(where, tf.float32), where,
                                             tf.shape(drawn)[0])
        correction = tf.math.log(count) - tf.math.log(float(self.num_sampled)) \
            - tf.gather(self._log_q, drawn)
        return drawn, correction

    def call(self, session: tf.Tensor, target: tf.Tensor, ids: tf.Tensor | None = None,
             copy_scores: tf.Tensor | None = None) -> tf.Tensor:
        # gathered rows of the variables themselves: their gradients stay row-sparse
        vectors, bias = self.catalogue.item_vectors, self.catalogue.bias
        session = tf.cast(session, tf.float32)
        target = tf.reshape(tf.cast(target, tf.int32), [-1])
        rows = tf.shape(session)[0]

        def catalogue_rows(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            """The item vectors ``(*ids.shape, d)`` and biases of ``ids``, in float32."""
            return (tf.cast(tf.gather(vectors, ids), tf.float32),
                    tf.cast(tf.gather(bias, ids), tf.float32))

        def generated(items: tf.Tensor) -> tf.Tensor:  # (batch, m) ids -> their logits
            w, b = catalogue_rows(items)  # (batch, m, d), (batch, m)
            return tf.einsum("bd,bmd->bm", session, w) + b

        drawn, correction = self._draw()
        w, b = catalogue_rows(drawn)  # (drawn, d), (drawn,)
        sampled = tf.matmul(session, w, transpose_b=True) + b + correction
        if ids is None or copy_scores is None:
            known = target[:, tf.newaxis]
            parts, masks = [generated(known)], [tf.zeros_like(known, tf.bool)]
        else:
            ids = tf.cast(ids, tf.int32)
            scores = tf.cast(copy_scores, tf.float32)
            same = tf.equal(ids[:, :, tf.newaxis], ids[:, tf.newaxis, :])  # (b, m, m)
            copy = tf.reduce_sum(tf.where(same, scores[:, tf.newaxis, :], 0.0), axis=2)
            earlier = tf.linalg.band_part(tf.ones_like(same[0], tf.int32), 0, -1) \
                - tf.eye(tf.shape(ids)[1], dtype=tf.int32)  # earlier[k, j] = k < j
            repeat = tf.reduce_any(same & tf.cast(earlier, tf.bool)[tf.newaxis], axis=1)
            hit = tf.equal(ids, target[:, tf.newaxis])
            target_copy = tf.reduce_sum(tf.where(hit, scores, 0.0), axis=1, keepdims=True)
            known = tf.concat([target[:, tf.newaxis], ids], axis=1)
            parts = [generated(known[:, :1]) + target_copy, generated(ids) + copy]
            masks = [tf.zeros([rows, 1], tf.bool), repeat | hit | (ids < 2)]
        # drawn ids already among a row's candidates are masked (accidental hits)
        column = tf.tensor_scatter_nd_update(
            tf.fill([self.n_items], -1), drawn[:, tf.newaxis], tf.range(tf.shape(drawn)[0]))
        cols = tf.gather(column, known)
        row_ids = tf.broadcast_to(tf.range(rows)[:, tf.newaxis], tf.shape(cols))
        found = tf.boolean_mask(tf.stack([row_ids, cols], axis=2), cols >= 0)
        accidental = tf.scatter_nd(found, tf.ones(tf.shape(found)[:1], tf.int32),
                                   tf.stack([rows, tf.shape(drawn)[0]])) > 0
        logits = tf.concat([*parts, sampled], axis=1)
        mask = tf.concat([*masks, accidental], axis=1)
        return tf.where(mask, _NEG, logits)

    def compute_output_spec(self, session: Any, target: Any, ids: Any = None,
                            copy_scores: Any = None) -> Any:
        return keras.KerasTensor((session.shape[0], None), dtype="float32")


def positive_first_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy of logits whose column 0 is the target
    (:class:`SampledCatalogueLogits`); ``y_true`` only gives the batch size."""
    labels = tf.zeros(tf.shape(y_true)[:1], tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
