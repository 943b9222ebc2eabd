"""The invocation contract without a model: forgiving next-item sessions, their fallback."""

from __future__ import annotations

import pytest

from skiff.serve.codec import MAX_IGNORED, BadRequest, Codec, EncodedSession

VOCAB = ["[PAD]", "[OOV]", "a", "b", "c"]
POPULAR = {"items": ["c", "a", "b"], "scores": [0.5, 0.3, 0.2]}


def rec(**meta: object) -> Codec:
    return Codec({"kind": "rec", "version": "RecFlow/3", "vocabulary": VOCAB, "max_len": 2,
                  "k": 3, "popular": POPULAR, **meta})


def test_unknown_skus_are_dropped_and_listed_in_order_once() -> None:
    codec = rec()
    (row,) = codec.encode([["new2", "a", "new1", "new2", "[PAD]", "b"]])
    assert row == [2, 3] and isinstance(row, EncodedSession)
    assert row.ignored == ("new2", "new1", "[PAD]") and not row.fallback
    assert codec.model_inputs([row]) == {"items": [[2, 3]], "first": [2]}
    (known,) = codec.encode([["a", "b"]])
    assert (known, known.ignored, known.fallback) == ([2, 3], (), False)


def test_a_session_of_unknown_skus_falls_back_to_the_popular_items() -> None:
    codec = rec()
    rows = codec.encode([["a"], ["x", "y"]])
    assert rows[1] == [1] and rows[1].fallback  # the OOV placeholder keeps one row per session
    notes = codec.annotations(rows)
    assert notes == {"ignored": [(), ("x", "y")], "fallback": [False, True]}
    outputs = {"items": [[3, 4, 2], [2, 3, 4]], "scores": [[0.6, 0.3, 0.1]] * 2, **notes}
    predictions = codec.response(outputs, k=2)["predictions"]
    assert predictions[0] == {"items": ["b", "c"], "scores": [0.6, 0.3], "ignored": [],
                              "ignored_count": 0}
    assert predictions[1] == {"items": ["c", "a"], "scores": [0.5, 0.3], "fallback": "popular",
                              "ignored": ["x", "y"], "ignored_count": 2}
    assert codec.response(outputs)["predictions"][1]["items"] == ["c", "a", "b"]  # the bundle's k


def test_a_bundle_without_popular_items_answers_an_empty_fallback_with_a_message() -> None:
    codec = Codec({"kind": "rec", "version": "RecFlow/1", "vocabulary": VOCAB, "max_len": 2,
                   "k": 3, "format": 1})  # written before bundles kept their popular items
    rows = codec.encode([["x"]])
    (prediction,) = codec.response({"items": [[2, 3, 4]], "scores": [[0.5, 0.3, 0.2]],
                                    **codec.annotations(rows)}, k=2)["predictions"]
    assert prediction["items"] == [] and prediction["scores"] == []
    assert prediction["fallback"] == "popular" and "no popular items" in prediction["message"]


def test_ignored_is_capped_and_counted() -> None:
    codec = rec()
    session = [f"new{i}" for i in range(MAX_IGNORED + 7)] + ["a"]
    rows = codec.encode([session])
    (prediction,) = codec.response({"items": [[2]], "scores": [[1.0]],
                                    **codec.annotations(rows)})["predictions"]
    assert prediction["ignored"] == session[:MAX_IGNORED]
    assert prediction["ignored_count"] == MAX_IGNORED + 7


def test_plain_id_lists_carry_no_annotations() -> None:
    codec = rec()
    assert codec.annotations([[2, 3]]) == {} and codec.annotations(codec.encode([["a"]])) == {}
    (prediction,) = codec.response({"items": [[2]], "scores": [[1.0]]})["predictions"]
    assert (prediction["ignored"], prediction["ignored_count"]) == ([], 0)


def test_intent_sessions_stay_strict() -> None:
    codec = Codec({"kind": "intent", "version": "IntentFlow/2", "max_len": 5,
                   "vocabulary": ["[PAD]", "[OOV]", "view", "add"]})
    assert codec.encode([["view", "add"]]) == [[2, 3]]
    with pytest.raises(BadRequest, match="unknown event types 'nope' .*knows view, add"):
        codec.encode([["view", "nope"]])
    assert "ignored" not in codec.response({"probability": [0.5]})["predictions"][0]


@pytest.mark.parametrize("popular", [
    {"items": ["a"], "scores": []}, {"items": "a", "scores": [1]}, {"items": ["a"]},
    {"items": ["a"], "scores": [True]}, [["a", 1.0]],
])
def test_malformed_popular_items_are_refused(popular: object) -> None:
    with pytest.raises(ValueError, match='"popular" must be'):
        rec(popular=popular)
