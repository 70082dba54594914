"""The client library against the real broker: rank() gets the worker's answer whichever
partition the user is on, bursts are collected with their timings, two clients never take
each other's results, the sync client works without an event loop, and with no worker
running rank() answers in the site's order by its deadline."""

from __future__ import annotations

import asyncio

import pytest

from contracts import Candidate, SearchEvent, decode
from streams.client import CLIENT_TIMEOUT, ClientFallback, RankingClient, SyncRankingClient
from streams.kafka.topology import prepare
from streams.settings import Settings
from streams.tools.simulation import catalog_items
from tests.integration.conftest import Deployment
from tests.integration.helpers import collect

pytestmark = pytest.mark.integration

ITEMS = catalog_items()
USERS = [f"shopper-{n}" for n in range(8)]  # enough keys for both partitions


def search(rid: str, user: str) -> SearchEvent:
    return SearchEvent(event_id=f"e-{rid}", request_id=rid, user_id=user, ts=1, query="coffee",
                       candidates=[Candidate(item_id=i.item_id) for i in ITEMS[:12]])


async def test_rank_bursts_two_clients_and_the_sync_client(deployment: Deployment) -> None:
    dep = deployment
    worker = dep.start_worker()
    await worker.wait_ready()
    async with dep.client() as mine, dep.client() as theirs:
        for item in ITEMS:
            await mine.send_item(item)
        await mine.flush()
        await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == len(ITEMS),
                              "catalog")
        partitions = set()
        for user in USERS:  # one at a time, each on its user's partition
            result = await mine.rank(search(f"one-{user}", user), 60, fallback=False)
            assert result.user_id == user and not result.degraded
            assert not isinstance(result, ClientFallback)
            assert sorted(i.item_id for i in result.items) == sorted(i.item_id
                                                                     for i in ITEMS[:12])
            partitions.add((await mine.publish_search(search(f"p-{user}", user),
                                                      expect=False)).partition)
        assert partitions == {0, 1}

        # Two bursts at once, one per client: each collects its own, drops the other's.
        ours = [search(f"ours-{n}", USERS[n % 8]) for n in range(30)]
        other = [search(f"theirs-{n}", USERS[n % 8]) for n in range(30)]
        for a, b in zip(ours, other, strict=True):
            await mine.send_search(a)
            await theirs.send_search(b)
        got, also = await asyncio.gather(mine.results([s.request_id for s in ours], 60),
                                         theirs.results([s.request_id for s in other], 60))
        assert set(got) == {s.request_id for s in ours}
        assert set(also) == {s.request_id for s in other}
        for reply in got.values():
            assert reply.acked_s is not None and reply.received_s >= reply.sent_s
        assert mine.stats()["waiting"] == 0 and theirs.stats()["waiting"] == 0
        assert mine.stats()["dropped"] >= 30 and theirs.stats()["dropped"] >= 30

    def sync_rank() -> bool:  # code without an event loop of its own
        with SyncRankingClient(dep.clients, dep.topics) as client:
            result = client.rank(search("sync-1", "shopper-1"), 60, fallback=False)
            return result.request_id == "sync-1" and not result.degraded

    assert await asyncio.to_thread(sync_rank)


async def test_with_no_worker_rank_answers_in_the_site_order_by_its_deadline(
    deployment: Deployment,
) -> None:
    dep = deployment
    settings = Settings(bootstrap_servers=dep.bootstrap, topic_prefix=dep.topics.prefix,
                        app_id=dep.env["STREAMRANK_APP_ID"])
    await prepare(settings, dep.clients)  # the topics exist; every worker is down
    async with RankingClient(dep.clients, dep.topics) as client:
        searches = [search(f"lost-{n}", USERS[n]) for n in range(3)]
        answers = await asyncio.gather(*(client.rank(s, 1.0) for s in searches))
        for s, answer in zip(searches, answers, strict=True):
            assert isinstance(answer, ClientFallback) and answer.reason == CLIENT_TIMEOUT
            assert answer.degraded and answer.request_id == s.request_id
            assert [i.item_id for i in answer.items] == [c.item_id for c in s.candidates]
        assert client.stats()["waiting"] == 0 and client.stats()["fallback_client_timeout"] == 3
    # The searches were published all the same, keyed by user: a worker that comes back
    # answers them (late, to nobody: the client has moved on).
    async with dep.consumer(dep.topics.search) as consumer:
        records = await collect(consumer, lambda r: len(r) >= 3)
    assert {(r.key, decode(r.value, SearchEvent).request_id) for r in records} == {
        (s.user_id.encode(), s.request_id) for s in searches}
