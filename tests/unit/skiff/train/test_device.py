"""GPU readiness on a CPU: cuDNN eligibility, right padding, the mixed-precision policy forced on."""

from __future__ import annotations

import numpy as np
import pytest

from skiff.config import TrainingConfig
from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train import device
from skiff.train import features as F

N_ITEMS, N_TOKENS = 30, len(F.EVENT_TOKENS) + 2


@pytest.mark.parametrize(
    ("setting", "gpus", "mixed"),
    [
        pytest.param("auto", 0, False, id="auto-no-gpu"),
        pytest.param("auto", 1, True, id="auto-gpu"),
        pytest.param("on", 0, True, id="on-no-gpu"),
        pytest.param("off", 4, False, id="off-gpu"),
    ],
)
def test_mixed_precision_follows_the_setting_and_the_gpus(setting: str, gpus: int,
                                                          mixed: bool) -> None:
    assert device.wants_mixed_precision(setting, gpus) is mixed


def test_mixed_precision_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TrainingConfig.from_env().mixed_precision == "auto"
    monkeypatch.setenv("SKIFF_TRAIN_MIXED_PRECISION", "ON")
    assert TrainingConfig.from_env().mixed_precision == "on"
    with pytest.raises(SkiffConfigError, match="'always' is not supported"):
        device.wants_mixed_precision("always", 1)


def test_this_machine_trains_on_its_cpu_in_float32() -> None:
    """No GPU here (CI, the lead's machine): ``auto`` keeps float32, and says CPU."""
    import keras

    if device.gpu_names():
        pytest.skip("a GPU is visible")
    assert device.device_name() == "CPU"
    with device.training_precision("auto") as policy:
        assert policy == keras.mixed_precision.global_policy().name == "float32"


def _models(cell: str) -> list:
    from skiff.train import models

    return [models.build_intent_model(N_TOKENS, embedding_dim=4, units=4, cell=cell),
            models.build_next_item_model(N_ITEMS, embedding_dim=4, units=4, cell=cell),
            models.build_next_item_model(N_ITEMS, embedding_dim=4, units=4, cell=cell, copy=False)]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_layers_meet_the_cudnn_conditions(cell: str) -> None:
    import keras

    for model in _models(cell):
        encoders = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
        assert [layer.name for layer in encoders] == ["encoder"], model.name
        assert device.cudnn_blockers(encoders[0]) == [], model.name
        config = encoders[0].get_config()  # the conditions themselves, should the check drift
        assert (config["activation"], config["recurrent_activation"]) == ("tanh", "sigmoid")
        assert config["recurrent_dropout"] == 0 and not config["unroll"] and config["use_bias"]
        assert config.get("reset_after", True) and config.get("use_cudnn", "auto") != False  # noqa: E712


def test_cudnn_blockers_name_what_breaks_eligibility() -> None:
    import keras

    assert device.cudnn_blockers(keras.layers.GRU(4, recurrent_dropout=0.2)) == [
        "recurrent_dropout=0.2 (cuDNN needs 0)"]
    blockers = device.cudnn_blockers(keras.layers.GRU(4, reset_after=False, unroll=True))
    assert blockers == ["unroll=True (cuDNN needs False)", "reset_after=False (cuDNN needs True)"]
    assert device.cudnn_blockers(keras.layers.LSTM(4, activation="relu")) == [
        "activation='relu' (cuDNN needs 'tanh')"]
    assert device.cudnn_blockers(keras.layers.LSTM(4, use_cudnn=False)) == ["use_cudnn=False"]
    assert device.cudnn_blockers(keras.layers.Dense(4)) == ["Dense is not a GRU or LSTM layer"]


def test_training_inputs_give_right_padded_masks() -> None:
    """The ids the features build (long rows cut to their latest ids) give the encoders'
    masks strictly right-padded, none empty: what cuDNN takes."""
    from skiff.train import models

    rng = np.random.default_rng(3)
    seqs = F.Ragged.from_lists(rng.integers(2, N_ITEMS, rng.integers(1, 15)) for _ in range(60))
    tokens, _ = F.pad(seqs.take(np.flatnonzero(seqs.lengths > 0)), 8)
    items = F.next_item_examples(seqs, window=6).items
    for ids, model, layer in [
            (tokens, models.build_intent_model(N_ITEMS, embedding_dim=4, units=4),
             "token_embedding"),
            (items, models.build_next_item_model(N_ITEMS, embedding_dim=4, units=4),
             "item_embedding")]:
        mask = np.asarray(model.get_layer(layer).compute_mask(ids))
        lengths = mask.sum(axis=1)
        assert (lengths >= 1).all()
        np.testing.assert_array_equal(mask, np.arange(ids.shape[1]) < lengths[:, None])
        device.check_right_padded(layer, ids)


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        pytest.param([[3, 4, 0], [0, 3, 4]], "1 rows start with padding", id="left-padded"),
        pytest.param([[3, 4, 0], [0, 0, 0]], "row 1", id="empty-row"),
        pytest.param([[3, 0, 4], [3, 4, 0]], "id after padding", id="hole"),
    ],
)
def test_fit_refuses_ids_cudnn_would_not_take(ids: list, match: str) -> None:
    from skiff.train import models

    model = models.build_intent_model(N_TOKENS, embedding_dim=4, units=4)
    with pytest.raises(DataContractError, match=match):
        models.train_intent(model, {"tokens": np.array(ids, np.int32)}, np.array([0, 1]))


@pytest.mark.slow  # 10 s of Keras builds; the auto choice's tests above stay fast
def test_mixed_precision_forced_on_a_cpu_trains_and_serves_float32() -> None:
    """``on`` without a GPU: the models build in mixed_float16, the next-item model trains a
    step with loss scaling and gives float32 logits (the intent model float32 probabilities);
    its float32 copy predicts the same."""
    import keras

    from skiff.train import models

    rng = np.random.default_rng(0)
    seqs = F.Ragged.from_lists(rng.integers(2, N_ITEMS, rng.integers(2, 7)) for _ in range(40))
    rec = F.next_item_examples(seqs, window=4, drop_oov_targets=True).take(np.arange(32))
    tokens, _ = F.pad(F.Ragged.from_lists(rng.integers(2, N_TOKENS, rng.integers(1, 9))
                                          for _ in range(32)), 8)
    with device.training_precision("on") as policy:
        assert policy == keras.mixed_precision.global_policy().name == device.MIXED
        rec_model = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8,
                                                 max_position=4, item_log_prior=np.zeros(N_ITEMS))
        intent_model = models.build_intent_model(N_TOKENS, embedding_dim=4, units=4)
        models.train_next_item(rec_model, rec.inputs(), rec.target, epochs=1, batch_size=32,
                               head="full")
        sampled = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4)
        fitted = models.train_next_item(sampled, rec.inputs(), rec.target, epochs=1,
                                        batch_size=32, num_sampled=8)
        assert np.isfinite(fitted.history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert rec_model.get_layer("encoder").compute_dtype == "float16"
    assert rec_model.get_layer("encoder").cell.kernel.dtype == "float32"
    assert isinstance(rec_model.optimizer, keras.optimizers.LossScaleOptimizer)
    logits = rec_model(rec.inputs())
    assert logits.dtype == "float32" and np.isfinite(np.asarray(logits)[:, 2:]).all()
    assert intent_model.get_layer("encoder").compute_dtype == "float16"
    assert intent_model({"tokens": tokens}).dtype == "float32"

    served = device.float32_copy(rec_model)
    assert {layer.compute_dtype for layer in served.layers} == {"float32"}
    assert served.name == rec_model.name
    np.testing.assert_allclose(np.asarray(served(rec.inputs()))[:, 2:],
                               np.asarray(logits)[:, 2:], atol=0.02)
    assert device.float32_copy(served) is served  # already float32: nothing to copy
