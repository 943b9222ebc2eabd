"""Baselines on hand-built data: majority, logistic regression, most popular, co-occurrence."""

from __future__ import annotations

import numpy as np
import pytest

from skiff.train import baselines as B
from skiff.train import features as F
from skiff.exceptions import DataContractError, SkiffConfigError


def test_majority_class_predicts_the_training_rate() -> None:
    m = B.MajorityClass().fit(np.zeros((4, 1)), np.array([0, 0, 0, 1]))
    assert m.predict_proba(np.zeros((2, 1))).tolist() == [0.25, 0.25]
    assert not (m.predict_proba(np.zeros((1, 1))) >= m.threshold).any()  # predicts 0
    m = B.MajorityClass().fit(np.zeros((2, 1)), np.array([1, 1]))
    assert (m.predict_proba(np.zeros((1, 1))) >= m.threshold).all()  # predicts 1


def test_logistic_regression_recovers_a_known_model() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))).astype(int)
    m = B.LogisticRegression(l2=0.0, log1p=False).fit(x, y)
    coef = m.coef_ / m.scale_  # back to the raw scale
    intercept = m.intercept_ - (m.mean_ / m.scale_) @ m.coef_
    np.testing.assert_allclose([intercept, *coef], [0.5, 2.0, -1.0], atol=0.15)
    p = m.predict_proba(x)
    assert p.shape == (4000,) and (0 < p).all() and (p < 1).all()


def test_logistic_regression_survives_separable_and_constant_columns() -> None:
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    m = B.LogisticRegression().fit(x, np.array([0, 0, 1, 1]))
    p = m.predict_proba(x)
    assert np.all(np.isfinite(p)) and p[0] < 0.5 < p[3]
    with pytest.raises(DataContractError, match="Expected 2 features"):
        m.predict_proba(np.zeros((1, 3)))
    with pytest.raises(DataContractError, match="labels have shape"):
        B.LogisticRegression().fit(x, np.array([0, 1]))
    with pytest.raises(SkiffConfigError, match="l2"):
        B.LogisticRegression(l2=-1).fit(x, np.array([0, 0, 1, 1]))


TRAIN = F.Ragged.from_lists([[2, 3], [2, 3], [2, 4], [3, 2], [5, 5, 4]])
# counts: 2 -> 4, 3 -> 3, 4 -> 2, 5 -> 2, 6 -> 0 ; ranking 2, 3, 4, 5, 6 (ties by id)


def _examples(*prefixes: list[int]) -> F.NextItemExamples:
    seqs = F.Ragged.from_lists([[*p, 9] for p in prefixes])
    return F.next_item_examples(seqs, window=3, positions="last")


def test_most_popular_ranks_by_count_then_id() -> None:
    m = B.MostPopular(n_items=7).fit(TRAIN)
    assert m.ranking().tolist() == [2, 3, 4, 5, 6]
    assert m.recommend(_examples([3], [6, 2]), k=3).tolist() == [[2, 3, 4], [2, 3, 4]]
    with pytest.raises(SkiffConfigError, match="k=6"):
        m.recommend(_examples([3]), k=6)


def test_co_occurrence_uses_the_last_item_then_tops_up_with_popular() -> None:
    m = B.CoOccurrence(n_items=7).fit(TRAIN)
    top = m.recommend(_examples([5, 2], [2, 3], [6]), k=4)
    assert top[0].tolist() == [3, 4, 5, 6]  # after 2: 3 (twice), 4; then popular but not 2
    assert top[1].tolist() == [2, 4, 5, 6]  # after 3: 2; then popular without 2 or 3
    assert top[2].tolist() == [2, 3, 4, 5]  # 6 never seen: popular
    # repeats (5 -> 5) are not transitions: after 5 comes 4 only
    assert m.recommend(_examples([5]), k=1).tolist() == [[4]]


def test_popular_items_of_a_bundle_are_the_most_popular_baseline_with_shares() -> None:
    """What a next-item bundle answers a session with no known SKU (skiff.serve.codec)."""
    import pyarrow as pa

    from skiff.train import next_item

    starts = np.array(["2026-01-01T00", "2026-01-01T01", "2026-01-01T02", "2026-01-02T00"],
                      "datetime64[us]")
    table = pa.table({"session_start_at": pa.array(starts),
                      "sku_sequence": [["a", "b", "a"], ["b", "c", "b"], ["b"], ["z", "a"]]})
    data = next_item.prepare(table, np.datetime64("2026-01-02T00", "us"), window=2)
    popular = next_item.popular_items(data, k=2)
    # training items: a x2, b x4, c x1 (the held-out session's z is not counted)
    assert popular == {"items": ["b", "a"], "scores": [round(4 / 7, 6), round(2 / 7, 6)]}
    assert next_item.popular_items(data, k=10)["items"] == ["b", "a", "c"]
