"""The replay: every search is built from the past only, asks the right question, and the
split, warm/cold and seen flags are what the timeline says."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from evaluation.movielens import load
from evaluation.protocol import ProtocolConfig, grade, replay, seen_stats


@pytest.fixture(scope="module")
def rep(latest_dir: Path):  # type: ignore[no-untyped-def]
    return replay(load(latest_dir), ProtocolConfig(k=10, train_searches=10_000), progress=False)


def test_grades() -> None:
    assert [grade(x) for x in (5.0, 4.5, 4.0, 3.5, 3.0, 0.5)] == [3, 3, 2, 2, 1, 1]


def test_every_rating_is_one_search_and_the_split_is_by_time(rep) -> None:  # type: ignore[no-untyped-def]
    n = len(rep.data.ratings)
    assert len(rep.train) + len(rep.test) == n
    assert len(rep.test) == n - round(n * 0.9)
    assert max(s.ts for s in rep.train) <= min(s.ts for s in rep.test) == rep.split_ts
    assert [s.index for s in rep.train + rep.test] == list(range(n))


def test_searches_see_only_the_past(rep) -> None:  # type: ignore[no-untyped-def]
    ratings = rep.data.ratings
    count: dict[str, int] = defaultdict(int)
    past: dict[str, list[str]] = defaultdict(list)
    for s, r in zip(rep.train + rep.test, ratings, strict=True):
        assert (s.user_id, s.movie_id) == (r.user_id, r.movie_id)
        # Popularity at search time excludes this rating; every candidate was rated before.
        assert s.popularity == tuple(count[m] for m in s.candidates)
        assert all(p > 0 for p in s.popularity)
        assert s.history == tuple(reversed(past[s.user_id]))[:10]
        assert s.prior_events == len(past[s.user_id])
        assert s.seen == tuple(m in past[s.user_id] for m in s.candidates)
        # A movie is rated once per user: the positive is never among the seen ones.
        assert s.positive is None or not s.seen[s.positive]
        count[r.movie_id] += 1
        past[r.user_id].append(r.movie_id)


def test_queries_are_own_tags_else_a_genre_with_decade(rep) -> None:  # type: ignore[no-untyped-def]
    own = {(t.user_id, t.movie_id): t.tag for t in rep.data.tags}
    kinds = set()
    for s in rep.train + rep.test:
        movie = rep.data.movies[s.movie_id]
        kinds.add(s.query_kind)
        if (s.user_id, s.movie_id) in own:
            assert s.query_kind == "tag" and s.query == own[(s.user_id, s.movie_id)].lower()
        else:
            genre, decade = s.query.rsplit(" ", 1)
            assert s.query_kind == "genre" and decade == movie.decade
            assert genre in {g.lower() for g in movie.genres}
        assert s.labels == [s.grade if m == s.movie_id else 0.0 for m in s.candidates]
    assert kinds == {"tag", "genre"}


def test_replay_is_deterministic_and_seeded(latest_dir: Path) -> None:
    data = load(latest_dir)
    a = replay(data, ProtocolConfig(k=10), progress=False)
    b = replay(data, ProtocolConfig(k=10), progress=False)
    c = replay(data, ProtocolConfig(k=10, seed=1, decade=False), progress=False)
    assert a.test == b.test
    assert [s.query for s in a.test] != [s.query for s in c.test]
    assert all(not any(ch.isdigit() for ch in s.query) for s in c.test if s.query_kind == "genre")


def test_segments_recall_and_training_window(latest_dir: Path, rep) -> None:  # type: ignore[no-untyped-def]
    segs = rep.segments()
    assert all(s.positive is not None for s in segs["all"])
    assert len(segs["warm"]) + len(segs["cold"]) == len(segs["all"])
    assert all(s.prior_events >= 3 for s in segs["warm"])
    recall = rep.recall()
    assert recall["all"] == pytest.approx(len(segs["all"]) / len(rep.test))
    short = replay(load(latest_dir), ProtocolConfig(k=10, train_searches=5), progress=False)
    assert len(short.train) == 5 and short.test == rep.test
    stats = seen_stats(rep.test)
    assert 0.0 < stats["seen_share"] < 1.0 and 0.0 <= stats["seen_outside_history_share"] <= 1.0


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        ProtocolConfig(k=1)
    with pytest.raises(ValueError):
        ProtocolConfig(test_fraction=1.0)
