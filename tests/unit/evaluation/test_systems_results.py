"""Baselines, the seen-demotion diagnostic, and how tables pick and compare the reference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from evaluation.movielens import Movie
from evaluation.protocol import Search
from evaluation.results import BEST_RULE, NDCG, POPULARITY_SEEN, Scored, goal, table, tables
from evaluation.systems import (
    Popularity,
    PopularityUnseen,
    RetrieverOrder,
    ScorerSystem,
    SeenDemoted,
    Texts,
)
from scoring.base import ScoreRequest, ScoreResult


def search(i: int, positive: str, *, seen: tuple[bool, ...], prior: int = 5) -> Search:
    cands = ("a", "b", "c", "d")
    return Search(
        index=i, request_id=f"r{i}", user_id="u", ts=i, query="comedy 1990s", query_kind="genre",
        movie_id=positive, grade=2.0, candidates=cands, retrieval_scores=(4.0, 3.0, 2.0, 1.0),
        popularity=(5, 9, 1, 7), seen=seen, history=("z", "y"), prior_events=prior, test=True,
    )


S = search(0, "d", seen=(False, True, False, False))


def ranked(scores: np.ndarray) -> list[str]:
    return [S.candidates[j] for j in np.argsort(-scores, kind="stable")]


def test_baselines_rank_as_described() -> None:
    assert ranked(RetrieverOrder().score([S])[0]) == ["a", "b", "c", "d"]
    assert ranked(Popularity().score([S])[0]) == ["b", "d", "a", "c"]
    assert ranked(PopularityUnseen().score([S])[0]) == ["d", "a", "c", "b"]
    assert ranked(SeenDemoted.apply([S], [np.array([0.0, 3.0, 1.0, 2.0])])[0]) == [
        "d", "c", "a", "b"]


class Recorder:
    name, version, provider = "rec", "rec-1", "cpu"

    def __init__(self) -> None:
        self.requests: list[ScoreRequest] = []

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        self.requests += requests
        return ScoreResult([[float(len(r.history))] * len(r.candidates) for r in requests])


def test_scorer_systems_build_the_workers_request() -> None:
    movies = {m: Movie(m, f"Title {m} (1999)", ("Comedy",), 1999) for m in "abcdyz"}
    rec = Recorder()
    system = ScorerSystem("x", rec, Texts(movies), history=True, learned=True, history_length=1,
                          batch=1)
    system.score([S, S])
    req = rec.requests[0]
    assert len(rec.requests) == 2 and req.query == S.query
    assert req.history == ["Title z (1999)"]  # newest first, cut at the window
    assert req.candidates[0] == ("a", "Title a (1999) | Comedy")  # Item.text()
    plain = ScorerSystem("x", rec, Texts(movies), history=False, learned=True)
    plain.score([S])
    assert rec.requests[-1].history == [] and not plain.personalized


def scored(name: str, ndcg: list[float], *, personalized: bool = False, learned: bool = False,
           diagnostic: bool = False, users: list[str] | None = None) -> Scored:
    arr = np.asarray(ndcg, dtype=np.float64)
    who = np.array(users if users is not None else [f"u{i % 30}" for i in range(len(arr))])
    return Scored(name, personalized, learned, "", {NDCG: arr, "mrr": arr, "hit@10": arr > 0},
                  0.0, diagnostic, who)


def test_references_are_the_best_rule_and_popularity_seen_and_deltas_are_paired() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.5, 300)
    systems = [
        scored("retriever", list(base)),
        scored(POPULARITY_SEEN, list(base + 0.05), personalized=True),
        scored("co-occurrence", list(base + 0.1), personalized=True),
        scored("learned", list(base + 0.2), personalized=True, learned=True),
        scored("diag", list(base + 0.4), diagnostic=True),
    ]
    t = table("p", "all", systems, recall=0.4, all_searches=600)
    assert t is not None and t.reference == "co-occurrence"  # diagnostics never reference
    assert t.references[POPULARITY_SEEN] == POPULARITY_SEEN
    learned = t.row("learned")
    assert learned.delta is not None and learned.delta.mean == pytest.approx(0.1)
    # Paired: a constant shift has a zero-width interval, whatever the spread of the lists.
    assert learned.delta.high - learned.delta.low == pytest.approx(0.0, abs=1e-12)
    assert learned.relative[BEST_RULE] == pytest.approx(0.1 / float((base + 0.1).mean()))
    pop = learned.deltas[POPULARITY_SEEN]
    assert pop is not None and pop.mean == pytest.approx(0.15)
    assert t.row("co-occurrence").delta is None
    # Misses count as 0: half the segment's searches were never rankable.
    assert learned.ndcg_all == pytest.approx(float((base + 0.2).mean()) / 2)
    assert t.best().system == "learned"  # diagnostics are explanations, not winners
    assert t.pair("learned", "retriever").mean == pytest.approx(0.2)
    g = goal(t)
    assert g["system"] == "learned" and g["met"] == (learned.relative[BEST_RULE] >= 0.25)
    assert table("p", "cold", [s.take(np.arange(0)) for s in systems], 0.0) is None
    with pytest.raises(ValueError, match="non-learned"):
        table("p", "all", [systems[3]], 0.4)


def test_intervals_resample_users() -> None:
    values = [1.0] * 50 + [0.0] * 50
    heavy = scored("pop", values, users=["a"] * 50 + ["b"] * 50)
    spread = scored("pop", values, users=[f"u{i}" for i in range(100)])
    wide = table("p", "all", [heavy], 1.0)
    narrow = table("p", "all", [spread], 1.0)
    assert wide is not None and narrow is not None
    w, n = wide.row("pop").ndcg, narrow.row("pop").ndcg
    assert (w.high - w.low) > 2 * (n.high - n.low)


def test_tables_split_warm_and_cold() -> None:
    searches = [search(i, "a", seen=(False,) * 4, prior=i) for i in range(6)]
    systems = [scored("pop", [1.0, 0.0, 1.0, 0.0, 1.0, 0.5])]
    got = {t.segment: t for t in tables("p", searches, systems,
                                         {"all": 1.0, "warm": 1.0, "cold": 1.0}, 3)}
    assert got["all"].searches == 6 and got["warm"].searches == 3 and got["cold"].searches == 3
    assert got["warm"].row("pop").ndcg.mean == pytest.approx(0.5)
    assert "learned" not in goal(got["all"]) and goal(got["all"])["met"] is False
