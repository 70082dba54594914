"""scoring.quality: graded NDCG, reciprocal rank, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.quality import (
    bootstrap,
    hit_at,
    ndcg_at,
    paired_bootstrap,
    per_list,
    reciprocal_rank,
)


def test_perfect_and_reversed_ndcg() -> None:
    labels = [2.0, 1.0, 0.0, 0.0]
    assert ndcg_at([4, 3, 2, 1], labels) == pytest.approx(1.0)
    reversed_ = ndcg_at([1, 2, 3, 4], labels)
    # gains 3 and 1 at ranks 4 and 3: (1/log2(4) + 3/log2(5)) / (3 + 1/log2(3))
    want = (1 / math.log2(4) + 3 / math.log2(5)) / (3 + 1 / math.log2(3))
    assert reversed_ == pytest.approx(want)


def test_ties_keep_given_order_and_no_positive_scores_zero() -> None:
    assert reciprocal_rank([0, 0, 0], [0, 1, 0]) == pytest.approx(0.5)
    assert ndcg_at([1, 2], [0, 0]) == 0.0
    assert reciprocal_rank([1, 2], [0, 0]) == 0.0
    assert hit_at([5, 4, 3], [0, 0, 1], k=2) == 0.0
    assert hit_at([5, 4, 3], [0, 0, 1], k=3) == 1.0


def test_ndcg_cuts_at_k() -> None:
    scores = np.arange(20, 0, -1)
    labels = np.zeros(20)
    labels[12] = 1.0
    assert ndcg_at(scores, labels, k=10) == 0.0
    assert ndcg_at(scores, labels, k=20) > 0.0


def test_bootstrap_interval_contains_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)
    small = bootstrap(rng.random(50), seed=3)
    large = bootstrap(rng.random(5000), seed=3)
    assert small.low <= small.mean <= small.high
    assert (large.high - large.low) < (small.high - small.low)
    assert bootstrap([0.5] * 10).low == pytest.approx(0.5)


def test_paired_bootstrap_sees_a_consistent_small_gain() -> None:
    rng = np.random.default_rng(2)
    base = rng.random(400)
    diff = paired_bootstrap(base + 0.01, base)
    assert diff.low > 0
    # Unpaired, the same gain drowns in the spread between lists.
    assert bootstrap(base + 0.01).overlaps(bootstrap(base))
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_per_list_metrics() -> None:
    out = per_list([[3, 2, 1], [1, 2, 3]], [[1, 0, 0], [1, 0, 0]], k=10)
    assert out["mrr"].tolist() == pytest.approx([1.0, 1 / 3])
    assert out["hit@10"].tolist() == [1.0, 1.0]


def test_user_bootstrap_resamples_users_not_lists() -> None:
    from scoring.quality import paired_user_bootstrap, user_bootstrap

    # One heavy user with many identical lists, many light users with varied ones.
    values = np.array([1.0] * 200 + [0.0, 1.0] * 20)
    users = np.array(["heavy"] * 200 + [f"u{i}" for i in range(40)])
    by_user = user_bootstrap(values, users, rounds=500)
    by_list = bootstrap(values, rounds=500)
    assert by_user.mean == pytest.approx(values.mean())
    # Lists of one user move together: the interval is much wider than resampling lists.
    assert (by_user.high - by_user.low) > 3 * (by_list.high - by_list.low)
    same = paired_user_bootstrap(values, values, users)
    assert same.mean == same.low == same.high == 0.0
    with pytest.raises(ValueError):
        user_bootstrap(values, users[:-1])
