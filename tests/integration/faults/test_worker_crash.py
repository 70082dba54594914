"""A worker is SIGKILLed under traffic and restarted on the same state folder: every
acknowledged action is applied exactly once, every acknowledged search answered (a result
published before the crash may be published again: consumers deduplicate by request_id,
docs/architecture.md "Reliability"), and with static membership the restarted worker answers
again within seconds instead of waiting out the session timeout."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.faults.harness import FaultDeployment, Traffic, account, own_broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


async def first_result_after(dep: FaultDeployment, since: float, timeout: float) -> float:
    """Seconds from `since` (monotonic) until a result is published (read from the end)."""
    consumer = dep.clients.consumer(dep.topics.recommendations, group_id=None,
                                    auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    try:
        while time.monotonic() - since < timeout:
            batch = await consumer.getmany(timeout_ms=200)
            if any(recs for recs in batch.values()):
                return time.monotonic() - since
    finally:
        await consumer.stop()
    raise AssertionError(f"no result within {timeout:.0f} s of the restart")


@pytest.mark.parametrize("membership", ["static", "dynamic"])
async def test_sigkilled_worker_under_traffic(
    tmp_path: Path, models_dir: Path, membership: str
) -> None:
    broker = own_broker(tmp_path)
    broker.start(timeout=120)
    dep = FaultDeployment(broker, tmp_path, models_dir, tag=f"crash-{membership}")
    extra = {"STREAMRANK_GROUP_INSTANCE_ID": "fault-worker-1"} if membership == "static" else {}
    try:
        worker = dep.start_worker(**extra)
        await worker.wait_ready(180)
        traffic = Traffic(dep, tag=membership)
        running = asyncio.create_task(traffic.run(seconds=30, rate=20))
        await asyncio.sleep(10)
        worker.kill()  # SIGKILL: no commit, no leave-group
        restarted = time.monotonic()
        worker = dep.start_worker(**extra)
        again = await first_result_after(dep, restarted, 90)
        sent = await running
        deadline = time.monotonic() + 90
        while True:
            result = await account(dep, sent, worker)
            if not result.missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        print(f"\n[fault] worker SIGKILL ({membership} membership): {result.row()} "
              f"answering again {again:.1f} s after the restart")
        assert result.missing == [], result.missing[:10]
        assert result.duplicated_actions == 0
        assert worker.alive
        if membership == "static":  # dynamic waits out the 10 s session timeout first
            assert again < 10, again
    finally:
        dep.stop()
        broker.wipe()
