"""Explanations: the zero-shot score splits exactly into its query and history parts, the
history part over the history entries; the worker turns them into each item's explanation."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import Candidate, RankedResult
from scoring import ScoreRequest, ZeroShotScorer
from scoring.ranking import rank
from streams.worker.explained import explain, item_explanation
from tests.unit.scoring.test_zeroshot import FakeEncoder

ITEMS = [("s1", "trail running shoes"), ("s2", "road running sneakers"),
         ("o1", "scented soy candle"), ("u1", "")]  # u1: unknown to the catalog
HISTORY = ["running shoes for trail", "candle", "marathon running"]


def scored(explain_: bool = True, history: list[str] = HISTORY
           ) -> tuple[list[float], ZeroShotScorer, object]:
    scorer = ZeroShotScorer(FakeEncoder())
    result = scorer.score([ScoreRequest("running", history, ITEMS, explain=explain_)])
    why = result.explanations[0] if result.explanations else None
    return result.scores[0], scorer, why


def test_the_parts_add_up_to_each_score_exactly() -> None:
    scores, _, why = scored()
    assert why is not None
    assert why.names == ("query", "history")  # type: ignore[attr-defined]
    for c, score in enumerate(scores):
        assert why.score(c) == pytest.approx(score, abs=1e-6)  # type: ignore[attr-defined]
    # The history part splits over the entries: each row of weights sums to it.
    contributions = why.contributions  # type: ignore[attr-defined]
    attention = why.attention  # type: ignore[attr-defined]
    for c in range(3):  # the known items
        assert attention[c].sum() == pytest.approx(contributions[c, 1], abs=1e-5)
    assert not attention[3].any() and contributions[3].tolist() == [0.0, 0.0]


def test_explaining_changes_no_score_and_is_only_done_when_asked() -> None:
    with_why, _, _ = scored(True)
    without, _, why = scored(False)
    assert with_why == without and why is None


def test_without_history_the_query_part_is_the_whole_score() -> None:
    scores, _, why = scored(True, history=[])
    assert why is not None
    contributions = why.contributions  # type: ignore[attr-defined]
    assert np.allclose(contributions[:3, 0], scores[:3], atol=1e-6)
    assert not contributions[:, 1].any()


def test_each_ranked_item_carries_its_own_explanation() -> None:
    scores, _, why = scored()
    cands = [Candidate(item_id=i) for i, _ in ITEMS]
    result = RankedResult(request_id="r", user_id="u", items=rank(cands, scores),
                          model_version="m", received_ts=1, published_ts=2)
    explained = explain(result, [i for i, _ in ITEMS], why)  # type: ignore[arg-type]
    by_id = {i.item_id: i for i in explained.items}
    for c, (item_id, _) in enumerate(ITEMS):
        got = by_id[item_id].explanation
        assert got is not None
        assert got == item_explanation(why, c)  # type: ignore[arg-type]
        assert sum(got.parts.values()) == pytest.approx(by_id[item_id].score, abs=1e-5)
        magnitudes = [abs(v) for v in got.parts.values()]
        assert magnitudes == sorted(magnitudes, reverse=True)
    shoes = by_id["s1"].explanation
    assert shoes is not None and shoes.history
    # The trail-running entry weighs most for trail running shoes; texts name the entries.
    top = shoes.history[0]
    assert (top.text, top.position) == (HISTORY[0], 0)
    assert all(h.text == HISTORY[h.position] for h in shoes.history)
    assert by_id["u1"].explanation is not None and not by_id["u1"].explanation.history
