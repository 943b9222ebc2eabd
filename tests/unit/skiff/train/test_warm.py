"""Warm start: when a run fine-tunes, and that it starts from the champion's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skiff.exceptions import SkiffConfigError
from skiff.train import features as F
from skiff.train import warm

N_ITEMS = 30


def test_when_a_run_warm_starts() -> None:
    assert warm.should_warm_start("on", interval_end="2024-06-01T05:00:00+00:00")
    assert warm.should_warm_start("on")
    assert not warm.should_warm_start("off", interval_end="2024-06-01T05:00:00+00:00")
    assert not warm.should_warm_start("on", full_retrain=True)
    assert not warm.should_warm_start("on", interval_end="2024-06-01T00:00:00+00:00")  # daily
    with pytest.raises(SkiffConfigError, match="'sometimes'"):
        warm.should_warm_start("sometimes")


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A next-item model trained on runs of items (2, 3, 4 ...: a pattern to learn), exported
    as a bundle's SavedModel."""
    from skiff.serve.bundle import SAVED_MODEL_DIR
    from skiff.train import models

    rng = np.random.default_rng(0)
    seqs = F.Ragged.from_lists(np.arange(s, min(s + n, N_ITEMS)) for s, n in
                               zip(rng.integers(2, N_ITEMS - 2, 64), rng.integers(2, 7, 64)))
    examples = F.next_item_examples(seqs, window=4, drop_oov_targets=True)
    model = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4)
    models.train_next_item(model, examples.inputs(), examples.target, epochs=30, batch_size=64,
                           head="full", learning_rate=2e-2)
    bundle = tmp_path_factory.mktemp("bundle")
    models.export_saved_model(model, bundle / SAVED_MODEL_DIR)
    tokens = ["[PAD]", "[OOV]"] + [f"sku{i}" for i in range(2, N_ITEMS)]
    return model, bundle, tokens, examples


def _new_vocabulary(tokens: list[str]) -> tuple[list[str], np.ndarray]:
    """The champion's SKUs but four, shuffled, and four new ones: (tokens, champion id -> new id)."""
    rng = np.random.default_rng(1)
    kept = [t for t in tokens[2:] if t not in {"sku3", "sku4", "sku5", "sku6"}]
    new = kept + ["new1", "new2", "new3", "new4"]
    new = ["[PAD]", "[OOV]"] + [new[i] for i in rng.permutation(len(new))]
    index = {t: i for i, t in enumerate(new)}
    return new, np.array([index.get(t, 1) for t in tokens])


def test_a_warm_started_model_scores_known_items_as_the_champion(champion) -> None:  # noqa: ANN001
    from skiff.train import models

    model, bundle, tokens, examples = champion
    weights = warm.champion_weights(bundle)
    assert "catalogue/item_vectors" in weights and not any("seed_generator" in k for k in weights)
    new_tokens, to_new = _new_vocabulary(tokens)
    keep = ~np.isin(examples.items, [3, 4, 5, 6]).any(axis=1) & ~np.isin(examples.first,
                                                                          [3, 4, 5, 6])
    inputs = {"items": examples.items[keep], "first": examples.first[keep]}
    moved = {"items": to_new[inputs["items"]], "first": to_new[inputs["first"]]}
    theirs = np.asarray(model(inputs, training=False))
    shared = np.array([i for i, t in enumerate(tokens[2:], 2) if t in new_tokens])

    fresh = models.build_next_item_model(len(new_tokens), embedding_dim=8, units=8,
                                         max_position=4)
    before = np.asarray(fresh(moved, training=False))
    assert not np.allclose(before[:, to_new[shared]], theirs[:, shared], atol=1e-3)
    copied = warm.warm_start(fresh, weights, tokens=new_tokens, champion_tokens=tokens)
    assert copied is not None and copied.new_rows == 4 and copied.rows == len(new_tokens) - 4
    after = np.asarray(fresh(moved, training=False))
    np.testing.assert_allclose(after[:, to_new[shared]], theirs[:, shared], rtol=1e-5, atol=1e-5)


def test_a_warm_started_fit_starts_at_the_champions_loss(champion) -> None:  # noqa: ANN001
    """Loss of the first batch: near the champion's when warm, log(catalogue) when fresh."""
    import keras

    from skiff.train import models

    model, bundle, tokens, examples = champion
    start = warm.StartFrom("RecFlow/1", warm.champion_weights(bundle), tokens, epochs=1)

    class FirstLoss(keras.callbacks.Callback):
        loss = None

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if batch == 0:
                FirstLoss.loss = float(logs["loss"])

    def first_loss(start_from: warm.StartFrom | None) -> tuple[float, int, dict]:
        fresh = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4)
        epochs, params = warm.start(fresh, start_from, tokens, epochs=5)
        models.train_next_item(fresh, examples.inputs(), examples.target, epochs=1,
                               batch_size=len(examples.target), head="full",
                               learning_rate=1e-9, callbacks=[FirstLoss()])
        return FirstLoss.loss, epochs, params

    trained = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        examples.target, model(examples.inputs(), training=False)))
    warm_loss, warm_epochs, params = first_loss(start)
    cold_loss, cold_epochs, cold = first_loss(None)
    assert warm_epochs == 1 and params["warm_start_from"] == "RecFlow/1"
    assert cold_epochs == 5 and cold == {"warm_start_from": None}
    assert cold_loss == pytest.approx(np.log(N_ITEMS - 2), rel=0.1)
    assert trained < 1.0 and warm_loss < 0.5 * cold_loss  # (dropout is on in a fit's loss)


def test_another_architecture_is_not_warm_started(champion) -> None:  # noqa: ANN001
    from skiff.train import models

    _, bundle, tokens, _ = champion
    other = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=16, max_position=4)
    before = [w.numpy().copy() for w in other.weights]
    assert warm.warm_start(other, warm.champion_weights(bundle), tokens=tokens,
                           champion_tokens=tokens) is None
    for was, now in zip(before, other.weights, strict=True):
        np.testing.assert_array_equal(was, now.numpy())
    epochs, params = warm.start(other, warm.StartFrom("x/1", warm.champion_weights(bundle),
                                                      tokens, 1), tokens, 7)
    assert epochs == 7 and params == {"warm_start_from": None}


def test_a_champion_with_a_dense_catalogue_kernel_is_not_warm_started(
        champion, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    """Champions trained before the head stored item vectors row by row had a Dense kernel of
    shape ``(units, n_items)``: a run trains from scratch, and the log says why."""
    from skiff.train import models

    _, bundle, tokens, _ = champion
    weights = dict(warm.champion_weights(bundle))
    weights["catalogue/kernel"] = weights.pop("catalogue/item_vectors").T
    fresh = models.build_next_item_model(N_ITEMS, embedding_dim=8, units=8, max_position=4)
    with caplog.at_level("WARNING", logger="skiff.train.warm"):
        assert warm.warm_start(fresh, weights, tokens=tokens, champion_tokens=tokens) is None
    assert "the champion has no weight catalogue/item_vectors" in caplog.text


def test_no_champion_means_no_start(tmp_path: Path) -> None:
    assert warm.from_champion(None, 2) is None
