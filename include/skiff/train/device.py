"""Where a model trains and at which precision: the GPU TensorFlow sees, mixed precision, cuDNN.

- :func:`training_precision`: Keras' global dtype policy while a model is built and fitted,
  ``mixed_float16`` when :func:`wants_mixed_precision` says so (by default: when TensorFlow
  sees a GPU; ``SKIFF_TRAIN_MIXED_PRECISION``), ``float32`` otherwise. The models' output
  layers are float32 whatever the policy, so probabilities and logits stay numerically safe.
- :func:`float32_copy`: the fitted model computing in float32 again, with the same weights:
  what a run saves, scores and serves (serving runs on CPUs, where float16 is slow).
- :func:`cudnn_blockers` / :func:`check_right_padded`: what keeps a recurrent layer off
  Keras 3's cuDNN kernel; the builders' layers have none, and the fit loops refuse sequences
  whose padding cuDNN would reject (it takes strictly right-padded rows, none empty).

TensorFlow and Keras are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from skiff.exceptions import DataContractError, SkiffConfigError

__all__ = ["MIXED", "PRECISIONS", "gpu_names", "device_name", "wants_mixed_precision",
           "training_precision", "float32_copy", "cudnn_blockers", "check_right_padded"]

log = logging.getLogger(__name__)

#: Keras' mixed-precision policy: float16 compute, float32 variables.
MIXED = "mixed_float16"
#: Values of ``SKIFF_TRAIN_MIXED_PRECISION``.
PRECISIONS = ("auto", "on", "off")


def gpu_names() -> list[str]:
    """The GPUs TensorFlow sees and may use (hidden ones are left out), by model name.

    :return: e.g. ``["NVIDIA A10G"]``; empty on a machine without a GPU (or a CPU-only build).
    """
    import tensorflow as tf

    visible = {d.name for d in tf.config.get_visible_devices("GPU")}
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        if gpu.name in visible:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
    return names


def device_name() -> str:
    """The device a fit runs on, for logs and benchmarks.

    :return: ``GPU:0 (NVIDIA A10G)`` (the first GPU: Keras trains on one) or ``CPU``.
    """
    gpus = gpu_names()
    return f"GPU:0 ({gpus[0]})" if gpus else "CPU"


def wants_mixed_precision(setting: str, gpus: int) -> bool:
    """Whether to train in mixed precision.

    :param setting: ``auto`` (when there is a GPU), ``on`` or ``off``
        (``TrainingConfig.mixed_precision``).
    :param gpus: GPUs TensorFlow sees.
    :return: True for ``on``, or ``auto`` with at least one GPU.
    :raises SkiffConfigError: ``setting`` is none of :data:`PRECISIONS`.
    """
    if setting not in PRECISIONS:
        raise SkiffConfigError(f"mixed precision {setting!r} is not supported; use one of "
                               f"{PRECISIONS}.")
    return setting == "on" or (setting == "auto" and gpus > 0)


@contextmanager
def training_precision(setting: str | None = None) -> Iterator[str]:
    """Keras' global dtype policy for the models built and fitted inside the block.

    ``mixed_float16`` when :func:`wants_mixed_precision`, else ``float32``; the policy in
    force before is restored on leaving. ``model.compile`` wraps the optimizer in a loss-scale
    optimizer by itself under ``mixed_float16``.

    :param setting: ``auto``, ``on`` or ``off``; default ``SKIFF_TRAIN_MIXED_PRECISION``.
    :return: the policy's name, as the ``with`` target.
    :raises SkiffConfigError: the setting is unknown.
    """
    import keras

    if setting is None:
        from skiff.config import TrainingConfig

        setting = TrainingConfig.from_env().mixed_precision
    policy = MIXED if wants_mixed_precision(setting, len(gpu_names())) else "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    log.info("Training on %s with the %s policy (mixed precision: %s).", device_name(), policy,
             setting)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _policy_name(dtype: Any) -> str | None:
    """The policy name in a layer config's ``dtype`` (a name or a serialized policy)."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, dict):
        return dtype.get("config", {}).get("name")
    return None


def float32_copy(model: Any) -> Any:
    """The model with every layer computing in float32, holding the same weights.

    A mixed-precision model keeps its variables in float32, so the copy loses nothing; it is
    what is scored, saved and exported. A model with no mixed-precision layer is returned as is.

    :param model: a fitted Keras functional model.
    :return: the float32 model (a new one when ``model`` had mixed-precision layers).
    """
    import keras

    if not any((_policy_name(layer.get_config().get("dtype")) or "").startswith("mixed")
               for layer in model.layers):
        return model

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if (_policy_name(config.get("dtype")) or "").startswith("mixed"):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def cudnn_blockers(layer: Any) -> list[str]:
    """What keeps a Keras GRU or LSTM layer off the cuDNN kernel (empty: it is eligible).

    Keras 3 (TensorFlow backend) runs a recurrent layer on cuDNN when a GPU is visible and:
    ``activation`` tanh, ``recurrent_activation`` sigmoid, ``recurrent_dropout`` 0, not
    ``unroll``, ``use_bias``, ``use_cudnn`` not False, and for a GRU ``reset_after``; its
    mask, if any, must be strictly right-padded with no empty row (:func:`check_right_padded`).

    :param layer: a Keras layer.
    :return: one line per unmet condition, e.g. ``recurrent_dropout=0.2 (cuDNN needs 0)``.
    """
    import keras

    if not isinstance(layer, keras.layers.GRU | keras.layers.LSTM):
        return [f"{type(layer).__name__} is not a GRU or LSTM layer"]
    config = layer.get_config()
    needs = {"activation": "tanh", "recurrent_activation": "sigmoid", "recurrent_dropout": 0,
             "unroll": False, "use_bias": True}
    if isinstance(layer, keras.layers.GRU):
        needs["reset_after"] = True
    blockers = [f"{key}={config.get(key)!r} (cuDNN needs {value!r})"
                for key, value in needs.items() if config.get(key) != value]
    if getattr(layer, "use_cudnn", "auto") is False:
        blockers.append("use_cudnn=False")
    return blockers


def check_right_padded(name: str, ids: np.ndarray) -> None:
    """Check that every row of padded ids is what cuDNN takes: ids first, then zeros, not empty.

    :param name: the input's name, for the message.
    :param ids: ``(n, time)`` ids, 0 for padding.
    :raises DataContractError: a row is empty, or has padding before an id (left-padded or
        with a hole), naming the first such row.
    """
    real = np.asarray(ids) != 0
    if real.ndim != 2 or real.shape[1] == 0:
        raise DataContractError(f"Input {name!r} has shape {np.shape(ids)}; expected "
                                "(rows, time) padded ids.")
    empty = ~real[:, 0]
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataContractError(f"Input {name!r}: {int(empty.sum())} rows start with padding "
                                f"(first: row {row}, {ids[row].tolist()[:8]}); rows must be "
                                "right-padded with at least one id (skiff.train.features.pad).")
    holes = (~real[:, :-1] & real[:, 1:]).any(axis=1)
    if holes.any():
        row = int(np.flatnonzero(holes)[0])
        raise DataContractError(f"Input {name!r}: {int(holes.sum())} rows have an id after "
                                f"padding (first: row {row}, {ids[row].tolist()[:8]}); rows "
                                "must be right-padded (skiff.train.features.pad).")
