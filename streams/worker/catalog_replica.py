"""Every worker's own copy of the whole catalog, read straight from the compacted topic.

Why not a Faust GlobalTable: with several workers in one group, a GlobalTable only keeps
receiving the changelog partitions of the table's active partitions on each worker (the
catalog agent writes only the items of the catalog partitions it owns), so every worker ended
up with part of the catalog (faust-streaming/faust#283; measured here: 22 + 26 of 48 items
with two workers). Instead, each worker reads every partition of the catalog topic with a
group-less consumer and keeps the items in its local store, with the next offset of each
partition stored beside them (the way aiokafka's own state keeps offsets with the data):
a restart reads only the tail, an empty state folder re-reads the compacted topic.

Applying a record is an idempotent upsert or delete, so a crash between an item write and
its offset write replays the record harmlessly. Records that do not decode are skipped here:
the catalog agent (one worker per partition) sends them to the deadletter topic once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import mode
from aiokafka import TopicPartition

from contracts import DecodeError, Item, check_key, decode
from state import CatalogStore
from streams.kafka.connection import KafkaClients
from streams.kafka.topology import partition_counts

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer

log = logging.getLogger(__name__)

OFFSET_KEY = "offset/{partition}"


class CatalogReplica(mode.Service):
    def __init__(
        self,
        catalog: CatalogStore,
        offsets: MutableMapping[str, bytes],
        *,
        clients: KafkaClients,
        topic: str,
        on_item: Callable[[Item], None],
        max_bytes: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.offsets = offsets
        self.clients = clients
        self.topic = topic
        self.on_item = on_item
        self.max_bytes = max_bytes
        self.caught_up = asyncio.Event()  # the catalog as of the worker's start is loaded
        self.applied = 0
        self.skipped = 0

    def apply(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One catalog record, then its partition's next offset."""
        if value is None:
            if key is not None:  # a Kafka tombstone on the compacted topic
                self.catalog.delete(key.decode(errors="replace"))
        else:
            try:
                item = decode(value, Item, self.max_bytes)
                check_key(item, key)  # the catalog agent deadletters what this skips
            except DecodeError:
                self.skipped += 1
            else:
                self.catalog.upsert(item)
                if not item.deleted:
                    self.on_item(item)
        self.applied += 1
        self.offsets[OFFSET_KEY.format(partition=partition)] = str(offset + 1).encode()

    def stored_offset(self, partition: int) -> int | None:
        raw = self.offsets.get(OFFSET_KEY.format(partition=partition))
        return None if raw is None else int(raw)

    async def _partitions(self) -> list[TopicPartition]:
        counts = await partition_counts(self.clients, [self.topic])
        if self.topic not in counts:
            raise RuntimeError(f"catalog topic {self.topic} does not exist")
        return [TopicPartition(self.topic, p) for p in range(counts[self.topic])]

    @staticmethod
    async def _at(consumer: Consumer, ends: dict[TopicPartition, int]) -> bool:
        positions = [await consumer.position(tp) for tp in ends]
        return all(pos >= end for pos, end in zip(positions, ends.values(), strict=True))

    @mode.Service.task
    async def _follow(self) -> None:
        parts = await self._partitions()
        consumer = self.clients.consumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign(parts)
            for tp in parts:
                stored = self.stored_offset(tp.partition)
                if stored is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, stored)
            # What "caught up" means: the end of every partition when the worker started.
            ends = await consumer.end_offsets(parts)
            if await self._at(consumer, ends):
                self.caught_up.set()
            while not self.should_stop:
                batch = await consumer.getmany(timeout_ms=500, max_records=2000)
                for tp, records in batch.items():
                    for rec in records:
                        self.apply(tp.partition, rec.offset, rec.key, rec.value)
                if not self.caught_up.is_set() and await self._at(consumer, ends):
                    log.info("catalog replica caught up: %d records applied, %d items",
                             self.applied, len(self.catalog))
                    self.caught_up.set()
        finally:
            await consumer.stop()
