"""The first-stage retriever: non-personalized, and it only ever sees the past.

Each movie is a document of its title words, its genres, its decade ("1990s") and the words
of every tag applied to it so far. A search scores documents with BM25 (Robertson/Sparck
Jones idf, k1 = 1.2, b = 0.75) and adds a popularity prior, weight * log(1 + ratings so far),
so that among the many movies a one-word genre query matches equally, the ones people
actually rate come first. Only movies rated before the search are candidates (a movie nobody
has rated yet does not exist for the site). Candidates are the documents matching at least
one query word; when fewer than k match, the list is filled with the most popular others.

The index changes as the replay advances (`add_tag`, `add_rating`); per-term postings are
cached as arrays and rebuilt only for the terms a new tag touches.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evaluation.movielens import Movie

_TOKEN = re.compile(r"[a-z0-9]+")
Floats = npt.NDArray[np.float64]


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric runs: "Sci-Fi" -> ["sci", "fi"]."""
    return _TOKEN.findall(text.lower())


def document(movie: Movie) -> list[str]:
    """The catalog words of a movie (tags come later, as they are applied)."""
    words = tokens(movie.title)
    for genre in movie.genres:
        words += tokens(genre)
    if movie.decade:
        words.append(movie.decade)
    return words


@dataclass(frozen=True)
class Retrieved:
    movie_ids: tuple[str, ...]
    scores: tuple[float, ...]  # the retriever's own score, best first
    popularity: tuple[int, ...]  # ratings each candidate had before the search


class Retriever:
    def __init__(
        self,
        movies: Mapping[str, Movie],
        *,
        popularity_weight: float = 1.0,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        if popularity_weight < 0:
            raise ValueError("popularity_weight must be >= 0")
        self.ids = list(movies)
        self.index = {movie_id: i for i, movie_id in enumerate(self.ids)}
        self.popularity_weight = popularity_weight
        self.k1, self.b = k1, b
        n = len(self.ids)
        self.count = np.zeros(n, dtype=np.int64)  # ratings so far
        self.active = np.zeros(n, dtype=bool)  # rated at least once so far
        self.length = np.zeros(n, dtype=np.float64)
        self.postings: dict[str, dict[int, int]] = {}
        self._arrays: dict[str, tuple[npt.NDArray[np.intp], Floats]] = {}
        for i, movie_id in enumerate(self.ids):
            self._add_words(i, document(movies[movie_id]))

    def _add_words(self, doc: int, words: Iterable[str]) -> None:
        counts = Counter(words)
        for term, tf in counts.items():
            self.postings.setdefault(term, {})
            self.postings[term][doc] = self.postings[term].get(doc, 0) + tf
            self._arrays.pop(term, None)
        self.length[doc] += sum(counts.values())

    def add_tag(self, movie_id: str, tag: str) -> None:
        doc = self.index.get(movie_id)
        if doc is not None:
            self._add_words(doc, tokens(tag))

    def add_rating(self, movie_id: str) -> None:
        doc = self.index[movie_id]
        self.count[doc] += 1
        self.active[doc] = True

    def popularity_of(self, movie_id: str) -> int:
        return int(self.count[self.index[movie_id]])

    def _posting(self, term: str) -> tuple[npt.NDArray[np.intp], Floats]:
        cached = self._arrays.get(term)
        if cached is None:
            post = self.postings.get(term, {})
            cached = (
                np.fromiter(post.keys(), dtype=np.intp, count=len(post)),
                np.fromiter(post.values(), dtype=np.float64, count=len(post)),
            )
            self._arrays[term] = cached
        return cached

    def bm25(self, query: str) -> Floats:
        """BM25 of every document (0 where no query word occurs)."""
        n = len(self.ids)
        out = np.zeros(n, dtype=np.float64)
        avgdl = float(self.length.mean()) or 1.0
        for term in dict.fromkeys(tokens(query)):  # a repeated word counts once
            docs, tf = self._posting(term)
            if not len(docs):
                continue
            idf = math.log(1.0 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            norm = self.k1 * (1.0 - self.b + self.b * self.length[docs] / avgdl)
            out[docs] += idf * tf * (self.k1 + 1.0) / (tf + norm)
        return out

    def retrieve(self, query: str, k: int) -> Retrieved:
        """The k best past movies for `query`, best first (ties: catalog order)."""
        text = self.bm25(query)
        combined = text + self.popularity_weight * np.log1p(self.count)
        matched = np.flatnonzero(self.active & (text > 0))
        picked = matched[np.argsort(-combined[matched], kind="stable")][:k]
        if len(picked) < k:
            rest = np.flatnonzero(self.active & (text <= 0))
            fill = rest[np.argsort(-self.count[rest], kind="stable")][: k - len(picked)]
            picked = np.concatenate([picked, fill])
        return Retrieved(
            movie_ids=tuple(self.ids[i] for i in picked),
            scores=tuple(float(combined[i]) for i in picked),
            popularity=tuple(int(self.count[i]) for i in picked),
        )


__all__ = ["Retrieved", "Retriever", "document", "tokens"]
