import math

import pytest

from contracts import Candidate
from scoring.ranking import original_order, rank, unique_candidates


def cands(*ids: str) -> list[Candidate]:
    return [Candidate(item_id=i) for i in ids]


def test_rank_is_best_first_with_every_candidate_once() -> None:
    ranked = rank(cands("a", "b", "c"), [0.1, 0.9, 0.5])
    assert [r.item_id for r in ranked] == ["b", "c", "a"]
    assert [r.rank for r in ranked] == [1, 2, 3]


def test_ties_keep_the_site_order() -> None:
    assert [r.item_id for r in rank(cands("x", "y", "z"), [1.0, 1.0, 1.0])] == ["x", "y", "z"]


def test_nan_and_infinity_rank_last_with_finite_scores() -> None:
    ranked = rank(cands("a", "b"), [math.nan, 0.2])
    assert [r.item_id for r in ranked] == ["b", "a"]
    assert all(math.isfinite(r.score) for r in ranked)


def test_score_count_must_match() -> None:
    with pytest.raises(ValueError):
        rank(cands("a"), [1.0, 2.0])


def test_duplicates_are_shown_once_first_wins() -> None:
    assert [c.item_id for c in unique_candidates(cands("a", "b", "a", "c", "b"))] == [
        "a", "b", "c",
    ]


def test_degraded_answer_is_the_original_order() -> None:
    items = original_order([Candidate(item_id="a", retrieval_score=0.3), Candidate(item_id="b")])
    assert [(i.item_id, i.rank, i.score) for i in items] == [("a", 1, 0.3), ("b", 2, 0.0)]
