"""The systems compared: same searches, same candidates, one score per candidate.

Baselines read what the replay recorded at search time (retriever order, popularity, what the
user had already rated). Model-backed systems go through a `scoring.Scorer` loaded from ONNX
exactly as the worker loads it, with the request the worker would build: the query, the
user's recent movie titles newest first (or none, for the "no history" variants) and each
candidate's catalog text (`Item.text()`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from evaluation.movielens import Movie
from evaluation.protocol import Search
from scoring.base import Scorer, ScoreRequest
from scoring.behaviour import BehaviourInputs

log = logging.getLogger(__name__)

Floats = npt.NDArray[np.float64]


class System(Protocol):
    name: str
    # Uses the user's own past (history, seen items): what "personalized" means here.
    personalized: bool
    # Fine-tuned on the training period.
    learned: bool
    # Not something the worker can serve: shown to explain the others, never the "winner".
    diagnostic: bool

    @property
    def version(self) -> str:
        """The model version behind it ("" for a baseline)."""
        ...

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        """One score array per search, aligned with its candidates (higher ranks first)."""
        ...


@dataclass
class RetrieverOrder:
    name: str = "retriever (BM25 + popularity prior)"
    personalized: bool = False
    learned: bool = False
    diagnostic: bool = False
    version: str = ""

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        # Descending positions: the retriever's own order, whatever its raw scores were.
        return [-np.arange(len(s.candidates), dtype=np.float64) for s in searches]


@dataclass
class Popularity:
    name: str = "popularity"
    personalized: bool = False
    learned: bool = False
    diagnostic: bool = False
    version: str = ""

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        return [np.asarray(s.popularity, dtype=np.float64) for s in searches]


@dataclass
class PopularityUnseen:
    """Popularity, with the movies the user already rated moved below all the others."""

    name: str = "popularity, seen demoted"
    personalized: bool = True
    learned: bool = False
    diagnostic: bool = False
    version: str = ""

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        out = []
        for s in searches:
            pop = np.asarray(s.popularity, dtype=np.float64)
            out.append(pop - (pop.max(initial=0.0) + 1.0) * np.asarray(s.seen, dtype=np.float64))
        return out


class Texts:
    """The text the worker would read for each movie: catalog text and history title."""

    def __init__(self, movies: Mapping[str, Movie]) -> None:
        self._movies = movies
        self._item: dict[str, str] = {}

    def item(self, movie_id: str) -> str:
        text = self._item.get(movie_id)
        if text is None:
            text = self._item[movie_id] = self._movies[movie_id].item().text()
        return text

    def title(self, movie_id: str) -> str:
        return self._movies[movie_id].title

    def request(self, search: Search, *, history: bool, history_length: int) -> ScoreRequest:
        titles = [self.title(m) for m in search.history[:history_length]] if history else []
        return ScoreRequest(
            query=search.query,
            history=titles,
            candidates=[(m, self.item(m)) for m in search.candidates],
        )


class ScorerSystem:
    """A `Scorer` (zero-shot or a learned version) fed the worker's requests."""

    def __init__(
        self,
        name: str,
        scorer: Scorer,
        texts: Texts,
        *,
        history: bool,
        learned: bool,
        history_length: int = 10,
        batch: int = 16,
    ) -> None:
        self.name = name
        self.scorer = scorer
        self.texts = texts
        self.history = history
        self.personalized = history
        self.learned = learned
        self.history_length = history_length
        self.batch = batch
        self.diagnostic = False

    @property
    def version(self) -> str:
        return self.scorer.version

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        out: list[Floats] = []
        for start in range(0, len(searches), self.batch):
            chunk = searches[start : start + self.batch]
            requests = [
                self.texts.request(s, history=self.history, history_length=self.history_length)
                for s in chunk
            ]
            out += [np.asarray(row, dtype=np.float64)
                    for row in self.scorer.score(requests).scores]
        return out


class SeenDemoted:
    """Another system's scores with the movies the user already rated moved to the bottom.

    A diagnostic: the models see only the last few titles, this sees every rated movie, so the
    gap between the two says how much of "already seen" the history window hides."""

    def __init__(self, base: System) -> None:
        self.base = base
        self.name = f"{base.name} + seen demoted (diagnostic)"
        self.personalized = True
        self.learned = base.learned
        self.diagnostic = True
        self.version = base.version

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        return self.apply(searches, self.base.score(searches))

    @staticmethod
    def apply(searches: Sequence[Search], scores: Sequence[Floats]) -> list[Floats]:
        """`scores` (the base system's, already computed) with seen movies last."""
        out = []
        for s, raw in zip(searches, scores, strict=True):
            span = float(raw.max() - raw.min()) if len(raw) else 0.0
            out.append(raw - (span + 1.0) * np.asarray(s.seen, dtype=np.float64))
        return out


@dataclass
class Precomputed:
    """Scores computed elsewhere (a torch model, LightGBM), looked up by search index."""

    name: str
    scores: dict[int, Floats]
    personalized: bool = True
    learned: bool = True
    diagnostic: bool = False
    version: str = ""

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        return [self.scores[s.index] for s in searches]


class ServedHybrid:
    """The exported hybrid version through `scoring.HybridScorer`, fed what the worker would
    send: the text request plus the behaviour inputs (state at search time); the scorer builds
    the features itself with the version's spec and neighbours. `matches` counts the searches
    whose served feature matrix equals the replay's (offline = online features)."""

    def __init__(self, name: str, scorer: Scorer, texts: Texts,
                 inputs: Mapping[int, BehaviourInputs],
                 features: Mapping[int, npt.NDArray[np.float32]], *, history_length: int = 10,
                 batch: int = 16) -> None:
        self.name, self.scorer, self.texts = name, scorer, texts
        self.inputs, self.features = inputs, features
        self.history_length, self.batch = history_length, batch
        self.personalized, self.learned, self.diagnostic = True, True, False
        self.matches = self.compared = 0

    @property
    def version(self) -> str:
        return self.scorer.version

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        out: list[Floats] = []
        for start in range(0, len(searches), self.batch):
            chunk = searches[start : start + self.batch]
            requests = [replace(self.texts.request(s, history=True,
                                                   history_length=self.history_length),
                                behaviour=self.inputs[s.index]) for s in chunk]
            result = self.scorer.score(requests)
            for s, used in zip(chunk, result.features, strict=True):
                self.compared += 1
                self.matches += int(used is not None
                                    and np.array_equal(used, self.features[s.index]))
            out += [np.asarray(row, dtype=np.float64) for row in result.scores]
        return out


def baselines() -> list[System]:
    return [RetrieverOrder(), Popularity(), PopularityUnseen()]


__all__ = [
    "Popularity",
    "PopularityUnseen",
    "Precomputed",
    "RetrieverOrder",
    "ScorerSystem",
    "SeenDemoted",
    "ServedHybrid",
    "System",
    "Texts",
    "baselines",
]
