"""Features on tiny hand-built sequences: vocabularies, prefixes at the add, padding, windows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from skiff.train import features as F
from skiff.exceptions import DataContractError, SkiffConfigError

# ------------------------------------------------------------------------------ Ragged


def test_ragged_rows_take_and_head() -> None:
    r = F.Ragged.from_lists([[5, 6, 7], [], [8]])
    assert len(r) == 3 and r.lengths.tolist() == [3, 0, 1]
    assert r[0].tolist() == [5, 6, 7] and r[1].tolist() == []
    assert r.take([2, 0]).tolist() == [[8], [5, 6, 7]]
    assert r.head(np.array([2, 5, 0])).tolist() == [[5, 6], [], []]


def test_ragged_rejects_bad_offsets() -> None:
    with pytest.raises(DataContractError, match="offsets"):
        F.Ragged(np.array([1, 2]), np.array([0, 3]))


# -------------------------------------------------------------------------- vocabulary

def test_build_vocabulary_orders_by_count_then_token_and_applies_min_count() -> None:
    vocab = F.build_vocabulary([["b", "a", "c"], ["a", "b"], ["a", "d"]], min_count=2)
    assert vocab.tokens == (F.PAD_TOKEN, F.OOV_TOKEN, "a", "b")
    assert vocab.index("a") == 2 and vocab.index("c") == F.OOV and "c" not in vocab
    assert vocab.encode(["b", "zzz", "a"]).tolist() == [3, F.OOV, 2]
    assert vocab.decode([2, 3, 1, 0]) == ["a", "b", F.OOV_TOKEN, F.PAD_TOKEN]


def test_build_vocabulary_max_size_counts_pad_and_oov() -> None:
    vocab = F.build_vocabulary([["a", "a", "b", "c"]], max_size=3)
    assert vocab.tokens == (F.PAD_TOKEN, F.OOV_TOKEN, "a")


def test_arrow_and_python_inputs_agree() -> None:
    rows = [["a", "b"], None, ["c", None, "a"], []]
    arrow = pa.array(rows, pa.list_(pa.string()))
    vocab = F.build_vocabulary(arrow)
    assert vocab == F.build_vocabulary([r or [] for r in rows])
    encoded = vocab.encode_many(arrow)
    assert encoded.tolist() == [[vocab.index("a"), vocab.index("b")], [],
                                [vocab.index("c"), F.OOV, vocab.index("a")], []]
    python = vocab.encode_many([["a", "b"], [], ["c", "?", "a"], []]).tolist()
    assert python == encoded.tolist()


def test_vocabulary_json_round_trip_and_errors() -> None:
    vocab = F.event_vocabulary()
    assert F.Vocabulary.from_json(vocab.to_json()) == vocab
    assert vocab.tokens[2:] == F.EVENT_TOKENS
    with pytest.raises(DataContractError, match="Not a saved vocabulary"):
        F.Vocabulary.from_json("[1, 2]")
    with pytest.raises(DataContractError, match="starts with"):
        F.Vocabulary(("a", "b"))
    with pytest.raises(DataContractError, match="Ids must be in"):
        vocab.decode([99])
    with pytest.raises(SkiffConfigError, match="min_count"):
        F.build_vocabulary([["a"]], min_count=0)


# ------------------------------------------------------------------ intent prefixes

EV = F.event_vocabulary()
PURCHASE = EV.index("purchase")


def _tokens(*sessions: list[str]) -> F.Ragged:
    return EV.encode_many(list(sessions))


def test_prefix_at_add_keeps_events_up_to_and_including_the_add() -> None:
    tokens = _tokens(["view", "detail", "add", "detail", "view", "purchase"],
                     ["detail", "add"])
    prefixes, rows = F.prefix_at_add(tokens, np.array([3, 2]), stop_id=PURCHASE)
    assert rows.tolist() == [0, 1]
    assert [EV.decode(p) for p in prefixes.tolist()] == [["view", "detail", "add"],
                                                         ["detail", "add"]]


@pytest.mark.parametrize(
    ("after", "rows", "length"),
    [
        pytest.param(2, [0], 5, id="add+2-session-2-too-short"),
        pytest.param(3, [], 0, id="add+3-would-reveal-the-purchase"),
    ],
)
def test_prefix_after_add_drops_short_sessions_and_revealed_purchases(
        after: int, rows: list[int], length: int) -> None:
    tokens = _tokens(["view", "detail", "add", "detail", "view", "purchase"],
                     ["detail", "add", "view"])
    prefixes, kept = F.prefix_at_add(tokens, np.array([3, 2]), after_add=after,
                                     stop_id=PURCHASE)
    assert kept.tolist() == rows
    assert prefixes.lengths.tolist() == ([length] if rows else [])


def test_prefix_at_add_skips_sessions_without_add_and_checks_indices() -> None:
    tokens = _tokens(["view", "detail"], ["add"])
    _, rows = F.prefix_at_add(tokens, np.array([0, 1]))
    assert rows.tolist() == [1]
    with pytest.raises(DataContractError, match="first add at event 5"):
        F.prefix_at_add(tokens, np.array([5, 1]))
    with pytest.raises(DataContractError, match="one per session"):
        F.prefix_at_add(tokens, np.array([1]))
    with pytest.raises(SkiffConfigError, match="after_add"):
        F.prefix_at_add(tokens, np.array([0, 1]), after_add=-1)


def test_intent_examples_stack_offsets_with_labels() -> None:
    tokens = _tokens(["detail", "add", "view", "view"], ["add", "purchase"])
    ex = F.intent_examples(tokens, np.array([2, 1]), np.array([0, 1]), after_add=(0, 2),
                           stop_id=PURCHASE)
    assert ex.after_add.tolist() == [0, 0, 2]
    assert ex.session.tolist() == [0, 1, 0]
    assert ex.labels.tolist() == [0, 1, 0]
    assert ex.prefixes.lengths.tolist() == [2, 1, 4]
    assert len(ex.take(np.array([2]))) == 1


def test_intent_session_features() -> None:
    out = F.intent_session_features(np.array([99.0, 0.0]), np.array([3, 0]),
                                    np.array([4.0, np.nan]), np.array([2, 0]))
    assert out.dtype == np.float32 and out.shape == (2, len(F.SESSION_FEATURES))
    np.testing.assert_allclose(out[0], [np.log(100), np.log1p(33), 4, 0, 2], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0, 0, 0, 1, 0])
    with pytest.raises(DataContractError, match="differ in length"):
        F.intent_session_features(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(1))


def test_first_item_views_counts_the_first_id_within_the_limit() -> None:
    items = F.Ragged.from_lists([[5, 6, 5, 7, 5], [8], [], [9, 9]])
    assert F.first_item_views(items, np.array([4, 3, 2, 0])).tolist() == [2, 1, 0, 0]
    assert F.first_item_views(items, np.array([9, 1, 0, 2])).tolist() == [3, 1, 0, 2]
    with pytest.raises(DataContractError, match="within"):
        F.first_item_views(items, np.array([1]))


# ------------------------------------------------------------------ padding and counts

def test_pad_is_right_padded_keeps_the_latest_and_masks() -> None:
    ids, mask = F.pad(F.Ragged.from_lists([[2, 3, 4, 5], [6], []]), 3)
    assert ids.tolist() == [[3, 4, 5], [6, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert ids.dtype == np.int32
    with pytest.raises(SkiffConfigError, match="max_len"):
        F.pad(F.Ragged.from_lists([[2]]), 0)


def test_count_features_counts_each_token_then_length() -> None:
    out = F.count_features(_tokens(["view", "view", "add"], []), len(EV))
    # columns: OOV, view, detail, add, remove, purchase, length
    assert out.tolist() == [[0, 2, 0, 1, 0, 0, 3], [0, 0, 0, 0, 0, 0, 0]]
    with pytest.raises(DataContractError, match="Token ids"):
        F.count_features(F.Ragged.from_lists([[0]]), len(EV))


# ----------------------------------------------------------------- next-item windows

def test_next_item_examples_every_position_with_window() -> None:
    ex = F.next_item_examples(F.Ragged.from_lists([[5, 6, 7, 8], [9]]), window=2)
    assert ex.items.tolist() == [[5, 0], [5, 6], [6, 7]]
    assert ex.target.tolist() == [6, 7, 8]
    assert ex.length.tolist() == [1, 2, 3]
    assert ex.first.tolist() == [5, 5, 5]  # kept although the window dropped it
    assert ex.session.tolist() == [0, 0, 0]
    assert set(ex.inputs()) == {"items", "first"}


def test_next_item_examples_last_position_for_evaluation() -> None:
    seqs = F.Ragged.from_lists([[5, 6, 7, 8], [9], [3, F.OOV]])
    ex = F.next_item_examples(seqs, window=2, positions="last")
    assert ex.items.tolist() == [[6, 7], [3, 0]]
    assert ex.target.tolist() == [8, F.OOV]  # unknown targets stay: they count as misses
    assert ex.session.tolist() == [0, 2]
    trained = F.next_item_examples(seqs, window=2, drop_oov_targets=True)
    assert F.OOV not in trained.target.tolist()


def test_next_item_examples_rejects_bad_arguments() -> None:
    seqs = F.Ragged.from_lists([[2, 3]])
    with pytest.raises(SkiffConfigError, match="window"):
        F.next_item_examples(seqs, window=0)
    with pytest.raises(SkiffConfigError, match="positions"):
        F.next_item_examples(seqs, positions="first")


def test_item_counts() -> None:
    assert F.item_counts(F.Ragged.from_lists([[2, 3], [2]]), 5).tolist() == [0, 0, 2, 1, 0]
