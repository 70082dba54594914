"""/ready/ turns true only after recovery: the first moment a restarted worker with an empty
state folder says ready, every user's state is already back from the changelog."""

from __future__ import annotations

import asyncio
import time
import urllib.error

import pytest

from contracts import ActionEvent, encode
from streams.tools.worker_process import WorkerProcess
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration

USERS = [f"r{n}" for n in range(20)]
PER_USER = 100  # 2,000 changelog records to replay; sequences keep the last 20


def ready_now(worker: WorkerProcess) -> bool:
    try:
        return bool(worker.get("/ready/")["ready"])
    except (urllib.error.HTTPError, OSError):  # 503 while not ready; refused before HTTP is up
        return False


def complete(worker: WorkerProcess) -> bool:
    return all(
        [e["item_id"] for e in worker.get(f"/users/{u}/sequence/")["entries"]][:1]
        == [f"{u}-{PER_USER - 1}"] for u in USERS
    )


async def test_ready_only_after_state_is_recovered(deployment: Deployment) -> None:
    dep = deployment
    worker = dep.start_worker()
    async with dep.producer() as producer:
        pending = []
        for n in range(PER_USER):
            for user in USERS:
                action = ActionEvent(event_id=f"{user}-{n}", user_id=user, ts=n,
                                     item_id=f"{user}-{n}", action="click")
                pending.append(await producer.send(dep.topics.action, encode(action),
                                                   key=user.encode()))
        for delivery in pending:
            await delivery
    await worker.wait_for(complete, "every action applied", 120)
    worker.stop()

    restarted = dep.start_worker(STREAMRANK_STATE_DIR=str(dep.tmp / "empty-state"))
    seen_not_ready = False
    deadline = time.monotonic() + 120
    while not ready_now(restarted):
        seen_not_ready = True
        assert restarted.alive and time.monotonic() < deadline, "never became ready"
        await asyncio.sleep(0.05)
    # Checked right at the first 200: nothing is still being restored.
    assert complete(restarted), "ready before its state was recovered"
    assert seen_not_ready
