"""MovieLens as personalized search: the time-ordered replay that turns ratings into searches.

Every rating, in time order, is a search followed by the user's action on the rated movie:
- query: the user's own tag for that movie when they tagged it (any time: it states the
  intent), otherwise one of its genres, with its decade when `decade` is on ("comedy 1990s");
  the choice is seeded per (user, movie), so a rerun asks the same questions;
- candidates: the top k of the non-personalized `Retriever`, which has seen only the ratings
  and tags before this one;
- label: the rated movie is the one positive, graded by the rating (`grade`); the rest are 0;
- history: the user's previously rated movies, newest first (what the worker's sequence holds).
The search is built before the rating is ingested, so nothing of the answer leaks into it.

The last `test_fraction` of the ratings is the test period. Searches before it are the
training period: learned models train on them only (all of them, or the most recent
`train_searches`). A rating becomes an action of the grade's strength (ACTION_OF_GRADE), the
same mapping the behaviour replay and the Kafka replay use.
A search is warm when its user had at least `warm_min` earlier ratings.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm import tqdm  # type: ignore[import-untyped]

from evaluation.movielens import MovieLens, Rating
from evaluation.retriever import Retriever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolConfig:
    k: int = 50
    test_fraction: float = 0.1
    warm_min: int = 3
    decade: bool = True
    # Movies kept per search as history: the worker's STREAMRANK_HISTORY_LENGTH.
    history: int = 10
    # The most recent training-period searches turned into training lists (None: all).
    train_searches: int | None = None
    # Chosen on the training period's recall@50 (0.45, against 0.42 at 1.0 and 0.18 at 0).
    popularity_weight: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError("k must be >= 2")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError("test_fraction must be within (0, 1)")


def grade(rating: float) -> float:
    """Graded relevance of the rated movie: 3 for 4.5-5 stars, 2 for 3.5-4, 1 below.

    (ml-100k's whole stars: 5 -> 3, 4 -> 2, 1-3 -> 1.) Even a low rating is a positive: the
    user looked for and watched the movie; the grade says how much better a loved one is.
    """
    if rating >= 4.5:
        return 3.0
    if rating >= 3.5:
        return 2.0
    return 1.0


# The action a rating stands for, by grade: how strongly the user engaged.
ACTION_OF_GRADE = {3.0: "purchase", 2.0: "add_to_cart", 1.0: "click"}


@dataclass(frozen=True)
class Search:
    index: int  # position of the rating in the replay
    request_id: str
    user_id: str
    ts: int  # epoch ms
    query: str
    query_kind: str  # "tag" or "genre"
    movie_id: str  # the rated movie: the positive
    grade: float
    candidates: tuple[str, ...]  # retriever order
    retrieval_scores: tuple[float, ...]
    popularity: tuple[int, ...]  # ratings each candidate had before the search
    seen: tuple[bool, ...]  # candidate already rated by this user
    history: tuple[str, ...]  # movie ids, newest first
    prior_events: int  # the user's ratings before this one
    test: bool

    @property
    def positive(self) -> int | None:
        """Index of the rated movie among the candidates (None: the retriever missed it)."""
        try:
            return self.candidates.index(self.movie_id)
        except ValueError:
            return None

    @property
    def labels(self) -> list[float]:
        return [self.grade if m == self.movie_id else 0.0 for m in self.candidates]


@dataclass
class Replay:
    config: ProtocolConfig
    data: MovieLens
    train: list[Search]
    test: list[Search]
    split_ts: int  # epoch ms of the first test rating
    counts: dict[str, Any] = field(default_factory=dict)

    def segments(self) -> dict[str, list[Search]]:
        """Test searches the scorers can rank (positive among the candidates), by segment."""
        rankable = [s for s in self.test if s.positive is not None]
        warm = self.config.warm_min
        return {
            "all": rankable,
            "warm": [s for s in rankable if s.prior_events >= warm],
            "cold": [s for s in rankable if s.prior_events < warm],
        }

    def recall(self) -> dict[str, float]:
        """The retriever's recall@k on the test period, per segment (0.0 for an empty one)."""
        warm = self.config.warm_min
        groups = {
            "all": self.test,
            "warm": [s for s in self.test if s.prior_events >= warm],
            "cold": [s for s in self.test if s.prior_events < warm],
        }
        return {
            name: (sum(s.positive is not None for s in group) / len(group)) if group else 0.0
            for name, group in groups.items()
        }

    def describe(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "data": self.data.summary(), **self.counts}


def seen_stats(searches: Sequence[Search]) -> dict[str, float]:
    """How often candidates were already rated by the user, and how many of those the
    model's history window (`Search.history`) does not show."""
    cands = sum(len(s.candidates) for s in searches)
    seen = sum(sum(s.seen) for s in searches)
    hidden = sum(1 for s in searches for m, f in zip(s.candidates, s.seen, strict=True)
                 if f and m not in s.history)
    return {
        "seen_share": seen / cands if cands else 0.0,
        "seen_outside_history_share": hidden / seen if seen else 0.0,
    }


def _query(rating: Rating, data: MovieLens, tags: dict[tuple[str, str], list[str]],
           config: ProtocolConfig) -> tuple[str, str]:
    # Seeded per (user, movie): the same rating gets the same question in every run.
    rng = random.Random(f"{config.seed}:{rating.user_id}:{rating.movie_id}")
    own = tags.get((rating.user_id, rating.movie_id))
    if own:
        return rng.choice(sorted(set(own))).lower(), "tag"
    movie = data.movies[rating.movie_id]
    words = [rng.choice(movie.genres).lower()] if movie.genres else []
    if config.decade and movie.decade:
        words.append(movie.decade)
    return " ".join(words) or "movie", "genre"


def replay(data: MovieLens, config: ProtocolConfig, *, progress: bool = True) -> Replay:
    """Run the whole timeline once; searches are kept for the test period and for the last
    `config.train_searches` ratings before it."""
    ratings = data.ratings
    n = len(ratings)
    split = min(n - 1, max(1, round(n * (1.0 - config.test_fraction))))
    first_train = 0 if config.train_searches is None else max(0, split - config.train_searches)
    own_tags: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tag in data.tags:
        own_tags[(tag.user_id, tag.movie_id)].append(tag.tag)
    retriever = Retriever(data.movies, popularity_weight=config.popularity_weight)
    history: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=config.history))
    seen: dict[str, set[str]] = defaultdict(set)
    prior: dict[str, int] = defaultdict(int)
    tags = iter(data.tags)
    pending = next(tags, None)
    train: list[Search] = []
    test: list[Search] = []
    kinds: dict[str, int] = defaultdict(int)
    for i, rating in enumerate(_progress(ratings, progress)):
        # Tags applied strictly before this rating are the past; the rest are not known yet.
        while pending is not None and pending.ts < rating.ts:
            retriever.add_tag(pending.movie_id, pending.tag)
            pending = next(tags, None)
        user = rating.user_id
        if i >= first_train:
            query, kind = _query(rating, data, own_tags, config)
            found = retriever.retrieve(query, config.k)
            user_seen = seen[user]
            search = Search(
                index=i,
                request_id=f"ml-{i}",
                user_id=user,
                ts=rating.ts * 1000,
                query=query,
                query_kind=kind,
                movie_id=rating.movie_id,
                grade=grade(rating.rating),
                candidates=found.movie_ids,
                retrieval_scores=found.scores,
                popularity=found.popularity,
                seen=tuple(m in user_seen for m in found.movie_ids),
                history=tuple(history[user]),
                prior_events=prior[user],
                test=i >= split,
            )
            (test if search.test else train).append(search)
            if search.test:
                kinds[kind] += 1
        # Now the action is ingested: the next searches may use it.
        retriever.add_rating(rating.movie_id)
        history[user].appendleft(rating.movie_id)
        seen[user].add(rating.movie_id)
        prior[user] += 1
    counts: dict[str, Any] = {
        "ratings": n,
        "train_period_ratings": split,
        "test_searches": len(test),
        "train_searches_kept": len(train),
        "test_query_kinds": dict(kinds),
        "test_users": len({s.user_id for s in test}),
    }
    log.info("replay: %s", counts)
    return Replay(config, data, train, test, ratings[split].ts * 1000, counts)


def _progress(ratings: Sequence[Rating], show: bool) -> Iterator[Rating]:
    yield from tqdm(ratings, desc="replay", unit="rating", disable=not show, mininterval=1.0)


__all__ = ["ACTION_OF_GRADE", "ProtocolConfig", "Replay", "Search", "grade", "replay",
           "seen_stats"]
