"""The tf.data input pipeline: every row once per epoch, a new seeded order each epoch."""

from __future__ import annotations

import numpy as np
import pytest

from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train.pipeline import batches

N = 23  # not a multiple of the batch size: the last batch holds the remainder


def _inputs() -> tuple[dict[str, np.ndarray], np.ndarray]:
    rows = np.arange(N)
    return {"items": np.stack([rows + 100, rows + 200], axis=1).astype(np.int32),
            "first": rows.astype(np.int32)}, rows.astype(np.int32) + 1000


def _epoch(dataset) -> tuple[list[int], np.ndarray]:  # noqa: ANN001
    """Batch sizes and the rows in the order served; checks each batch is aligned."""
    sizes, order = [], []
    for inputs, labels in dataset:
        rows = inputs["first"].numpy()
        np.testing.assert_array_equal(inputs["items"].numpy(), np.c_[rows + 100, rows + 200])
        np.testing.assert_array_equal(labels.numpy(), rows + 1000)
        sizes.append(len(rows))
        order.extend(rows.tolist())
    return sizes, np.array(order)


def test_every_row_once_per_epoch_in_a_new_order_that_repeats_with_the_seed() -> None:
    dataset = batches(*_inputs(), batch_size=5, seed=7)
    assert int(dataset.cardinality()) == 5
    (sizes, first), (_, second) = _epoch(dataset), _epoch(dataset)
    assert sizes == [5, 5, 5, 5, 3]
    assert sorted(first) == sorted(second) == list(range(N))
    assert not np.array_equal(first, second)  # reshuffled each epoch (each iteration)
    again = batches(*_inputs(), batch_size=5, seed=7)
    np.testing.assert_array_equal(_epoch(again)[1], first)  # same seed: same orders
    np.testing.assert_array_equal(_epoch(again)[1], second)
    assert not np.array_equal(_epoch(batches(*_inputs(), batch_size=5, seed=8))[1], first)


def test_without_shuffle_rows_come_in_order() -> None:
    sizes, order = _epoch(batches(*_inputs(), batch_size=10, shuffle=False))
    assert sizes == [10, 10, 3]
    np.testing.assert_array_equal(order, np.arange(N))


def test_bad_batches_name_the_problem() -> None:
    inputs, labels = _inputs()
    with pytest.raises(SkiffConfigError, match="batch_size=0"):
        batches(inputs, labels, batch_size=0)
    with pytest.raises(DataContractError, match="'first' has 3 rows; labels have 23"):
        batches({**inputs, "first": inputs["first"][:3]}, labels, batch_size=4)
    with pytest.raises(DataContractError, match="No examples"):
        batches({"first": np.zeros(0, np.int32)}, np.zeros(0), batch_size=4)


def test_fit_repeats_with_the_seed() -> None:
    """Two fits from the same seed see the same batches: the same weights come out."""
    import keras

    from skiff.train import models

    inputs, labels = _inputs()
    inputs = {"tokens": np.c_[inputs["first"] % 5 + 2, np.zeros(N, np.int32)]}
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(3)  # the same initial weights
        model = models.build_intent_model(7, embedding_dim=2, units=2)
        models.train_intent(model, inputs, labels % 2, epochs=2, batch_size=8, seed=3)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_length_buckets_trim_each_batch_to_its_longest_row() -> None:
    """Rows of every length 1..8: each row once per epoch, batches of like lengths trimmed
    to their longest row, a new order each epoch that repeats with the seed."""
    n, width = 200, 8
    lengths = np.arange(n) % width + 1
    ids = np.where(np.arange(width)[None] < lengths[:, None], 5, 0).astype(np.int32)
    ids[:, 0] = np.arange(n) + 10  # the row, to check alignment
    inputs, labels = {"items": ids, "first": np.arange(n, dtype=np.int32)}, np.arange(n)
    dataset = batches(inputs, labels, batch_size=16, seed=3, bucket=4)
    assert int(dataset.cardinality()) == 13

    def epoch() -> tuple[list[int], list[int]]:
        rows, spreads = [], []
        for x, y in dataset:
            got, first = x["items"].numpy(), x["first"].numpy()
            np.testing.assert_array_equal(got[:, 0], first + 10)
            np.testing.assert_array_equal(y.numpy(), first)
            assert got.shape[1] == lengths[first].max()  # trimmed to the longest row
            np.testing.assert_array_equal(np.count_nonzero(got, axis=1), lengths[first])
            spreads.append(int(np.ptp(lengths[first])))
            rows.extend(first.tolist())
        return rows, spreads

    (one, spreads), (two, _) = epoch(), epoch()
    assert sorted(one) == sorted(two) == list(range(n)) and one != two
    assert np.mean(spreads) < 4  # like lengths together (a random batch spans 1..8)
    again = batches(inputs, labels, batch_size=16, seed=3, bucket=4)
    assert [r for x, _ in again for r in x["first"].numpy().tolist()] == one
    with pytest.raises(SkiffConfigError, match="bucket=-1"):
        batches(inputs, labels, batch_size=16, bucket=-1)
