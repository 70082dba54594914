"""Behaviour features through the real broker, served by a real hybrid version: the feature
vectors the worker logs in its samples equal, bit for bit, the ones built offline from the
same events through the same state code and builder with that version's spec and neighbours
(what the evaluation replay and the trainer compute)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from contracts import ActionEvent, Candidate, SearchEvent, TrainingSample, decode
from contracts.events import Action
from scoring.base import load_verified
from scoring.behaviour import build
from scoring.hybrid import behaviour_spec
from scoring.kinds import ModelKind
from scoring.neighbours import NEIGHBOURS_FILE, Neighbours
from state import MemoryKV
from state.interactions import InteractionStore
from state.item_stats import LAYOUT, ItemStatsReading
from streams.tools.simulation import catalog_items
from streams.worker.behaviour_source import BehaviourSource, item_attributes
from tests.integration.conftest import Deployment
from tests.integration.helpers import collect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CATALOG = {i.item_id: i for i in catalog_items()}
ITEMS = list(CATALOG)[:16]
USERS = ["ann", "bob", "cyd", "dee"]
FAST = {"STREAMRANK_ATTRIBUTION_WINDOW_S": "2", "STREAMRANK_IMPRESSION_TTL_S": "120",
        "STREAMRANK_ATTRIBUTION_TICK_S": "0.5", "STREAMRANK_SCORE_TIMEOUT_MS": "20000"}
SEARCH_TS = 1_700_100_000_000


def actions() -> list[ActionEvent]:
    kinds: list[Action] = ["view", "click", "add_to_cart", "purchase"]
    return [ActionEvent(event_id=f"a{n}", user_id=USERS[n % 4], ts=1_700_000_000_000 + n * 60_000,
                        item_id=ITEMS[(n * 7) % len(ITEMS)], action=kinds[n % 4])
            for n in range(60)]


def searches() -> list[SearchEvent]:
    return [SearchEvent(event_id=f"s-{u}", request_id=f"r-{u}", user_id=u, ts=SEARCH_TS,
                        query="gift ideas",
                        candidates=[Candidate(item_id=i, retrieval_score=float(20 - k))
                                    for k, i in enumerate(ITEMS[k0:] + ITEMS[:k0])][:12])
            for k0, u in enumerate([*USERS, "newcomer"])]


def offline(version: Path, events: list[ActionEvent], search: SearchEvent) -> np.ndarray:
    manifest = load_verified(version)
    spec = behaviour_spec(dict(manifest.features), str(version))
    neighbours = Neighbours.load(version / NEIGHBOURS_FILE)
    users = InteractionStore(MemoryKV(), retained=1000)
    vectors: dict[str, np.ndarray] = {}
    for a in events:
        users.apply(a, item_attributes(CATALOG[a.item_id]))
        vectors[a.item_id] = LAYOUT.apply(vectors.get(a.item_id), a.action, a.ts)

    class Stats:
        def read(self, item_ids: list[str], now: int) -> ItemStatsReading:
            return LAYOUT.read_many([vectors.get(i) for i in item_ids], now)

    items = [CATALOG.get(c.item_id) for c in search.candidates]
    return build(spec, BehaviourSource(users, Stats()).inputs(search, search.candidates, items),
                 neighbours)


async def test_logged_features_equal_the_offline_ones(
    deployment: Deployment, models_dir: Path
) -> None:
    from scoring.training.export_ranker import ensure_base_ranker  # torch: test-time only

    dep = deployment
    version = ensure_base_ranker(ModelKind.HYBRID, models_dir)
    worker = dep.start_worker(**FAST, STREAMRANK_SCORER="hybrid",
                              STREAMRANK_MODEL_VERSION=version.name)
    await worker.wait_ready(240)
    events = actions()
    async with dep.client(listen=False) as client:
        for item in CATALOG.values():
            await client.publish_item(item)
    # An action takes its item's attributes from the catalog as it is when applied.
    await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == len(CATALOG),
                          "catalog", 60)
    async with dep.client(listen=False) as client:
        for a in events:
            await client.publish_action(a)
    per_item = Counter(a.item_id for a in events)
    per_user = Counter(a.user_id for a in events)
    # Searches wait until the state they read is complete (the offline side has it all).
    await worker.wait_for(
        lambda w: all(w.get(f"/items/{i}/stats/")["seq"] == n for i, n in per_item.items())
        and all(w.get(f"/users/{u}/interactions/")["events"] == n for u, n in per_user.items()),
        "behaviour state", 120)
    asked = searches()
    async with dep.client() as client:
        for s in asked:
            await client.publish_search(s)
        replies = await client.results([s.request_id for s in asked], timeout_s=120)
    assert not any(r.result.degraded for r in replies.values())
    async with dep.consumer(dep.topics.samples, isolation_level="read_committed") as consumer:
        records = await collect(consumer, lambda recs: len(recs) >= len(asked), 120)
    samples = {s.request_id: s for s in (decode(r.value, TrainingSample) for r in records)}
    spec = behaviour_spec(dict(load_verified(version).features), str(version))
    for search in asked:
        sample = samples[search.request_id]
        assert sample.feature_spec == spec.id and sample.model_version == version.name
        order = [[c.item_id for c in search.candidates].index(i.item_id) for i in sample.items]
        logged = np.asarray([i.features for i in sample.items], dtype=np.float32)
        want = offline(version, events, search)[order]
        assert logged.view(np.int32).tolist() == want.view(np.int32).tolist(), search.user_id
        # The published ranking is the one the model made from those features.
        shown = [i.item_id for i in replies[search.request_id].result.items]
        assert [i.item_id for i in sample.items] == shown
