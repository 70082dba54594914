"""Captured TrainingSamples read back from the samples topic for a training run.

Every partition, between two offsets or two times (offsets_for_times), read_committed, up to
the end offsets taken when reading starts (so a busy topic still gives a finite read).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from tqdm import tqdm  # type: ignore[import-untyped]

from contracts import DecodeError, TrainingSample, decode
from streams.kafka.connection import KafkaClients
from streams.kafka.topology import partitions_of

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer

log = logging.getLogger(__name__)


def range_consumer(clients: KafkaClients) -> Consumer:
    """A group-less, read_committed consumer: the trainer reads ranges, never commits, and
    must not steal partitions from the workers."""
    return clients.consumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


async def _range(
    consumer: Consumer, tps: list[TopicPartition], since_ms: int | None,
    until_ms: int | None, from_offset: int | None,
) -> dict[TopicPartition, tuple[int, int]]:
    """[start, stop) offsets per partition."""
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    start = {tp: max(begin[tp], from_offset or 0) for tp in tps}
    stop = dict(end)
    if since_ms is not None:
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        start = {tp: max(start[tp], found[tp].offset if found[tp] else end[tp]) for tp in tps}
    if until_ms is not None:
        found = await consumer.offsets_for_times({tp: until_ms for tp in tps})
        stop = {tp: min(end[tp], found[tp].offset if found[tp] else end[tp]) for tp in tps}
    return {tp: (start[tp], max(start[tp], stop[tp])) for tp in tps}


async def read_samples(
    clients: KafkaClients,
    topic: str,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    from_offset: int | None = None,
    progress: bool = False,
) -> list[TrainingSample]:
    """Every committed sample of `topic` in the range (all partitions). Undecodable records
    are logged and skipped; duplicates are left for samples.build_lists to drop."""
    partitions = await partitions_of(clients, topic)
    if not partitions:
        log.warning("topic %s does not exist (yet): no samples", topic)
        return []
    consumer = range_consumer(clients)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        span = await _range(consumer, tps, since_ms, until_ms, from_offset)
        for tp, (start, _) in span.items():
            consumer.seek(tp, start)
        samples: list[TrainingSample] = []
        bad = 0
        todo = {tp for tp, (start, stop) in span.items() if stop > start}
        with tqdm(total=sum(b - a for a, b in span.values()), desc="reading samples",
                  unit="rec", disable=not progress) as bar:
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, records in batch.items():
                    stop = span[tp][1]
                    for rec in records:
                        if rec.offset >= stop:
                            break
                        try:
                            samples.append(decode(rec.value, TrainingSample))
                        except DecodeError as exc:
                            bad += 1
                            log.debug("skipping %s@%d: %s", tp, rec.offset, exc)
                    bar.update(sum(1 for r in records if r.offset < stop))
                # Transaction markers take offsets too: position, not record count, says done.
                for tp in list(todo):
                    if await consumer.position(tp) >= span[tp][1]:
                        todo.discard(tp)
        if bad:
            log.warning("skipped %d records of %s that are not TrainingSamples", bad, topic)
        return samples
    finally:
        await consumer.stop()
