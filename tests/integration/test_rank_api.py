"""POST /rank with two workers sharing the partitions: any worker answers for any user (the
owner ranks it), one request_id gives exactly one impression and one recommendations record
whichever path and worker it came by, explanations agree with the scores, and the HTTP client
falls back to the site's order when no worker answers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from contracts import ActionEvent, Candidate, RankedResult, SearchEvent, decode
from streams.client import NO_WORKER, ClientFallback, HttpRankingClient
from streams.kafka.broker_config import free_port
from streams.tools.simulation import catalog_items
from streams.tools.worker_process import WorkerProcess
from tests.integration.conftest import Deployment
from tests.integration.helpers import collect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ITEMS = catalog_items()
USERS = [f"buyer-{n}" for n in range(8)]  # enough keys for both partitions
LONG_S = 30.0  # deadlines never reached on a working worker, however loaded the machine
SHARED = {"STREAMRANK_PARTITIONS": "2", "STREAMRANK_SESSION_TIMEOUT_S": "6",
          "STREAMRANK_RANK_DEADLINE_MS": "30000", "STREAMRANK_SCORE_TIMEOUT_MS": "20000"}


def search(rid: str, user: str, *, explain: bool = False) -> SearchEvent:
    return SearchEvent(event_id=f"e-{rid}", request_id=rid, user_id=user, ts=1000,
                       query="coffee for the morning", explain=explain,
                       candidates=[Candidate(item_id=i.item_id) for i in ITEMS[:10]])


def url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


def owner_of(workers: list[WorkerProcess], user: str, rid: str) -> list[int]:
    """Which workers keep the impression of `rid` (a local read: only the owner has it)."""
    return [k for k, w in enumerate(workers)
            if rid in [i["request_id"] for i in w.get(f"/users/{user}/impressions/")["open"]]]


async def start_two(dep: Deployment) -> list[WorkerProcess]:
    first = dep.start_worker(**SHARED)
    await first.wait_ready()
    second = WorkerProcess({**dep.env, **SHARED, "STREAMRANK_STATE_DIR": str(dep.tmp / "s2"),
                            "STREAMRANK_WEB_PORT": str(free_port())}, dep.tmp / "second.log")
    await second.wait_ready()
    workers = [first, second]
    async with dep.client(listen=False) as client:
        for item in ITEMS:
            await client.publish_item(item)
        for user in USERS:  # a history: the explanations have entries to weigh
            await client.publish_action(ActionEvent(event_id=f"a-{user}", user_id=user, ts=900,
                                                    item_id=ITEMS[1].item_id, action="click"))

    def split(_: WorkerProcess) -> bool:
        held = [{u for u in USERS if w.get(f"/users/{u}/sequence/")["entries"]}
                for w in workers]
        return bool(held[0] and held[1] and held[0] | held[1] == set(USERS)
                    and not held[0] & held[1]
                    and all(w.get("/health/")["catalog_items"] == len(ITEMS) for w in workers))

    await first.wait_for(split, "users split between two workers with the catalog", 180)
    return workers


async def test_any_worker_answers_once_per_request_id(deployment: Deployment) -> None:
    dep = deployment
    workers = await start_two(dep)
    first, second = workers
    try:
        # Every user through the first worker: half of them owned by the second.
        async with HttpRankingClient(url(first)) as http:
            answers = {u: await http.rank(search(f"via-first-{u}", u), LONG_S) for u in USERS}
        owners = {u: owner_of(workers, u, f"via-first-{u}") for u in USERS}
        assert all(len(o) == 1 for o in owners.values()), owners  # one impression each
        assert {o[0] for o in owners.values()} == {0, 1}  # the non-owner accepted some
        for user, result in answers.items():
            assert not isinstance(result, ClientFallback) and not result.degraded
            assert result.user_id == user and len(result.items) == 10

        # One request_id over Kafka, then over /rank on both workers, then both at once.
        user = USERS[0]
        async with dep.client(remember=100) as kafka_client:
            over_kafka = await kafka_client.rank(search("both-1", user), LONG_S)
        async with HttpRankingClient(url(first)) as a, HttpRankingClient(url(second)) as b:
            again = [await a.rank(search("both-1", user), LONG_S),
                     await b.rank(search("both-1", user), LONG_S)]
            racing = await asyncio.gather(a.rank(search("both-2", user), LONG_S),
                                          b.rank(search("both-2", user), LONG_S))
        assert again == [over_kafka, over_kafka] and not over_kafka.degraded
        assert racing[0] == racing[1] and not racing[0].degraded
        assert owner_of(workers, user, "both-1") == owner_of(workers, user, "both-2")
        async with dep.consumer(dep.topics.recommendations) as consumer:
            records = await collect(consumer, lambda r: sum(
                decode(x.value, RankedResult).request_id.startswith("via-first")
                for x in r) >= len(USERS) + 0, timeout=60)
            await asyncio.sleep(3)  # any late second answer would be on the topic by now
            records += [r for rs in (await consumer.getmany(timeout_ms=2000)).values()
                        for r in rs]
        ids = [decode(r.value, RankedResult).request_id for r in records]
        assert ids.count("both-1") == 1 and ids.count("both-2") == 1

        # Explanations (zero-shot): the parts of each item add up to its score.
        async with HttpRankingClient(url(second)) as http:
            explained = await http.rank(search("why-1", USERS[3], explain=True), LONG_S)
        assert not explained.degraded
        history_titles = {ITEMS[1].title}
        for item in explained.items:
            why = item.explanation
            assert why is not None and set(why.parts) <= {"query", "history", "deep"}
            assert sum(why.parts.values()) == pytest.approx(item.score, abs=1e-4)
            assert {h.text for h in why.history} <= history_titles and why.history
        plain = answers[USERS[3]]
        assert all(i.explanation is None for i in plain.items)

        # A search the Kafka path would deadletter is refused with the reason.
        async with aiohttp.ClientSession() as session, session.post(
                f"{url(first)}/rank", data=b'{"request_id": "x"}') as response:
            assert response.status == 400
            assert (await response.json())["error"] == "invalid"

        # The second worker goes away: the first answers for everyone; with only the
        # stopped one to ask, the client answers in the site's order at once.
        second.stop()
        async with HttpRankingClient([url(second), url(first)]) as http:
            after = await http.rank(search("after-1", USERS[1]), 60.0)
            assert not isinstance(after, ClientFallback) and after.request_id == "after-1"
        async with HttpRankingClient(url(second)) as http:
            lost = await http.rank(search("lost-1", USERS[1]), 2.0)
            assert isinstance(lost, ClientFallback) and lost.reason == NO_WORKER
            assert [i.item_id for i in lost.items] == [i.item_id for i in ITEMS[:10]]
    finally:
        for worker in workers:
            worker.stop()
