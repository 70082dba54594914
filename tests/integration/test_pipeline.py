"""The whole path through a real broker: an independent client produces, the worker answers."""

from __future__ import annotations

import orjson

from contracts import ActionEvent, Candidate, SearchEvent
from streams.tools.simulation import catalog_items, department
from tests.integration.conftest import Deployment
from tests.integration.helpers import collect

ITEMS = catalog_items()


async def ready_with_catalog(dep: Deployment) -> None:
    """Start a worker and load the catalog through Kafka; return once the worker has it."""
    worker = dep.start_worker()
    async with dep.client(listen=False) as client:
        for item in ITEMS:
            await client.publish_item(item)
    await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == len(ITEMS), "catalog")


async def test_ranked_result_for_every_search_personalized_by_history(
    deployment: Deployment,
) -> None:
    dep = deployment
    await ready_with_catalog(dep)
    assert dep.worker is not None
    pool = [i.item_id for i in ITEMS]
    async with dep.client() as client:
        for n, item in enumerate(["coffee-0", "coffee-2", "coffee-5"]):
            await client.publish_action(ActionEvent(
                event_id=f"c{n}", user_id="barista", ts=n, item_id=item, action="click"))
        await dep.worker.wait_for(
            lambda w: len(w.get("/users/barista/sequence/")["entries"]) == 3, "sequence"
        )
        searches = [
            SearchEvent(event_id=f"s-{u}", request_id=f"r-{u}", user_id=u, ts=10,
                        query="gift ideas", candidates=[Candidate(item_id=i) for i in pool])
            for u in ("barista", "stranger")
        ]
        for s in searches:
            await client.publish_search(s)
        results = {rid: reply.result for rid, reply in
                   (await client.results(["r-barista", "r-stranger"], 30)).items()}

    for result in results.values():
        assert sorted(i.item_id for i in result.items) == sorted(pool)
        assert [i.rank for i in result.items] == list(range(1, len(pool) + 1))
        assert result.model_version.startswith("zeroshot-")
        assert not result.degraded

    def coffee_rank(rid: str) -> float:
        ranks = [i.rank for i in results[rid].items if department(i.item_id) == "coffee"]
        return sum(ranks) / len(ranks)

    assert coffee_rank("r-barista") < coffee_rank("r-stranger") - 5


GARBAGE: list[tuple[str, str, bytes, str]] = [
    # (name, topic attribute, payload, expected reason)
    ("not json", "search", b"hello there", "not_json"),
    ("json but not an object", "search", b"[1, 2, 3]", "not_object"),
    ("wrong type", "search", orjson.dumps({"event_id": "e", "request_id": "r", "user_id": "u",
                                           "ts": "now", "query": "q",
                                           "candidates": [{"item_id": "a"}]}), "invalid"),
    ("missing fields", "search", orjson.dumps({"query": "shoes"}), "invalid"),
    ("empty candidates", "search", orjson.dumps({"event_id": "e", "request_id": "r",
                                                 "user_id": "u", "ts": 1, "query": "q",
                                                 "candidates": []}), "invalid"),
    ("huge payload", "search", b'{"query": "' + b"x" * 700_000 + b'"}', "too_large"),
    ("unknown action", "action", orjson.dumps({"event_id": "e", "user_id": "u", "ts": 1,
                                               "item_id": "i", "action": "teleport"}), "invalid"),
    ("empty message", "action", b"", "empty"),
    ("negative position", "action", orjson.dumps({"event_id": "e", "user_id": "u", "ts": 1,
                                                  "item_id": "i", "action": "click",
                                                  "position": -3}), "invalid"),
    ("item without title", "catalog", orjson.dumps({"item_id": "x"}), "invalid"),
    ("invalid utf-8", "catalog", b"\xff\xfe\xfd", "not_json"),
]


async def test_every_kind_of_garbage_lands_once_in_the_deadletter(deployment: Deployment) -> None:
    dep = deployment
    await ready_with_catalog(dep)
    assert dep.worker is not None
    async with dep.client() as client, dep.producer() as producer:
        for n, (_, attr, payload, _) in enumerate(GARBAGE):
            await producer.send_and_wait(getattr(dep.topics, attr), payload,
                                         key=f"bad-{n}".encode())
        good = SearchEvent(event_id="ok", request_id="r-after-garbage", user_id="u", ts=1,
                           query="mug", candidates=[Candidate(item_id="coffee-7")])
        answer = await client.rank(good, 30, fallback=False)
        assert answer.request_id == "r-after-garbage" and not answer.degraded

    async with dep.consumer(dep.topics.deadletter) as consumer:
        records = await collect(consumer, lambda r: len(r) >= len(GARBAGE))
        await collect(consumer, lambda r: True, timeout=2)  # nothing extra should follow

    by_key = {rec.key.decode(): rec for rec in records}
    assert len(records) == len(GARBAGE) == len(by_key)
    for n, (name, attr, payload, reason) in enumerate(GARBAGE):
        rec = by_key[f"bad-{n}"]
        headers = {k: v.decode() for k, v in rec.headers}
        assert headers["streamrank.deadletter.reason"] == reason, name
        assert headers["streamrank.deadletter.source.topic"] == getattr(dep.topics, attr), name
        assert int(headers["streamrank.deadletter.source.offset"]) >= 0
        assert rec.value == payload, name
    assert dep.worker.alive
