"""The behaviour features of every rankable search, computed as the worker computes them.

Walks the ratings in replay order (evaluation/protocol.py) and drives the SAME state code the
worker runs: state.interactions (each user's retained interaction set) and state.item_stats
(every item's counts and decayed counts) over in-memory stores, and builds each search's
features with THE builder (scoring/behaviour.build) from that state BEFORE the search's own
rating is applied. So the features of a search are what a worker that had seen the same
events would log with its impression.

A rating is an action of its grade's strength (protocol.ACTION_OF_GRADE) at the rating's time;
its event_id is the search's request_id. Catalog attributes come from `Movie.item()` through
contracts.ids.item_attributes (the genres, as the worker reads a catalog Item's category).

Co-occurrence neighbours: a snapshot learned from the training-period ratings seen so far is
taken every `refresh` ratings (the retrain cadence of a live system) and the last one, at the
split, is frozen for the whole test period: it is the one shipped with the model version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm  # type: ignore[import-untyped]

from contracts.ids import ACTIONS, Attributes, item_attributes
from evaluation.protocol import ACTION_OF_GRADE, Replay, Search, grade
from scoring.behaviour import BehaviourInputs, build
from scoring.behaviour_spec import BehaviourSpec
from scoring.neighbours import Neighbours
from scoring.training.cooccurrence import neighbours_from_events
from state.interactions import InteractionStore
from state.item_stats import ItemStatsLayout, Vector
from state.kv import MemoryKV

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]


@dataclass
class BehaviourData:
    spec: BehaviourSpec
    features: dict[int, Matrix]  # Search.index -> [C, F], every rankable search
    neighbours: Neighbours  # the snapshot at the split: the model version's
    snapshots: int
    build_ms: npt.NDArray[np.float64]  # builder time per search
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    # Test searches' inputs as the worker would hand them to the scorer (state snapshots):
    # the served model is scored from these, building its features itself.
    inputs: dict[int, BehaviourInputs] = field(default_factory=dict)

    def of(self, search: Search) -> Matrix:
        return self.features[search.index]

    def column(self, searches: Sequence[Search], name: str) -> list[npt.NDArray[np.float64]]:
        j = self.spec.index(name)
        return [self.features[s.index][:, j].astype(np.float64) for s in searches]


class BehaviourState:
    """The worker's behaviour state over in-memory stores, for one replay."""

    def __init__(self, spec: BehaviourSpec) -> None:
        self.spec = spec
        self.users = InteractionStore(MemoryKV(), retained=spec.retained, buckets=spec.buckets)
        self.layout = ItemStatsLayout(actions=ACTIONS, windows_ms=spec.windows_ms)
        self.items: dict[str, Vector] = {}

    def inputs(self, search: Search, attributes: Mapping[str, Attributes]) -> BehaviourInputs:
        now = search.ts
        return BehaviourInputs(
            now=now, query=search.query, item_ids=search.candidates,
            positions=list(range(len(search.candidates))),
            retrieval_scores=list(search.retrieval_scores),
            attributes=[attributes[m] for m in search.candidates],
            user=self.users.columns(search.user_id),
            item_stats=self.layout.read_many([self.items.get(m) for m in search.candidates], now),
        )

    def apply(self, event_id: str, user_id: str, item_id: str, action: str, ts: int,
              attributes: Attributes) -> None:
        if self.users.record(user_id, event_id, item_id, action, ts, attributes):
            self.items[item_id] = self.layout.apply(self.items.get(item_id), action, ts)


def replay_behaviour(rep: Replay, spec: BehaviourSpec, *, refresh: int = 10_000,
                     shrink: float = 10.0, keep_inputs: bool = True,
                     progress: bool = True) -> BehaviourData:
    started = time.perf_counter()
    searches = {s.index: s for s in (*rep.train, *rep.test) if s.positive is not None}
    split = rep.counts["train_period_ratings"]
    attributes = {m: item_attributes(movie.item()) for m, movie in rep.data.movies.items()}
    state = BehaviourState(spec)
    neighbours, snapshots, snapshot_s = Neighbours.empty(spec.neighbours), 0, 0.0
    events: list[tuple[str, str]] = []
    features: dict[int, Matrix] = {}
    kept: dict[int, BehaviourInputs] = {}
    build_ms: list[float] = []
    for i, rating in _progress(rep, progress):
        if (i == split or (0 < i < split and i % refresh == 0)) and events:
            t0 = time.perf_counter()
            neighbours = neighbours_from_events(events, k=spec.neighbours, shrink=shrink)
            snapshot_s += time.perf_counter() - t0
            snapshots += 1
        search = searches.get(i)
        if search is not None:
            t0 = time.perf_counter()
            inputs = state.inputs(search, attributes)
            features[i] = build(spec, inputs, neighbours)
            build_ms.append((time.perf_counter() - t0) * 1000)
            if keep_inputs and search.test:
                kept[i] = inputs
        action = ACTION_OF_GRADE[grade(rating.rating)]
        state.apply(f"ml-{i}", rating.user_id, rating.movie_id, action, rating.ts * 1000,
                    attributes[rating.movie_id])
        if i < split:
            events.append((rating.user_id, rating.movie_id))
    ms = np.asarray(build_ms)
    info = {
        "searches": len(features), "snapshots": snapshots, "snapshot_seconds": round(snapshot_s, 1),
        "neighbour_items": len(neighbours), "neighbour_edges": neighbours.edges,
        "build_ms_p50": float(np.percentile(ms, 50)) if len(ms) else 0.0,
        "build_ms_p99": float(np.percentile(ms, 99)) if len(ms) else 0.0,
        "refresh": refresh, "shrink": shrink,
    }
    seconds = time.perf_counter() - started
    log.info("behaviour replay: %s in %.0f s", info, seconds)
    return BehaviourData(spec, features, neighbours, snapshots, ms, round(seconds, 1), info,
                         kept)


def _progress(rep: Replay, show: bool) -> Iterator[tuple[int, Any]]:
    yield from enumerate(tqdm(rep.data.ratings, desc="behaviour", unit="rating",
                              disable=not show, mininterval=1.0))


__all__ = ["BehaviourData", "BehaviourState", "replay_behaviour"]
