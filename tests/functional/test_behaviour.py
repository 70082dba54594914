"""Behaviour state through the agents (Faust test_context, memory tables): actions build each
user's interaction set and, re-keyed by item, the item statistics every worker replicates;
searches gather the behaviour inputs, a behaviour-aware scorer builds its features from them,
and the sample of the impression carries exactly those features.

Parity: the features the worker logged equal, bit for bit, the features built offline from
the same events through the same state code (state.interactions, state.item_stats) and the
same builder (scoring.behaviour), as the evaluation replay and training do."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from contracts import (
    ActionEvent,
    Candidate,
    RankedResult,
    SearchEvent,
    TrainingSample,
    decode,
    encode,
)
from contracts.events import Action
from contracts.ids import item_hash
from scoring.base import ItemText, ScoreRequest, ScoreResult
from scoring.behaviour import build
from scoring.behaviour_spec import BehaviourSpec
from scoring.neighbours import Neighbours
from state import MemoryKV
from state.interactions import InteractionStore
from state.item_stats import LAYOUT, ItemStatsReading
from streams.tools.simulation import catalog_items
from streams.worker.app import StreamrankApp
from streams.worker.behaviour_source import BehaviourSource, item_attributes
from tests.functional.conftest import Outbox, load_catalog, relay_item_stats
from tests.functional.test_attribution import Ends, MemoryLog, after_window, tick
from tests.unit.scoring.conftest import FAKE_VARIANT

Worker = tuple[StreamrankApp, Outbox]
SPEC = BehaviourSpec(neighbours=4, recent_items=3)
CATALOG = {item.item_id: item for item in catalog_items()}
# Co-occurrence the model version would ship: running items go together, so do coffee ones.
NEIGHBOURS = Neighbours.from_lists({
    item_hash("running-1"): [(item_hash("running-0"), 0.9), (item_hash("running-2"), 0.4)],
    item_hash("running-3"): [(item_hash("running-0"), 0.5)],
    item_hash("coffee-2"): [(item_hash("coffee-1"), 0.7)],
}, k=4)
EVENTS: list[tuple[str, str, Action, int]] = [  # user, item, action, ts
    ("ann", "running-0", "click", 1_000),
    ("ann", "running-0", "purchase", 5_000),
    ("bob", "running-0", "view", 6_000),
    ("bob", "coffee-1", "add_to_cart", 7_000),
    ("ann", "coffee-1", "click", 90_000_000),
    ("cyd", "running-2", "purchase", 100_000_000),
    ("bob", "running-3", "click", 100_500_000),
]
SEARCH_TS = 120_000_000


class BehaviourScorer:
    """A stand-in for the hybrid scorer: builds the features from ScoreRequest.behaviour with
    its version's spec and neighbours, scores by one of them, returns the matrices."""

    name = "behaviour-fake"
    provider = "FakeExecutionProvider"
    caches_items = False
    variant_decision = FAKE_VARIANT
    version = "behaviour-fake-1"
    spec = SPEC  # what tells the worker to gather behaviour for it

    def warm_items(self, items: Sequence[ItemText]) -> int:
        return 0

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        features = [None if r.behaviour is None else build(SPEC, r.behaviour, NEIGHBOURS)
                    for r in requests]
        col = SPEC.index("cooc_sum")
        scores = [[0.0] * len(r.candidates) if f is None else
                  [float(x) - 0.01 * j for j, x in enumerate(f[:, col])]
                  for r, f in zip(requests, features, strict=True)]
        return ScoreResult(scores, {}, features=features, behaviour_spec=SPEC)


def action(n: int, user: str, item: str, kind: Action, ts: int) -> ActionEvent:
    return ActionEvent(event_id=f"e{n}", user_id=user, ts=ts, item_id=item, action=kind)


def search(user: str, rid: str) -> SearchEvent:
    pool = ["coffee-2", "running-1", "running-3", "audio-1", "never-heard-of-it"]
    return SearchEvent(event_id=f"s-{rid}", request_id=rid, user_id=user, ts=SEARCH_TS,
                       query="gift ideas",
                       candidates=[Candidate(item_id=i, retrieval_score=10.0 - k)
                                   for k, i in enumerate(pool)])


@pytest.fixture
async def behaving(worker: Worker) -> tuple[StreamrankApp, Outbox, MemoryLog]:
    sr, outbox = worker
    assert await sr.slot.swap_to("behaviour", loader=lambda _ref: BehaviourScorer())
    log = MemoryLog()

    async def committed(partition: int) -> int | None:
        return 0

    from streams.worker.action_gate import ActionGate

    sr.attribution.samples = log
    sr.attribution.gate = ActionGate(Ends(), committed)
    await load_catalog(sr)
    return sr, outbox, log


async def feed(sr: StreamrankApp, outbox: Outbox) -> None:
    async with sr.action_agent.test_context() as agent:
        for n, (user, item, kind, ts) in enumerate(EVENTS):
            await agent.put(encode(action(n, user, item, kind, ts)), key=user, partition=0)
    await relay_item_stats(sr, outbox)


def offline_features(event: SearchEvent) -> np.ndarray:
    """The same events through the same state code and builder, with no worker at all."""
    interactions = InteractionStore(MemoryKV(), retained=1000)
    vectors: dict[str, np.ndarray] = {}
    for n, (user, item, kind, ts) in enumerate(EVENTS):
        interactions.apply(action(n, user, item, kind, ts), item_attributes(CATALOG.get(item)))
        vectors[item] = LAYOUT.apply(vectors.get(item), kind, ts)

    class Stats:
        def read(self, item_ids: Sequence[str], now: int) -> ItemStatsReading:
            return LAYOUT.read_many([vectors.get(i) for i in item_ids], now)

    items = [CATALOG.get(c.item_id) for c in event.candidates]
    inputs = BehaviourSource(interactions, Stats()).inputs(event, event.candidates, items)
    return build(SPEC, inputs, NEIGHBOURS)


def replay_features(event: SearchEvent) -> np.ndarray:
    """The evaluation's own replay state (evaluation/behaviour_replay.py) fed the same events."""
    from evaluation.behaviour_replay import BehaviourState as ReplayState
    from evaluation.protocol import Search

    state = ReplayState(SPEC)
    for n, (user, item, kind, ts) in enumerate(EVENTS):
        state.apply(f"e{n}", user, item, kind, ts, item_attributes(CATALOG.get(item)) or {})
    ids = tuple(c.item_id for c in event.candidates)
    search = Search(
        index=0, request_id=event.request_id, user_id=event.user_id, ts=event.ts,
        query=event.query, query_kind="tag", movie_id=ids[0], grade=1.0, candidates=ids,
        retrieval_scores=tuple(float(c.retrieval_score or 0.0) for c in event.candidates),
        popularity=(0,) * len(ids), seen=(False,) * len(ids), history=(), prior_events=0,
        test=True)
    attributes = {i: item_attributes(CATALOG.get(i)) or {} for i in ids}
    return build(SPEC, state.inputs(search, attributes), NEIGHBOURS)


async def test_a_text_scorer_costs_no_gathering(worker: Worker) -> None:
    sr, outbox = worker  # the zero-shot scorer: it reads no behaviour

    def refuse(*args: object) -> None:
        raise AssertionError("behaviour gathered for a scorer that does not read it")

    sr.behaviour.source.inputs = refuse  # type: ignore[method-assign]
    await load_catalog(sr)
    async with sr.search_agent.test_context() as agent:
        await agent.put(encode(search("ann", "r1")), key="ann")
    assert not decode(outbox.of(sr.topics.recommendations)[-1].value, RankedResult).degraded


async def test_actions_build_interactions_and_item_statistics_on_the_replica(
    behaving: tuple[StreamrankApp, Outbox, MemoryLog],
) -> None:
    sr, outbox, _ = behaving
    async with sr.action_agent.test_context() as agent:
        for n, (user, item, kind, ts) in enumerate(EVENTS):
            await agent.put(encode(action(n, user, item, kind, ts)), key=user, partition=0)
    forwarded = outbox.of(sr.topics.item_actions)
    assert [s.key for s in forwarded] == [item for _, item, _, _ in EVENTS]  # keyed by item
    assert [dict(s.headers)["streamrank.source.offset"] for s in forwarded] == [
        str(n).encode() for n in range(len(EVENTS))]
    assert await relay_item_stats(sr, outbox) == len(EVENTS)
    ann = sr.behaviour.interactions.columns("ann")
    assert ann.events == 3 and len(ann) == 2  # two items, three actions
    view = sr.behaviour.item_view("running-0", SEARCH_TS)
    assert view["seq"] == 3 and view["counts"] == {
        "view": 1.0, "click": 1.0, "add_to_cart": 0.0, "purchase": 1.0}
    assert sr.behaviour.counts["item_actions_applied"] == len(EVENTS)


async def test_a_replayed_action_changes_nothing(
    behaving: tuple[StreamrankApp, Outbox, MemoryLog],
) -> None:
    sr, outbox, _ = behaving
    await feed(sr, outbox)
    before = sr.behaviour.replica.vector("running-0")
    columns = sr.behaviour.interactions.columns("ann")
    # As after a crash before the offset commit: the same record read again, and the site
    # sending one action twice.
    again = action(1, "ann", "running-0", "purchase", 5_000)
    await sr.behaviour.on_action(again, encode(again), 0, 1)
    await sr.behaviour.on_action(again, encode(again), 0, 99)
    assert await relay_item_stats(sr, outbox) == 0  # nothing new published
    assert sr.behaviour.counts["item_actions_repeated"] == 2
    np.testing.assert_array_equal(sr.behaviour.replica.vector("running-0"), before)
    assert sr.behaviour.interactions.columns("ann").events == columns.events


async def test_the_sample_carries_the_features_the_scorer_built_and_they_equal_offline(
    behaving: tuple[StreamrankApp, Outbox, MemoryLog],
) -> None:
    sr, outbox, log = behaving
    await feed(sr, outbox)
    searches = [search("ann", "r-ann"), search("bob", "r-bob"), search("new", "r-new")]
    async with sr.search_agent.test_context() as agent:
        for event in searches:
            await agent.put(encode(event), key=event.user_id, partition=0)
    await tick(sr, after_window(sr))
    samples = {s.request_id: decode(encode(s), TrainingSample) for s in log.all()}
    assert sorted(samples) == ["r-ann", "r-bob", "r-new"]
    for event in searches:
        sample = samples[event.request_id]
        assert sample.feature_spec == SPEC.id and sample.model_version == "behaviour-fake-1"
        logged = np.asarray([i.features for i in sample.items], dtype=np.float32)
        want = offline_features(event)  # rows in the search's candidate order
        order = [[c.item_id for c in event.candidates].index(i.item_id) for i in sample.items]
        assert logged.view(np.int32).tolist() == want[order].view(np.int32).tolist()
        # The evaluation's replay agrees too, except the price columns: it passes no item
        # values (MovieLens items have none), the worker passes the catalog's prices.
        replayed = replay_features(event)[order]
        prices = [SPEC.index("item_value"), SPEC.index("item_value_known")]
        keep = [j for j in range(SPEC.size) if j not in prices]
        assert logged[:, keep].view(np.int32).tolist() == replayed[:, keep].view(
            np.int32).tolist()
    # The features mean something: ann bought running-0, running-1's strongest neighbour,
    # so it leads her list; a stranger's list has no co-occurrence at all.
    assert samples["r-ann"].items[0].item_id == "running-1"
    cooc = SPEC.index("cooc_sum")
    assert all(i.features[cooc] == 0.0 for i in samples["r-new"].items)
    seen = SPEC.index("seen")
    assert [i.features[seen] for i in samples["r-bob"].items if i.item_id == "running-3"] == [1.0]
    assert [i.features[SPEC.index("retr_score")] for i in samples["r-new"].items] == sorted(
        [10.0, 9.0, 8.0, 7.0, 6.0], reverse=True)  # the site's order: cooc ties everywhere
