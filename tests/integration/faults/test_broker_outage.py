"""The broker stops under traffic (SIGTERM: a clean shutdown; SIGKILL: a crash) and comes
back on the same data directory: every acknowledged action is applied exactly once, every
acknowledged search is answered, /ready/ says 503 while the broker is away and 200 after,
and the worker says what is wrong once instead of flooding its log."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.faults.harness import (
    FaultDeployment,
    Traffic,
    account,
    own_broker,
    ready_now,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DOWN_S = 12.0


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_broker_restart_under_traffic(tmp_path: Path, models_dir: Path, how: str) -> None:
    broker = own_broker(tmp_path)
    broker.start(timeout=120)
    dep = FaultDeployment(broker, tmp_path, models_dir, tag=how.lower())
    try:
        worker = dep.start_worker()
        await worker.wait_ready(180)
        traffic = Traffic(dep, tag=how.lower())
        running = asyncio.create_task(traffic.run(seconds=30 + DOWN_S, rate=20))
        await asyncio.sleep(8)

        log_before = worker.log_path.stat().st_size
        stopped = time.monotonic()
        if how == "SIGTERM":
            await asyncio.to_thread(broker.stop)
        else:
            pid = broker.status().pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(broker.stop)  # reaps it, removes the pid file
        to_503 = await wait_until(lambda: ready_now(worker) is False, 20)
        await asyncio.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped)))
        down_lines = worker.log_path.read_bytes()[log_before:].decode(errors="replace")
        await asyncio.to_thread(broker.start, 120)
        restarted = time.monotonic()
        to_200 = await wait_until(lambda: ready_now(worker) is True, 90)

        sent = await running
        # Everything acknowledged is eventually answered / applied (bounded wait).
        deadline = time.monotonic() + 90
        while True:
            result = await account(dep, sent, worker)
            if not result.missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        print(f"\n[fault] broker {how} down {DOWN_S:.0f} s: {result.row()} "
              f"ready->503 in {to_503:.1f} s, ->200 {to_200:.1f} s after the broker was back "
              f"({time.monotonic() - restarted:.0f} s to settle), "
              f"worker log while down: {len(down_lines.splitlines())} lines, "
              f"{down_lines.count('ERROR')} ERROR")
        assert result.missing == [], result.missing[:10]
        assert result.duplicated_actions == 0
        assert result.acknowledged > 0 and sent.failed >= 0
        assert worker.alive
        # Said once, clearly; not ~180 ERROR lines a second.
        assert "is unreachable" in down_lines
        assert down_lines.count("ERROR") < 5 * DOWN_S
    finally:
        dep.stop()
        broker.wipe()
