"""The agents through Faust's test_context: real tables (memory store), real zero-shot scorer,
outgoing topics captured."""

from __future__ import annotations

import orjson

from contracts import ActionEvent, Candidate, Item, RankedResult, SearchEvent, decode, encode
from streams.tools.simulation import catalog_items, department
from streams.worker.app import StreamrankApp
from tests.functional.conftest import Outbox, load_catalog
from tests.unit.scoring.conftest import FakeScorer

Worker = tuple[StreamrankApp, Outbox]


def search(user: str, ids: list[str], query: str = "gift ideas", rid: str = "r1") -> SearchEvent:
    return SearchEvent(
        event_id=f"e-{rid}", request_id=rid, user_id=user, ts=1, query=query,
        candidates=[Candidate(item_id=i) for i in ids],
    )


async def ask(sr: StreamrankApp, outbox: Outbox, event: SearchEvent) -> RankedResult:
    async with sr.search_agent.test_context() as agent:
        await agent.put(encode(event), key=event.user_id)
    return decode(outbox.of(sr.topics.recommendations)[-1].value, RankedResult)


async def click(sr: StreamrankApp, user: str, items: list[str]) -> None:
    async with sr.action_agent.test_context() as agent:
        for n, item in enumerate(items):
            event = ActionEvent(event_id=f"{user}-{n}", user_id=user, ts=n, item_id=item,
                                action="click")
            await agent.put(encode(event), key=user)


async def test_catalog_replica_keeps_items_honours_deletes_and_stores_offsets(
    worker: Worker,
) -> None:
    sr, _ = worker
    await load_catalog(sr)
    n = len(catalog_items())
    assert len(sr.catalog) == n
    replica = sr.catalog_replica
    replica.apply(0, n, b"coffee-0", encode(Item(item_id="coffee-0", title="x", deleted=True)))
    replica.apply(1, 7, b"coffee-1", None)  # a Kafka tombstone
    replica.apply(1, 8, b"junk", b"{not json")  # skipped: the agent dead-letters it
    assert sr.catalog.get("coffee-0") is None and sr.catalog.get("coffee-1") is None
    assert len(sr.catalog) == n - 2 and replica.skipped == 1
    # Where a restart resumes each partition.
    assert replica.stored_offset(0) == n + 1 and replica.stored_offset(1) == 9
    # New items are queued for embedding with the serving model.
    assert "coffee-2" in sr.scoring._pending


async def test_action_agent_builds_the_sequence_once_per_event(worker: Worker) -> None:
    sr, _ = worker
    await click(sr, "u1", ["a", "b"])
    await click(sr, "u1", ["a", "b"])  # the same event ids again: a replay
    assert sr.sequences.get("u1").item_ids() == ["b", "a"]


async def test_search_is_answered_with_every_candidate_once(worker: Worker) -> None:
    sr, outbox = worker
    await load_catalog(sr)
    ids = ["coffee-1", "audio-2", "never-heard-of-it", "coffee-1", "games-0"]
    result = await ask(sr, outbox, search("new-user", ids))
    assert [i.rank for i in result.items] == [1, 2, 3, 4]
    assert sorted(i.item_id for i in result.items) == sorted(set(ids))
    assert result.model_version == sr.slot.current.version
    assert not result.degraded
    assert outbox.of(sr.topics.recommendations)[-1].key == "new-user"
    assert result.received_ts <= result.published_ts


async def test_history_moves_the_liked_department_up(worker: Worker) -> None:
    sr, outbox = worker
    await load_catalog(sr)
    pool = [i.item_id for i in catalog_items()]
    await click(sr, "runner", ["running-0", "running-1", "running-3"])
    fresh = await ask(sr, outbox, search("new-user", pool, rid="a"))
    warm = await ask(sr, outbox, search("runner", pool, rid="b"))

    def mean_rank(result: RankedResult) -> float:
        ranks = [i.rank for i in result.items if department(i.item_id) == "running"]
        return sum(ranks) / len(ranks)

    assert mean_rank(warm) < mean_rank(fresh) - 5


async def test_scorer_failure_answers_degraded_in_site_order(worker: Worker) -> None:
    sr, outbox = worker

    broken = FakeScorer("broken-1", error=RuntimeError("model exploded"))
    assert await sr.slot.swap_to("broken", loader=lambda _ref: broken)
    result = await ask(sr, outbox, search("u", ["b", "a", "c"]))
    assert result.degraded
    assert [i.item_id for i in result.items] == ["b", "a", "c"]


async def test_garbage_goes_to_the_deadletter_with_its_origin(worker: Worker) -> None:
    sr, outbox = worker
    async with sr.search_agent.test_context() as agent:
        await agent.put(b"{not json", key="u1")
        await agent.put(orjson.dumps({"user_id": "u1"}), key="u1")
    async with sr.action_agent.test_context() as agent:
        await agent.put(orjson.dumps({"event_id": "e", "user_id": "u", "ts": 1, "item_id": "i",
                                      "action": "teleport"}), key="u1")
    dead = outbox.of(sr.topics.deadletter)
    assert len(dead) == 3
    assert not outbox.of(sr.topics.recommendations)
    headers = dict((k, v.decode()) for k, v in dead[0].headers)
    assert headers["streamrank.deadletter.reason"] == "not_json"
    assert dead[0].value == b"{not json"
    assert dict(sr.deadletters.counts) == {"not_json": 1, "invalid": 2}
