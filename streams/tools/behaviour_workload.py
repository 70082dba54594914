"""Worker-like behaviour state for `streamrank bench scorer`'s hybrid searches.

USERS users with a full retained interaction set (1,000 items each, from the catalog),
statistics for every catalog item and `k` random co-occurrence neighbours per item: the
inputs a worker hands the hybrid scorer, and the state the feature builder reads.
`assembly` times the builder alone per search, reading the user's record and the candidates'
statistics as the worker does.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Any

import numpy as np

from contracts import Item
from contracts.ids import item_attributes, item_hash
from scoring.base import ScoreRequest
from scoring.behaviour import BehaviourInputs
from scoring.behaviour import build as build_features
from scoring.behaviour_spec import BehaviourSpec
from scoring.neighbours import Neighbours
from state.interactions import InteractionStore
from state.item_stats import LAYOUT
from state.kv import MemoryKV

USERS = 64


class Behaviour:
    """Worker-like behaviour state for the benchmark's searches: USERS users with `retained`
    items each, statistics for every catalog item, `k` neighbours per item."""

    def __init__(self, catalog: list[Item], seed: int, retained: int = 1000, k: int = 100
                 ) -> None:
        rng = random.Random(seed)
        spec = BehaviourSpec()
        self.spec = spec
        self.attributes = {item.item_id: item_attributes(item) for item in catalog}
        self.store = InteractionStore(MemoryKV(), retained=retained, buckets=spec.buckets)
        self.now = 1_700_000_000_000
        actions = ("click", "add_to_cart", "purchase")
        for u in range(USERS):
            for n, item in enumerate(rng.sample(catalog, min(retained, len(catalog)))):
                self.store.record(f"u{u}", f"e{u}-{n}", item.item_id, rng.choice(actions),
                                  self.now - rng.randrange(10**10), self.attributes[item.item_id])
        self.stats = {item.item_id: LAYOUT.apply(None, rng.choice(actions),
                                                 self.now - rng.randrange(10**9))
                      for item in catalog}
        hashes = [item_hash(item.item_id) for item in catalog]
        self.neighbours = Neighbours.from_lists(
            {h: [(rng.choice(hashes), rng.random()) for _ in range(k)] for h in hashes}, k)

    def inputs(self, user: int, req: ScoreRequest, columns: Any = None) -> BehaviourInputs:
        ids = [i for i, _ in req.candidates]
        return BehaviourInputs(
            now=self.now, query=req.query, item_ids=ids, positions=list(range(len(ids))),
            retrieval_scores=[float(len(ids) - j) for j in range(len(ids))],
            attributes=[self.attributes.get(i) for i in ids],
            user=columns if columns is not None else self.store.columns(f"u{user % USERS}"),
            item_stats=LAYOUT.read_many([self.stats.get(i) for i in ids], self.now))

    def attach(self, reqs: list[ScoreRequest]) -> list[ScoreRequest]:
        """The requests with behaviour inputs (users' records read once: memory)."""
        users = [self.store.columns(f"u{u}") for u in range(USERS)]
        return [replace(r, behaviour=self.inputs(n, r, users[n % USERS]))
                for n, r in enumerate(reqs)]

    def assembly(self, reqs: list[ScoreRequest], n: int = 2000) -> dict[str, float]:
        """Per search: read the user's record and the candidates' statistics, build [C, F]."""
        times = []
        for k, req in enumerate(reqs[:n]):
            t0 = time.perf_counter()
            build_features(self.spec, self.inputs(k, req), self.neighbours)
            times.append((time.perf_counter() - t0) * 1000)
        ms = np.asarray(times[50:] or times)
        return {"searches": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3),
                "mean_ms": round(float(ms.mean()), 3)}



__all__ = ["USERS", "Behaviour"]
