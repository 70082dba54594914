"""Scale out: two workers in one consumer group share the partitions (and each holds the whole
catalog); when one stops, the other takes its partitions, rebuilds their state from the
changelogs and keeps answering."""

from __future__ import annotations

import pytest

from contracts import ActionEvent, Candidate, RankedResult, SearchEvent
from streams.kafka.broker_config import free_port
from streams.tools.simulation import catalog_items
from streams.tools.worker_process import WorkerProcess
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration

ITEMS = catalog_items()
USERS = [f"user-{n}" for n in range(16)]  # enough keys to land on all 4 partitions
PER_USER = 3


def expected(user: str) -> list[str]:
    return [f"{user}-item-{n}" for n in reversed(range(PER_USER))]


def held(worker: WorkerProcess) -> dict[str, list[str]]:
    """The users whose sequence this worker holds (a local read: only its partitions)."""
    found = {}
    for user in USERS:
        entries = worker.get(f"/users/{user}/sequence/")["entries"]
        if entries:
            found[user] = [e["item_id"] for e in entries]
    return found


async def search_all(dep: Deployment, users: list[str], tag: str) -> dict[str, RankedResult]:
    """Each user searches once; the answers, by request_id."""
    async with dep.client() as client:
        for user in users:
            await client.send_search(SearchEvent(
                event_id=f"{tag}-{user}", request_id=f"{tag}-{user}", user_id=user, ts=2000,
                query="something to read",
                candidates=[Candidate(item_id=i) for i in expected(user)]))
        replies = await client.results([f"{tag}-{u}" for u in users], 60)
    return {rid: reply.result for rid, reply in replies.items()}


async def test_two_workers_share_partitions_and_one_takes_over(deployment: Deployment) -> None:
    dep = deployment
    shared = {"STREAMRANK_PARTITIONS": "4", "STREAMRANK_SESSION_TIMEOUT_S": "6"}
    first = dep.start_worker(**shared)
    await first.wait_ready()
    second = WorkerProcess(
        {**dep.env, **shared, "STREAMRANK_STATE_DIR": str(dep.tmp / "state-2"),
         "STREAMRANK_WEB_PORT": str(free_port())},
        dep.tmp / "worker-second.log",
    )
    try:
        await second.wait_ready()
        async with dep.client(listen=False) as client:
            for item in ITEMS:  # spread over the catalog's partitions
                await client.publish_item(item)
        # Each worker owns some catalog partitions but must know every item.
        for worker in (first, second):
            await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == len(ITEMS),
                                  "the whole catalog on every worker", 60)
        async with dep.client(listen=False) as client:
            for n in range(PER_USER):
                for user in USERS:
                    await client.publish_action(ActionEvent(
                        event_id=f"{user}-{n}", user_id=user, ts=1000 + n,
                        item_id=f"{user}-item-{n}", action="click"))

        def split(_: WorkerProcess) -> tuple[dict[str, list[str]], dict[str, list[str]]] | None:
            # Both non-empty: right after a rebalance one worker may briefly show everyone;
            # without load sharing this never holds and the wait fails.
            # Every action applied, too (a user can be seen with 2 of its 3 actions).
            a, b = held(first), held(second)
            shared = a and b and len(a) + len(b) == len(USERS) and a.keys().isdisjoint(b)
            done = all(seq == expected(u) for u, seq in {**a, **b}.items())
            return (a, b) if shared and done else None

        mine, _ = await first.wait_for(split, "users split between the two workers", 120)

        answered = await search_all(dep, USERS, "both")
        assert not any(r.degraded for r in answered.values())

        first.stop()  # leaves the group; its partitions move to the second worker

        # The second worker now holds everyone, the first worker's users from the changelogs.
        await second.wait_for(lambda w: held(w) == {u: expected(u) for u in USERS},
                              "every user's state on the remaining worker", 120)
        after = await search_all(dep, list(mine), "after")
        assert set(after) == {f"after-{u}" for u in mine}
        assert not any(r.degraded for r in after.values())
    finally:
        second.stop()
