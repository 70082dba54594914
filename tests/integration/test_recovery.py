"""State survives a crash: a SIGKILLed worker, restarted, has every acknowledged action once."""

from __future__ import annotations

from contracts import ActionEvent, encode
from tests.integration.conftest import Deployment

USERS = ["ann", "bob", "cyd"]


def actions(start: int, count: int) -> list[ActionEvent]:
    return [
        ActionEvent(event_id=f"{u}-{n}", user_id=u, ts=1000 + n, item_id=f"item-{u}-{n}",
                    action="click")
        for n in range(start, start + count) for u in USERS
    ]



async def produce(dep: Deployment, events: list[ActionEvent]) -> None:
    async with dep.producer() as producer:  # acks=all: each send is acknowledged by the broker
        for e in events:
            await producer.send_and_wait(dep.topics.action, encode(e), key=e.user_id.encode())


def sequences(worker) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {
        u: [e["item_id"] for e in worker.get(f"/users/{u}/sequence/")["entries"]] for u in USERS
    }


def want(upto: int) -> dict[str, list[str]]:
    return {u: [f"item-{u}-{n}" for n in reversed(range(upto))] for u in USERS}


async def test_sigkilled_worker_recovers_every_action_exactly_once(
    deployment: Deployment,
) -> None:
    dep = deployment
    fast_failover = {"STREAMRANK_SESSION_TIMEOUT_S": "6"}
    worker = dep.start_worker(**fast_failover)
    await produce(dep, actions(0, 6))
    await worker.wait_for(lambda w: sequences(w) == want(6), "all actions applied")
    worker.kill()  # before its next commit: offsets and table flushes may be behind

    # Same state folder: local RocksDB plus the changelog since its stored offset.
    worker = dep.start_worker(**fast_failover)
    await produce(dep, actions(6, 4))
    await worker.wait_for(lambda w: sequences(w) == want(10), "recovered + new actions", 120)
    worker.kill()

    # Empty state folder: everything must come back from the changelog alone.
    worker = dep.start_worker(STREAMRANK_STATE_DIR=str(dep.tmp / "fresh-state"), **fast_failover)
    await worker.wait_for(lambda w: sequences(w) == want(10), "recovery from changelog", 120)
    assert sequences(worker) == want(10)  # and nothing replayed twice on top
