"""Adam that updates only the rows a batch touched of a weight whose gradient is row-sparse.

The next-item model's item embedding and catalogue head have a row per SKU (60,002 at the
real dataset's size). A sampled-softmax batch reads a few thousand of those rows, and
TensorFlow hands their gradient over as ``tf.IndexedSlices``; Keras's ``Adam`` turns it
dense and decays both moments of every row at every step, which at full scale cost as much
as the rest of the step together (issue 18: 66 ms a step at 60,002 SKUs, 33 ms with those
two weights frozen). :class:`LazyAdam` is TensorFlow Addons' ``LazyAdam`` for Keras 3:
for a row-sparse gradient it updates the moments and values of the rows in it, as Adam
would, and leaves every other row (and its moments) as it is; dense gradients take
Keras's own Adam step. Rows of rare items so keep their moments until they are next seen,
the usual trade for embedding tables (the benchmark's MRR@20 with it is quoted in
``docs/training.md``).

TensorFlow only, imported by :mod:`skiff.train.models` when a model is fitted.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from skiff.exceptions import SkiffConfigError

__all__ = ["LazyAdam"]


@keras.saving.register_keras_serializable(package="skiff")
class LazyAdam(keras.optimizers.Adam):
    """Keras's ``Adam``, with row-sparse gradients applied to their rows only.

    Takes ``keras.optimizers.Adam``'s arguments, except ``amsgrad``.

    :raises SkiffConfigError: ``amsgrad=True``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("amsgrad"):
            raise SkiffConfigError("LazyAdam does not support amsgrad.")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        # a row read twice in the batch (an item drawn and also a candidate) sums its parts
        rows, where = tf.unique(tf.cast(gradient.indices, tf.int64))
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), where,
                                            tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) \
            / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        # gather from the tf.Variable (a sparse read), not from a read of all of it: a whole
        # read still alive when the scatter below runs makes TensorFlow copy the variable
        m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
        return None
