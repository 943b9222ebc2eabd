"""The next-item blend: smoothed transition probabilities, blended lists, the choice on validation."""

from __future__ import annotations

import numpy as np
import pytest

from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train import blend
from skiff.train import features as F

N = 7
TRAIN = F.Ragged.from_lists([[2, 3], [2, 3], [2, 4], [3, 2], [5, 5, 4]])


def test_transition_probabilities_are_smoothed_counts() -> None:
    t = blend.Transitions(N, alpha=2.0).fit(TRAIN)
    share = np.array([0, 0, 4, 3, 2, 2, 0]) / 11  # item counts of TRAIN
    np.testing.assert_allclose(t.share_, share)
    p = np.exp(t.log_probs(np.array([2, 5, 6])).astype(np.float64))
    # 2 -> 3 twice, 2 -> 4 once; 5 -> 5 is no transition; 6 never seen: popularity alone
    np.testing.assert_allclose(p[0], (np.array([0, 0, 0, 2, 1, 0, 0]) + 2 * share) / 5, atol=1e-6)
    np.testing.assert_allclose(p[1], (np.array([0, 0, 0, 0, 1, 0, 0]) + 2 * share) / 3, atol=1e-6)
    np.testing.assert_allclose(p[2], share, atol=1e-6)
    np.testing.assert_allclose(p[:, 2:].sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(t.log_probs(np.array([0]))).all()  # PAD, OOV: floored, not -inf


def test_top_successors_by_count_then_id() -> None:
    ids, counts = blend.Transitions(N).fit(TRAIN).table(2)
    assert ids[2].tolist() == [3, 4] and counts[2].tolist() == [2, 1]
    assert ids[3].tolist() == [2, -1] and counts[3].tolist() == [1, 0]
    assert ids[6].tolist() == [-1, -1]
    totals = blend.Transitions(N).fit(TRAIN).totals()
    assert totals.tolist() == [0, 0, 3, 1, 0, 1, 0]


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataContractError, match="outside the vocabulary"):
        blend.Transitions(3).fit(TRAIN)
    with pytest.raises(SkiffConfigError, match="alpha"):
        blend.Transitions(N).fit(TRAIN).log_probs(np.array([2]), alpha=0.0)
    with pytest.raises(DataContractError, match="not fitted"):
        blend.Transitions(N).log_probs(np.array([2]))


def test_last_items_are_the_windows_last() -> None:
    ex = F.next_item_examples(F.Ragged.from_lists([[2, 3, 4], [5, 6]]), window=2,
                              positions="last")
    assert blend.last_items(ex).tolist() == [3, 5]


@pytest.fixture(scope="module")
def fitted():  # noqa: ANN201
    """A small next-item model (untrained weights are enough to compare two rankings), its
    examples and the transitions of its sessions."""
    from skiff.train import models

    rng = np.random.default_rng(0)
    n = 30
    seqs = F.Ragged.from_lists(np.arange(s, min(s + k, n)) for s, k in
                               zip(rng.integers(2, n - 2, 64), rng.integers(2, 7, 64)))
    examples = F.next_item_examples(seqs, window=4, drop_oov_targets=True)
    model = models.build_next_item_model(n, embedding_dim=8, units=8, max_position=4)
    return model, examples, blend.Transitions(n, alpha=5.0).fit(seqs), seqs


def _blended(model, transitions, weight=0.5, m=64, returns=0.0):  # noqa: ANN001, ANN202
    from skiff.train import models

    ids, counts = transitions.table(m)
    return models.with_transition_blend(model, ids, counts, transitions.totals(),
                                        transitions.share_, weight=weight, alpha=5.0,
                                        returns=returns)


def test_the_served_layer_ranks_as_the_numpy_mixture(fitted, tmp_path) -> None:  # noqa: ANN001
    """In-graph (the table the model carries) and numpy (the full counts) give the same lists,
    also after a save and a SavedModel export; weight 0 is the model's own ranking."""
    from skiff.train import models

    model, examples, transitions, _ = fitted
    lists = blend.blended_top_k(model, examples, transitions, weights=[0.0, 0.5], alphas=[5.0],
                                returns=[0.0, 0.3], k=5)
    plain = _blended(model, transitions)
    np.testing.assert_array_equal(models.predict_next_item(plain, examples.inputs(), 5)[0],
                                  lists[(0.5, 5.0, 0.0)])
    blended = _blended(model, transitions, returns=0.3)
    top, scores = models.predict_next_item(blended, examples.inputs(), 5)
    np.testing.assert_array_equal(top, lists[(0.5, 5.0, 0.3)])
    assert not np.array_equal(lists[(0.0, 5.0, 0.0)], lists[(0.5, 5.0, 0.0)])  # the blend moves
    assert not np.array_equal(lists[(0.5, 5.0, 0.0)], lists[(0.5, 5.0, 0.3)])  # so do returns
    np.testing.assert_array_equal(lists[(0.0, 5.0, 0.0)],
                                  models.predict_next_item(model, examples.inputs(), 5)[0])
    assert (np.diff(scores, axis=1) <= 0).all() and (scores > 0).all() and (scores <= 1).all()
    saved = models.load_saved_model(models.export_saved_model(blended, tmp_path / "rec", k=5))
    np.testing.assert_array_equal(models.predict_next_item(saved, examples.inputs(), 5)[0], top)
    again = models.load_keras(models.save_keras(blended, tmp_path / "rec.keras"))
    np.testing.assert_array_equal(models.predict_next_item(again, examples.inputs(), 5)[0], top)


def test_a_short_table_counts_the_rest_as_unseen(fitted) -> None:  # noqa: ANN001
    """One successor per item: the layer's probabilities are the smoothed counts of that one."""
    from skiff.train import models

    model, examples, transitions, _ = fitted
    ids, counts = transitions.table(1)
    only = _blended(model, transitions, weight=1.0, m=1)  # weight 1: the transitions alone
    out = np.exp(np.asarray(only(examples.inputs(), training=False), np.float64))
    last = blend.last_items(examples)
    share, total = transitions.share_, transitions.totals()
    expect = 5.0 * share[None, :] / (total[last] + 5.0)[:, None]
    rows = np.flatnonzero(ids[last, 0] >= 0)
    expect[rows, ids[last[rows], 0]] += counts[last[rows], 0] / (total[last[rows]] + 5.0)
    np.testing.assert_allclose(out[:, 2:], expect[:, 2:], rtol=1e-4)
    with pytest.raises(SkiffConfigError, match="must be in"):
        models.with_transition_blend(model, ids, counts, total, share, weight=1.5, alpha=5.0)
    with pytest.raises(DataContractError, match="do not match"):
        models.with_transition_blend(model, ids[:3], counts[:3], total, share, weight=0.5,
                                     alpha=5.0)


def test_session_returns_weigh_the_anchor_the_step_back_and_the_rest() -> None:
    """First item, the item before the last and the window's earlier items get their shares;
    PAD and OOV nothing; a one-item session gets popularity."""
    ex = F.NextItemExamples(items=np.array([[4, 5, 6, 7], [3, 0, 0, 0], [1, 8, 9, 0]]),
                            first=np.array([2, 3, 1]), target=np.array([9, 9, 9]),
                            length=np.array([6, 1, 3]), session=np.arange(3))
    share = np.r_[0.0, 0.0, np.full(8, 1 / 8)]
    back = blend.session_returns(ex, share, anchor=0.3, step_back=0.2)
    expect = np.zeros(10)
    expect[[4, 5, 6]] += 0.5 / 3
    expect[2] += 0.3
    expect[6] += 0.2
    np.testing.assert_allclose(back[0], expect)
    np.testing.assert_allclose(back[1], share)
    np.testing.assert_allclose(back[2], np.eye(10)[8] * (0.25 + 0.2))  # OOV's share is dropped
    with pytest.raises(SkiffConfigError, match="sum to at most 1"):
        blend.session_returns(ex, share, anchor=0.8, step_back=0.3)


def test_the_layers_returns_are_the_numpy_ones(fitted) -> None:  # noqa: ANN001
    """Returns alone (weight 0, returns 1): the served layer's distribution is
    :func:`blend.session_returns`; a mixture past 1 is refused."""
    model, examples, transitions, _ = fitted
    only = _blended(model, transitions, weight=0.0, returns=1.0)
    out = np.exp(np.asarray(only(examples.inputs(), training=False), np.float64))
    expect = blend.session_returns(examples, transitions.share_)
    np.testing.assert_allclose(out[:, 2:], expect[:, 2:], atol=1e-6)
    with pytest.raises(SkiffConfigError, match="sum <= 1"):
        _blended(model, transitions, weight=0.9, returns=0.2)


def test_a_warm_start_takes_the_champions_weights_not_its_table(fitted) -> None:  # noqa: ANN001
    """A blended champion's weights warm-start a fresh model; the run blends with a table
    counted on its own sessions."""
    from skiff.train import models, next_item, warm

    model, examples, transitions, seqs = fitted
    champion = _blended(model, transitions)
    weights = {w.path: w.numpy() for w in champion.weights if "seed_generator" not in w.path}
    assert "transition_blend/successors" in weights
    tokens = ["[PAD]", "[OOV]"] + [f"sku{i}" for i in range(2, 30)]
    fresh = models.build_next_item_model(30, embedding_dim=8, units=8, max_position=4)
    assert warm.warm_start(fresh, weights, tokens=tokens, champion_tokens=tokens) is not None
    np.testing.assert_array_equal(fresh.get_layer("catalogue").item_vectors.numpy(),
                                  weights["catalogue/item_vectors"])
    own = F.Ragged.from_lists([[2, 9], [2, 9], [9, 2]])  # this run's window
    data = next_item.NextItemData(
        vocab=F.Vocabulary(tuple(tokens)), train_seqs=own, train_examples=examples,
        eval_examples=examples, counts=F.item_counts(own, 30), window=4)
    run = next_item.with_blend(fresh, data, *next_item.BLEND)
    table = run.get_layer("transition_blend").successors.numpy()
    assert table[2, 0] == 9 and table[9, 0] == 2 and (table[3] == -1).all()
    assert next_item.with_blend(fresh, data, 0.0, 5.0) is fresh


def test_the_server_ranks_with_the_blend(fitted, tmp_path) -> None:  # noqa: ANN001
    """A blended model's bundle loads in the model server, whose lists are the blend's."""
    from skiff.serve import LoadedModel, write_bundle
    from skiff.train import models

    model, examples, transitions, _ = fitted
    blended = _blended(model, transitions)
    vocab = F.Vocabulary(("[PAD]", "[OOV]", *(f"sku{i}" for i in range(2, 30))))
    bundle = write_bundle(blended, tmp_path / "rec", kind="rec", vocabulary=vocab,
                          version="RecFlow/1", max_len=4, k=5)
    loaded = LoadedModel.load(bundle)
    sessions = [["sku3", "sku4", "sku5"], ["sku9"]]
    items = np.array([[3, 4, 5, 0], [9, 0, 0, 0]], np.int32)
    expected = models.predict_next_item(blended, {"items": items, "first": np.array([3, 9])}, 5)
    np.testing.assert_array_equal(loaded.predict(loaded.codec.encode(sessions))["items"],
                                  expected[0])
    alone = models.predict_next_item(model, {"items": items, "first": np.array([3, 9])}, 5)
    assert not np.array_equal(alone[0], expected[0])
