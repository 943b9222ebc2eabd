"""Custom Keras layers of Skiff's models (TensorFlow backend).

Imported only by :mod:`skiff.train.models` when a model is built or loaded, so importing the
rest of the package stays cheap. Each layer is registered as ``skiff>Name`` so a saved
``.keras`` file loads back with :func:`skiff.train.models.load_keras`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["TokenCounts", "FirstStep", "CopyCandidates", "CatalogueLogits", "relative_positions"]

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
