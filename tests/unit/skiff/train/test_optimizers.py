"""LazyAdam: Adam's step on the rows a row-sparse gradient touches, and on nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from skiff.exceptions import SkiffConfigError

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

ROWS, WIDTH = 6, 3


def _adam_rows(var: np.ndarray, grads: list[np.ndarray], lr: float = 0.1, beta_1: float = 0.9,
               beta_2: float = 0.999, eps: float = 1e-7) -> np.ndarray:
    """Adam by hand on one row, a gradient per step."""
    m = v = np.zeros_like(var)
    for step, g in enumerate(grads, 1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        var = var - lr * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step) * m / (np.sqrt(v) + eps)
    return var


def _sparse(rows: list[int], values: np.ndarray) -> tf.IndexedSlices:
    return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(rows, tf.int64),
                            tf.constant([ROWS, WIDTH], tf.int64))


def test_only_the_rows_in_a_sparse_gradient_move() -> None:
    from skiff.train.optimizers import LazyAdam

    start = np.arange(ROWS * WIDTH, dtype=np.float32).reshape(ROWS, WIDTH) / 10
    var = keras.Variable(start)
    opt = LazyAdam(0.1)
    g1, g2 = np.ones((2, WIDTH), np.float32), np.full((1, WIDTH), -2.0, np.float32)
    opt.apply([_sparse([1, 4], g1)], [var])
    opt.apply([_sparse([4], g2)], [var])
    got = var.numpy()
    # row 1 was in step 1 only: Adam would keep moving it at step 2 on its momentum; lazily not
    np.testing.assert_allclose(got[1], _adam_rows(start[1], [g1[0]]), rtol=1e-6)
    np.testing.assert_allclose(got[4], _adam_rows(start[4], [g1[1], g2[0]]), rtol=1e-6)
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(got[untouched], start[untouched])
    momentum = opt._momentums[opt._get_variable_index(var)].numpy()
    np.testing.assert_allclose(momentum[1], 0.1 * g1[0], rtol=1e-6)  # not decayed at step 2
    assert not momentum[untouched].any()


def test_a_row_met_twice_in_a_gradient_gets_the_sum() -> None:
    from skiff.train.optimizers import LazyAdam

    twice, once = keras.Variable(np.zeros((ROWS, WIDTH))), keras.Variable(np.zeros((ROWS, WIDTH)))
    parts = np.array([[1.0, 2.0, 3.0], [0.5, -4.0, 1.0]], np.float32)
    LazyAdam(0.1).apply([_sparse([2, 2], parts)], [twice])
    LazyAdam(0.1).apply([_sparse([2], parts.sum(0, keepdims=True))], [once])
    np.testing.assert_allclose(twice.numpy(), once.numpy(), rtol=1e-6)


def test_dense_gradients_take_adams_own_step() -> None:
    from skiff.train.optimizers import LazyAdam

    start = np.linspace(-1, 1, ROWS * WIDTH).reshape(ROWS, WIDTH)
    lazy, adam = keras.Variable(start), keras.Variable(start)
    grad = np.linspace(2, -3, ROWS * WIDTH).reshape(ROWS, WIDTH).astype(np.float32)
    opt_lazy, opt_adam = LazyAdam(0.05), keras.optimizers.Adam(0.05)
    for _ in range(3):
        opt_lazy.apply([tf.constant(grad)], [lazy])
        opt_adam.apply([tf.constant(grad)], [adam])
    np.testing.assert_array_equal(lazy.numpy(), adam.numpy())


def test_amsgrad_is_refused() -> None:
    from skiff.train.optimizers import LazyAdam

    with pytest.raises(SkiffConfigError, match="amsgrad"):
        LazyAdam(0.1, amsgrad=True)


def test_a_sampled_batch_touches_few_catalogue_rows() -> None:
    """The sampled softmax's gradient of the catalogue and the item embedding is row-sparse
    (what makes a step's cost independent of the catalogue's size)."""
    from skiff.train import models
    from skiff.train.layers import positive_first_loss

    n_items = 1_000
    model = models.build_next_item_model(n_items, embedding_dim=4, units=4, max_position=3)
    trainer = models._sampled_trainer(model, np.arange(2, n_items), num_sampled=16)
    inputs = {"items": np.array([[5, 6, 0], [7, 0, 0]], np.int32),
              "first": np.array([5, 7], np.int32), "target": np.array([8, 9], np.int32)}
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(positive_first_loss(inputs["target"], trainer(inputs,
                                                                            training=True)))
    grads = dict(zip([v.path for v in trainer.trainable_variables],
                     tape.gradient(loss, trainer.trainable_variables), strict=True))
    for path in ("catalogue/item_vectors", "catalogue/bias", "item_embedding/embeddings"):
        assert isinstance(grads[path], tf.IndexedSlices), path
        assert len(np.unique(grads[path].indices.numpy())) <= 16 + 8, path
