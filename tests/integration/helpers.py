from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiokafka.structs import ConsumerRecord

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer


async def collect(
    consumer: Consumer,
    done: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord]:
    """Records from the consumer until `done(records)` or the timeout (then AssertionError)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while not done(records):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out with {len(records)} records")
        batch = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
        for recs in batch.values():
            records.extend(recs)
    return records



async def streamrank(env: dict[str, str], *args: str, timeout: float) -> str:
    """Run the CLI as a user would, configured by `env` on top of ours; its output, or
    AssertionError with it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    return text
