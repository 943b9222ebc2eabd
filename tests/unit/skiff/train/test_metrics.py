"""Metrics against hand-computed values, slices, and the champion/challenger decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skiff.train import metrics
from skiff.exceptions import DataContractError, SkiffConfigError


# ----------------------------------------------------------------------------- ROC-AUC

@pytest.mark.parametrize(
    ("y", "s", "expected"),
    [
        # pairs (pos, neg): .35>.1 yes, .35>.4 no, .8>.1 yes, .8>.4 yes -> 3/4
        pytest.param([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75, id="no-ties"),
        # pos {.5, .9}, neg {.5, .2}: tie counts 1/2 -> (0.5 + 1 + 1 + 1) / 4
        pytest.param([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 0.875, id="tie-across-classes"),
        pytest.param([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3], 0.5, id="constant-score"),
        pytest.param([1, 1, 0], [0.9, 0.8, 0.1], 1.0, id="perfect"),
        pytest.param([1, 1, 0], [0.1, 0.2, 0.9], 0.0, id="reversed"),
    ],
)
def test_roc_auc_hand_computed(y: list[int], s: list[float], expected: float) -> None:
    assert metrics.roc_auc(y, s) == pytest.approx(expected)


def test_roc_auc_matches_pairwise_definition_on_random_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 10, 300) / 10  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert metrics.roc_auc(y, s) == pytest.approx(pairwise)


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(DataContractError, match="both classes"):
        metrics.roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(DataContractError, match="different lengths"):
        metrics.roc_auc([1, 0], [0.2])
    with pytest.raises(DataContractError, match="0/1"):
        metrics.roc_auc([2, 0], [0.2, 0.1])


# ------------------------------------------------------------------ threshold metrics

def test_binary_scores_hand_computed() -> None:
    # predictions at 0.5: [1, 0, 1, 0, 1] -> TP 2, FP 1, FN 1, TN 1
    s = metrics.binary_scores([1, 1, 0, 0, 1], [0.9, 0.4, 0.6, 0.1, 0.7], threshold=0.5)
    assert (s.precision, s.recall, s.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert s.accuracy == pytest.approx(3 / 5)
    assert (s.n, s.positive_rate, s.threshold) == (5, pytest.approx(0.6), 0.5)


def test_binary_scores_nothing_predicted_is_zero_not_nan() -> None:
    s = metrics.binary_scores([1, 0], [0.1, 0.2], threshold=0.9)
    assert (s.precision, s.recall, s.f1, s.accuracy) == (0.0, 0.0, 0.0, 0.5)


def test_best_f1_threshold_hand_computed() -> None:
    # thresholds .9: F1 2/3, .8: 1/2, .7: 4/5, .1: 2/3 -> .7
    assert metrics.best_f1_threshold([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == 0.7


def test_best_f1_threshold_without_positives_predicts_nothing() -> None:
    assert metrics.best_f1_threshold([0, 0], [0.1, 0.2]) == math.inf


def test_weighted_micro_f1_is_weighted_sum_of_accuracies() -> None:
    # accuracy at add: 1.0; at add+2: 0.5 -> 1.0 * 1 + 0.9 * 0.5
    score = metrics.weighted_micro_f1([1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 2, 2])
    assert score == pytest.approx(1.45)
    assert metrics.weighted_micro_f1([1] * 6, [1] * 6, [0, 2, 4, 6, 8, 10]) == pytest.approx(4.5)


def test_weighted_micro_f1_rejects_unknown_offset() -> None:
    with pytest.raises(DataContractError, match=r"offsets \[3\]"):
        metrics.weighted_micro_f1([1], [1], [3])


# --------------------------------------------------------------------------- ranking

TOP = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
TARGETS = np.array([2, 6, 10])  # ranks 2, 3, absent


def test_target_ranks() -> None:
    assert metrics.target_ranks(TOP, TARGETS).tolist() == [2, 3, 0]


@pytest.mark.parametrize(
    ("k", "mrr", "hit"),
    [
        pytest.param(3, (1 / 2 + 1 / 3) / 3, 2 / 3, id="k3"),
        pytest.param(2, (1 / 2) / 3, 1 / 3, id="k2"),
        pytest.param(1, 0.0, 0.0, id="k1"),
    ],
)
def test_mrr_and_hit_rate_at_k(k: int, mrr: float, hit: float) -> None:
    assert metrics.mrr_at_k(TOP, TARGETS, k) == pytest.approx(mrr)
    assert metrics.hit_rate_at_k(TOP, TARGETS, k) == pytest.approx(hit)


def test_k_longer_than_lists_is_rejected() -> None:
    with pytest.raises(SkiffConfigError, match="k=4"):
        metrics.mrr_at_k(TOP, TARGETS, 4)


def test_catalogue_coverage_ignores_pad_and_oov() -> None:
    # shown products {2, 3, 4} of a catalogue of ids 2..9 (8 products)
    assert metrics.catalogue_coverage(np.array([[2, 3], [3, 4], [0, 1]]), 10, k=2) == 0.375


def test_next_item_slices_hand_computed() -> None:
    top = np.array([[2, 3], [4, 2], [5, 6], [2, 3]])
    targets = np.array([2, 2, 7, 3])  # ranks 1, 2, 0, 2
    lengths = np.array([1, 5, 1, 4])
    # training counts: ids 2..11 (10 products); the top 20% (2 items) are 2 and 3
    counts = np.array([0, 99, 50, 40, 1, 1, 1, 1, 1, 1, 1, 1])
    out = metrics.next_item_slices(top, targets, lengths, counts, k=2, short_max=2)
    assert out["all"]["mrr@2"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert out["short"] == {"mrr@2": pytest.approx(0.5), "hit_rate@2": pytest.approx(0.5),
                            "n": 2.0, "share": 0.5}
    assert out["long"]["mrr@2"] == pytest.approx(0.5)
    assert out["popular"]["n"] == 3.0 and out["popular"]["mrr@2"] == pytest.approx(2 / 3)
    assert out["long_tail"]["n"] == 1.0 and out["long_tail"]["hit_rate@2"] == 0.0
    assert out["all"]["coverage@2"] == pytest.approx(5 / 10)  # {2, 3, 4, 5, 6}


def test_next_item_slices_empty_slice_is_nan() -> None:
    out = metrics.next_item_slices(np.array([[2]]), np.array([2]), np.array([1]),
                                   np.array([0, 0, 5, 1]), k=1)
    assert out["long"]["n"] == 0.0 and math.isnan(out["long"]["mrr@1"])


# --------------------------------------------------------------------------- compare

@pytest.mark.parametrize(
    ("candidate", "champion", "margin", "promote", "reason"),
    [
        pytest.param(0.32, 0.30, 0.01, True, "Promote", id="beats-by-more-than-margin"),
        pytest.param(0.305, 0.30, 0.01, False, "Keep champion", id="within-margin"),
        pytest.param(0.31, 0.30, 0.01, False, "Keep champion", id="exactly-margin-is-not-enough"),
        pytest.param(0.29, 0.30, 0.0, False, "Keep champion", id="worse"),
    ],
)
def test_compare(candidate: float, champion: float, margin: float, promote: bool,
                 reason: str) -> None:
    d = metrics.compare({"mrr@20": candidate}, {"mrr@20": champion}, "mrr@20", margin)
    assert d.promote is promote
    assert d.reason.startswith(reason) and "mrr@20" in d.reason
    assert (d.candidate, d.champion, d.margin) == (candidate, champion, margin)


def test_compare_without_champion_promotes() -> None:
    d = metrics.compare({"roc_auc": 0.7}, None, "roc_auc")
    assert d.promote and d.champion is None and "No champion" in d.reason


def test_compare_lower_is_better() -> None:
    assert metrics.compare({"loss": 0.4}, {"loss": 0.5}, "loss", higher_is_better=False).promote


@pytest.mark.parametrize(
    ("candidate", "champion", "match"),
    [
        pytest.param({}, {"auc": 0.5}, "candidate's metrics lack 'auc'", id="missing-candidate"),
        pytest.param({"auc": 0.5}, {"x": 1}, "champion's metrics lack 'auc'", id="missing-champ"),
        pytest.param({"auc": float("nan")}, None, "finite", id="nan"),
        pytest.param({"auc": "high"}, None, "not a number", id="not-a-number"),
    ],
)
def test_compare_rejects_bad_metric_sets(candidate: dict, champion: dict | None,
                                         match: str) -> None:
    with pytest.raises(DataContractError, match=match):
        metrics.compare(candidate, champion, "auc")


def test_compare_rejects_negative_margin() -> None:
    with pytest.raises(SkiffConfigError, match="margin"):
        metrics.compare({"auc": 1}, {"auc": 0}, "auc", -0.1)
