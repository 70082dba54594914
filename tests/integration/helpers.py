from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from contracts import RankedResult, decode


async def collect(
    consumer: AIOKafkaConsumer,
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


async def results_for(
    consumer: AIOKafkaConsumer, request_ids: set[str], timeout: float = 30.0
) -> dict[str, RankedResult]:
    """The RankedResults answering `request_ids`, each by request id."""
    found: dict[str, RankedResult] = {}

    def done(records: list[ConsumerRecord]) -> bool:
        for rec in records:
            result = decode(rec.value, RankedResult)
            if result.request_id in request_ids:
                found[result.request_id] = result
        return request_ids <= found.keys()

    await collect(consumer, done, timeout)
    return found


async def sleep_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.2)
