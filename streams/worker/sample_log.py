"""The samples topic, written exactly once per (user, request): one record per closed
impression (contracts/samples.py), the samples of a tick in one transaction.

Samples of a user go to the partition of that user's searches and actions, and that
partition's owner is their only writer. It writes them in Kafka transactions through a
producer whose transactional.id names the partition. Starting that producer fences the
previous owner's (a crashed worker, or one that lost the partition but does not know yet):
Kafka aborts whatever transaction it left open, and its later writes fail. After that the
partition's committed content is final, and reading it back (read_committed, up to the last
stable offset) tells the new owner which impressions a crash kept it from recording as
emitted. Consumers of the topic must read with isolation_level=read_committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import orjson
from aiokafka import TopicPartition

from contracts import TrainingSample, encode
from streams.kafka.connection import KafkaClients

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer, Producer

log = logging.getLogger(__name__)

READ_BACK_TIMEOUT_S = 60.0
# Below the broker's default max.message.bytes (1 MiB): a record over it would fail its
# transaction at every tick and hold the partition's windows forever.
MAX_SAMPLE_BYTES = 900 * 1024


def encoded(sample: TrainingSample, limit: int = MAX_SAMPLE_BYTES) -> bytes:
    """The record's bytes; past `limit` (a thousand candidates with wide feature vectors) the
    features are left out rather than the sample."""
    raw = encode(sample)
    if len(raw) <= limit:
        return raw
    log.warning("sample of %s is %d bytes: sent without its features", sample.request_id,
                len(raw))
    bare = [item.model_copy(update={"features": []}) for item in sample.items]
    return encode(sample.model_copy(update={"items": bare, "feature_spec": None}))


class SampleLog(Protocol):
    async def committed_since(
        self, partition: int, offset: int | None
    ) -> tuple[list[tuple[str, str]], int]:
        """(user_id, request_id) of samples committed in `partition` from `offset` (None:
        from the start of the lookback), and the offset read up to."""

    async def emit(self, partition: int, samples: Sequence[TrainingSample]) -> tuple[int, int]:
        """Commit `samples` to `partition` in one transaction: (first offset, next offset)."""

    async def release(self, partitions: Iterable[int]) -> None:
        """This worker no longer owns `partitions`."""

    async def close(self) -> None: ...


class KafkaSampleLog:
    def __init__(
        self, clients: KafkaClients, topic: str, transactional_prefix: str, lookback_ms: int,
    ) -> None:
        self.clients = clients
        self.topic = topic
        self.transactional_prefix = transactional_prefix
        self.lookback_ms = lookback_ms
        self._producers: dict[int, Producer] = {}

    async def _producer(self, partition: int) -> Producer:
        producer = self._producers.get(partition)
        if producer is None:
            # Large batches: a tick's samples go out together (16 KiB batches made it 4x slower).
            producer = self.clients.producer(
                transactional_id=f"{self.transactional_prefix}-{partition}",
                enable_idempotence=True, acks="all", max_batch_size=1 << 19, linger_ms=5,
            )
            await producer.start()  # InitProducerId: fences the previous owner's producer
            self._producers[partition] = producer
        return producer

    async def _drop(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # a fenced producer may fail to stop cleanly; it is gone anyway
                log.debug("stopping the samples producer of partition %d", partition,
                          exc_info=True)

    async def committed_since(
        self, partition: int, offset: int | None
    ) -> tuple[list[tuple[str, str]], int]:
        await self._producer(partition)  # fence first: nothing of a previous owner stays open
        tp = TopicPartition(self.topic, partition)
        consumer = self.clients.consumer(
            group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            end: int = (await consumer.end_offsets([tp]))[tp]  # the last stable offset
            if offset is None:
                since = time.time_ns() // 1_000_000 - self.lookback_ms
                found = (await consumer.offsets_for_times({tp: since}))[tp]
                offset = end if found is None else found.offset
            if offset >= end:
                return [], max(offset, end)
            consumer.seek(tp, offset)
            return await asyncio.wait_for(self._read(consumer, tp, end), READ_BACK_TIMEOUT_S), end
        finally:
            await consumer.stop()

    async def _read(
        self, consumer: Consumer, tp: TopicPartition, end: int
    ) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                if record.offset >= end:
                    break
                try:
                    data = orjson.loads(record.value)
                    pairs.append((str(data["user_id"]), str(data["request_id"])))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s[%d]@%d is not a sample; ignored", tp.topic, tp.partition,
                                record.offset)
        return pairs

    async def emit(self, partition: int, samples: Sequence[TrainingSample]) -> tuple[int, int]:
        producer = await self._producer(partition)
        try:
            async with producer.transaction():
                sent = [
                    await producer.send(self.topic, encoded(s), key=s.user_id.encode(),
                                        partition=partition)
                    for s in samples
                ]
                offsets = [meta.offset for meta in await asyncio.gather(*sent)]
        except BaseException:
            # Fenced, timed out or cancelled: whether the commit happened is unknown here.
            # A fresh producer (and a read-back) settles it.
            await self._drop(partition)
            raise
        return min(offsets), max(offsets) + 1

    async def release(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            await self._drop(partition)

    async def close(self) -> None:
        await self.release(list(self._producers))
