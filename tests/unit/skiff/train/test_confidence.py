"""Bootstrap intervals over sessions: coverage of a known difference, pairing, errors."""

from __future__ import annotations

import numpy as np
import pytest

from skiff.exceptions import DataContractError, SkiffConfigError
from skiff.train import confidence, metrics


def test_interval_of_a_mean_matches_the_normal_one() -> None:
    x = np.random.default_rng(0).normal(1.0, 2.0, 4000)
    ci = confidence.bootstrap(lambda rows: float(x[rows].mean()), np.arange(len(x)), rounds=400)
    half = 1.96 * 2.0 / np.sqrt(len(x))
    assert ci.value == pytest.approx(x.mean())
    assert ci.high - ci.low == pytest.approx(2 * half, rel=0.2)
    assert ci.low < ci.value < ci.high and ci.groups == 4000


def test_sessions_are_resampled_whole() -> None:
    """Ten copies of each session's row: the spread is the sessions', not 10x narrower."""
    x = np.random.default_rng(1).normal(size=300)
    rows = confidence.bootstrap(lambda r: float(np.repeat(x, 10)[r].mean()),
                                np.arange(3000), rounds=300, seed=2)
    sessions = confidence.bootstrap(lambda r: float(np.repeat(x, 10)[r].mean()),
                                    np.repeat(np.arange(300), 10), rounds=300, seed=2)
    assert sessions.groups == 300
    assert (sessions.high - sessions.low) > 2.5 * (rows.high - rows.low)


def test_mrr_ratio_and_auc_difference() -> None:
    rng = np.random.default_rng(3)
    top = np.tile(np.arange(2, 22), (500, 1))
    target = rng.integers(2, 40, 500)
    model_rr = confidence.reciprocal_ranks(top, target)
    assert model_rr.mean() == pytest.approx(metrics.mrr_at_k(top, target))
    ratio = confidence.mrr_ratio(model_rr, model_rr / 2, rounds=50)
    assert ratio.value == pytest.approx(2.0) and ratio.low == pytest.approx(2.0)

    y = rng.integers(0, 2, 2000)
    good, noise = y + rng.normal(0, 1.0, 2000), rng.normal(size=2000)
    ci = confidence.auc_difference(y, good, noise, np.arange(2000) // 2, rounds=200)
    assert ci.value == pytest.approx(metrics.roc_auc(y, good) - metrics.roc_auc(y, noise))
    assert 0 < ci.low < ci.value < ci.high
    same = confidence.auc_difference(y, good, good, np.arange(2000), rounds=50)
    assert same.low == same.high == 0.0  # paired: both sides on the same resample


def test_errors_name_the_problem() -> None:
    with pytest.raises(SkiffConfigError, match="rounds=5"):
        confidence.bootstrap(len, np.arange(3), rounds=5)
    with pytest.raises(SkiffConfigError, match="level=1.5"):
        confidence.bootstrap(len, np.arange(3), level=1.5)
    with pytest.raises(DataContractError, match="non-empty"):
        confidence.bootstrap(len, np.arange(0))
    with pytest.raises(DataContractError, match="different lengths"):
        confidence.mrr_ratio(np.ones(3), np.ones(2))
