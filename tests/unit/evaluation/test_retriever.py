"""The retriever: BM25 by its formula, a popularity prior, and nothing from the future."""

from __future__ import annotations

import math

import pytest

from evaluation.movielens import Movie
from evaluation.retriever import Retriever, document, tokens

MOVIES = {
    "1": Movie("1", "Space Robots (1995)", ("Sci-Fi",), 1995),
    "2": Movie("2", "Funny Wedding (1994)", ("Comedy",), 1994),
    "3": Movie("3", "Mars Attack Robots (1984)", ("Sci-Fi", "Comedy"), 1984),
    "4": Movie("4", "Quiet River (2001)", ("Drama",), 2001),
}


def test_tokens_and_documents() -> None:
    assert tokens("Sci-Fi, 1990s!") == ["sci", "fi", "1990s"]
    assert document(MOVIES["3"]) == ["mars", "attack", "robots", "1984", "sci", "fi",
                                     "comedy", "1980s"]


def test_bm25_follows_its_formula() -> None:
    r = Retriever(MOVIES, popularity_weight=0.0)
    lengths = [len(document(m)) for m in MOVIES.values()]
    avgdl = sum(lengths) / len(lengths)
    n, df = 4, 2  # "robots" is in movies 1 and 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))

    def part(tf: int, dl: int) -> float:
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    scores = r.bm25("robots robots")  # a repeated query word counts once
    assert scores[0] == pytest.approx(part(1, lengths[0]))
    assert scores[2] == pytest.approx(part(1, lengths[2]))
    assert scores[1] == scores[3] == 0.0


def test_only_movies_rated_before_are_candidates_and_popularity_breaks_ties() -> None:
    r = Retriever(MOVIES, popularity_weight=1.0)
    assert r.retrieve("robots", 5).movie_ids == ()  # nothing rated yet: nothing exists
    r.add_rating("1")
    r.add_rating("3")
    r.add_rating("3")
    r.add_rating("2")
    got = r.retrieve("robots", 5)
    assert got.movie_ids[:2] == ("3", "1")  # both match; 3 is more popular
    assert got.popularity[:2] == (2, 1)
    assert got.movie_ids[2:] == ("2",)  # too few matches: filled by popularity, unrated "4" never
    assert r.retrieve("robots", 1).movie_ids == ("3",)


def test_tags_become_searchable_when_applied() -> None:
    r = Retriever(MOVIES, popularity_weight=0.0)
    for m in MOVIES:
        r.add_rating(m)
    assert r.bm25("tearjerker")[3] == 0.0
    r.add_tag("4", "Tearjerker")
    r.add_tag("unknown-movie", "ignored")
    assert r.bm25("tearjerker")[3] > 0.0
    assert r.retrieve("tearjerker", 1).movie_ids == ("4",)


def test_negative_popularity_weight_is_refused() -> None:
    with pytest.raises(ValueError):
        Retriever(MOVIES, popularity_weight=-1.0)
