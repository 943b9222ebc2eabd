"""Keras models on tiny data: build, train one epoch, predict, save/export and reload."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from skiff.train import features as F
from skiff.exceptions import DataContractError, MissingInputError, SkiffConfigError

N_ITEMS, N_TOKENS = 30, len(F.EVENT_TOKENS) + 2


def test_importing_the_library_does_not_import_tensorflow() -> None:
    import subprocess

    code = ("import sys, skiff.train.models, skiff.train.features, skiff.train.metrics, skiff.train.datasets, "
            "skiff.train.baselines; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.fixture(scope="module")
def models():  # noqa: ANN201  (the module, imported lazily so collection stays cheap)
    from skiff.train import models

    return models


@pytest.fixture(scope="module")
def rec_data() -> F.NextItemExamples:
    rng = np.random.default_rng(0)
    seqs = F.Ragged.from_lists(rng.integers(2, N_ITEMS, rng.integers(2, 7)) for _ in range(40))
    examples = F.next_item_examples(seqs, window=4, drop_oov_targets=True)
    return examples.take(np.arange(64))  # whole batches: Keras traces the train step once


@pytest.fixture(scope="module")
def rec_model(models, rec_data: F.NextItemExamples):  # noqa: ANN001, ANN201
    model = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4,
                                         item_log_prior=np.zeros(N_ITEMS))
    result = models.train_next_item(model, rec_data.inputs(), rec_data.target, epochs=1,
                                    batch_size=64, num_sampled=16)
    assert set(result.history) >= {"loss"} and len(result.history["loss"]) == 1
    assert result.params["epochs"] == 1 and result.seconds > 0
    assert result.params["head"] == "sampled" and result.model is model
    return model


def test_full_softmax_head_still_trains(models, rec_data) -> None:  # noqa: ANN001
    model = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4)
    result = models.train_next_item(model, rec_data.inputs(), rec_data.target, epochs=2,
                                    batch_size=64, head="full")
    assert set(result.history) >= {"loss", "hit_rate@20"}
    assert result.history["loss"][1] < result.history["loss"][0]


@pytest.mark.parametrize("copy", [True, False])
def test_sampled_logits_are_the_full_logits_of_their_candidates(models, rec_data,  # noqa: ANN001
                                                                copy: bool) -> None:
    """Column 0 is the target's full logit, then each session item's (copy score included),
    then the drawn items' plus their logQ correction; candidates met twice are masked."""
    import tensorflow as tf

    model = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4,
                                         copy=copy)
    trainer = models._sampled_trainer(model, rec_data.target, num_sampled=8)
    layer = trainer.get_layer("sampled_logits")
    drawn = np.array([2, 3, 5, 7, 11, 13], np.int32)
    correction = np.linspace(-1.0, 1.0, len(drawn)).astype(np.float32)
    layer._draw = lambda: (tf.constant(drawn), tf.constant(correction))
    inputs = rec_data.inputs()
    out = np.asarray(trainer({**inputs, "target": rec_data.target}, training=False))
    full = np.asarray(model(inputs, training=False))
    rows = np.arange(len(rec_data.target))
    np.testing.assert_allclose(out[:, 0], full[rows, rec_data.target], rtol=1e-5, atol=1e-5)
    session = np.concatenate([inputs["items"], inputs["first"][:, None]], axis=1) if copy \
        else np.zeros((len(rows), 0), np.int32)
    width = session.shape[1]
    for b in rows:
        seen = {int(rec_data.target[b])}
        for j, item in enumerate(session[b]):
            got = out[b, 1 + j]
            if item < 2 or item in seen:
                assert got < -1e8, (b, j, item)
            else:
                assert got == pytest.approx(full[b, item], abs=1e-5)
            seen.add(int(item))
        for j, item in enumerate(drawn):
            got = out[b, 1 + width + j]
            if item in seen:
                assert got < -1e8, (b, j, item)
            else:
                assert got == pytest.approx(full[b, item] + correction[j], abs=1e-5)


def test_a_sampled_fit_trains_every_weight_of_the_full_model(models, rec_data) -> None:  # noqa: ANN001
    """The catalogue's kernel and bias are trained though the full head never runs."""
    model = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4)
    before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    models.train_next_item(model, rec_data.inputs(), rec_data.target, epochs=1, batch_size=16,
                           num_sampled=8)
    unchanged = [w.path for w in model.trainable_weights
                 if np.array_equal(before[w.path], w.numpy())]
    assert unchanged == []


def test_sampling_distribution_follows_target_counts(models) -> None:  # noqa: ANN001
    log_q = models.sampling_log_q(np.array([2, 2, 2, 3], np.int32), 5, power=1.0)
    assert np.isneginf(log_q[:2]).all()
    np.testing.assert_allclose(np.exp(log_q[2:]), [4 / 7, 2 / 7, 1 / 7])


@pytest.fixture(scope="module")
def intent_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    tokens = F.Ragged.from_lists(rng.integers(2, N_TOKENS, rng.integers(1, 9)) for _ in range(48))
    ids, _ = F.pad(tokens, 8)
    return {"tokens": ids, "features": rng.normal(size=(48, 3)).astype(np.float32),
            "labels": rng.integers(0, 2, 48)}


@pytest.fixture(scope="module")
def intent_model(models, intent_data: dict[str, np.ndarray]):  # noqa: ANN001, ANN201
    """Untrained (fitting costs seconds of tracing; see the slow test below)."""
    f = intent_data["features"]
    return models.build_intent_model(N_TOKENS, n_features=3, feature_mean=f.mean(0),
                                     feature_variance=f.var(0), embedding_dim=4, units=4)


@pytest.mark.slow
def test_train_intent_one_epoch(models, intent_model,  # noqa: ANN001
                                intent_data: dict[str, np.ndarray]) -> None:
    inputs = {"tokens": intent_data["tokens"], "features": intent_data["features"]}
    before = models.predict_intent(intent_model, inputs)
    result = models.train_intent(intent_model, inputs, intent_data["labels"], epochs=1,
                                 batch_size=16, validation=(inputs, intent_data["labels"]))
    assert set(result.history) == {"loss", "auc", "val_loss", "val_auc"}
    assert not np.allclose(models.predict_intent(intent_model, inputs), before)


def test_predict_next_item_returns_sorted_top_k_products(models, rec_model,  # noqa: ANN001
                                                         rec_data: F.NextItemExamples) -> None:
    items, scores = models.predict_next_item(rec_model, rec_data.inputs(), k=5, batch_size=7)
    assert items.shape == scores.shape == (len(rec_data), 5)
    assert items.dtype == np.int32 and scores.dtype == np.float32
    assert (items >= 2).all() and (items < N_ITEMS).all()  # never PAD or OOV
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    assert all(len(set(row)) == 5 for row in items.tolist())
    single = models.predict_next_item(rec_model, rec_data.take(np.array([3])).inputs(), k=5)
    np.testing.assert_array_equal(single[0], items[3:4])  # batching does not change results


def test_copy_scores_reach_the_session_items(models, rec_model) -> None:  # noqa: ANN001
    """Only the items of the session (and its first item) get a copy score."""
    import keras

    logits = keras.Model(rec_model.inputs, rec_model.get_layer("catalogue").output)
    inputs = {"items": np.array([[5, 7, 0, 0]], np.int32), "first": np.array([9], np.int32)}
    base = np.asarray(logits(inputs))[0]
    full = np.asarray(rec_model(inputs))[0]
    moved = np.flatnonzero(~np.isclose(full, base, atol=1e-6))
    assert set(moved.tolist()) == {0, 1, 5, 7, 9}  # PAD/OOV masked, session items boosted


def test_item_log_prior_starts_the_catalogue_bias(models) -> None:  # noqa: ANN001
    prior = np.linspace(-1, 1, N_ITEMS).astype(np.float32)
    model = models.build_next_item_model(N_ITEMS, embedding_dim=4, units=4, item_log_prior=prior)
    np.testing.assert_allclose(np.asarray(model.get_layer("catalogue").bias), prior)


def test_predict_intent_probabilities(models, intent_model,  # noqa: ANN001
                                      intent_data: dict[str, np.ndarray]) -> None:
    p = models.predict_intent(intent_model, {"tokens": intent_data["tokens"],
                                             "features": intent_data["features"]}, batch_size=10)
    assert p.shape == (48,) and p.dtype == np.float32 and ((p > 0) & (p < 1)).all()


def test_intent_model_takes_any_sequence_length(models) -> None:  # noqa: ANN001
    model = models.build_intent_model(N_TOKENS, embedding_dim=4, units=4)
    short = models.predict_intent(model, {"tokens": np.array([[2, 3, 4]])})
    padded = models.predict_intent(model, {"tokens": np.array([[2, 3, 4, 0, 0, 0]])})
    np.testing.assert_allclose(short, padded, rtol=1e-5)  # padding is masked


def test_saved_model_and_keras_file_reload_to_the_same_predictions(
        models, rec_model, intent_model, rec_data: F.NextItemExamples,  # noqa: ANN001
        intent_data: dict[str, np.ndarray], tmp_path: Path) -> None:
    rec_inputs = rec_data.inputs()
    items, scores = models.predict_next_item(rec_model, rec_inputs, k=5)
    saved = models.load_saved_model(models.export_saved_model(rec_model, tmp_path / "rec", k=5))
    again = models.predict_next_item(saved, rec_inputs, k=5)
    np.testing.assert_array_equal(again[0], items)
    np.testing.assert_allclose(again[1], scores, rtol=1e-5)
    with pytest.raises(SkiffConfigError, match="exported with"):
        models.predict_next_item(saved, rec_inputs, k=6)
    keras_file = models.save_keras(rec_model, tmp_path / "rec")
    assert keras_file.name == "rec.keras"
    np.testing.assert_array_equal(models.predict_next_item(models.load_keras(keras_file),
                                                           rec_inputs, k=5)[0], items)

    inputs = {"tokens": intent_data["tokens"], "features": intent_data["features"]}
    p = models.predict_intent(intent_model, inputs)
    saved = models.load_saved_model(models.export_saved_model(intent_model, tmp_path / "intent"))
    np.testing.assert_allclose(models.predict_intent(saved, inputs), p, rtol=1e-5)
    raw = saved.serve(tokens=inputs["tokens"], features=inputs["features"])  # the signature
    np.testing.assert_allclose(np.asarray(raw["probability"]), p, rtol=1e-5)


def test_builder_and_training_errors_name_the_problem(models, rec_data) -> None:  # noqa: ANN001
    with pytest.raises(SkiffConfigError, match="cell='rnn'"):
        models.build_intent_model(N_TOKENS, cell="rnn")
    with pytest.raises(SkiffConfigError, match="units=0"):
        models.build_next_item_model(N_ITEMS, units=0)
    with pytest.raises(DataContractError, match="item_log_prior"):
        models.build_next_item_model(N_ITEMS, item_log_prior=np.zeros(3))
    model = models.build_next_item_model(N_ITEMS, embedding_dim=4, units=4)
    with pytest.raises(DataContractError, match="'first' has 1 rows"):
        models.train_next_item(model, {"items": rec_data.items, "first": rec_data.first[:1]},
                               rec_data.target)
    with pytest.raises(SkiffConfigError, match="learning_rate"):
        models.train_next_item(model, rec_data.inputs(), rec_data.target, learning_rate=0)
    with pytest.raises(SkiffConfigError, match="head='nope'"):
        models.train_next_item(model, rec_data.inputs(), rec_data.target, head="nope")
    with pytest.raises(DataContractError, match="item ids in"):
        models.train_next_item(model, rec_data.inputs(), rec_data.target + N_ITEMS)
    with pytest.raises(DataContractError, match=r"lack \['first'\]"):
        models.predict_next_item(model, {"items": rec_data.items})


def test_loaders_report_missing_files(models, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(MissingInputError, match="No Keras model file"):
        models.load_keras(tmp_path / "nope.keras")
    with pytest.raises(MissingInputError, match="No SavedModel"):
        models.load_saved_model(tmp_path)
