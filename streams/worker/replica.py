"""Every worker's own copy of a whole compacted topic, read straight from the topic.

The catalog (streams/worker/catalog_replica.py) and the item statistics
(streams/worker/item_stats_replica.py) are needed by every worker whatever partitions it owns:
a search may name any item. Why not a Faust GlobalTable: with several workers in one group, a
GlobalTable only keeps receiving the changelog partitions of the table's active partitions on
each worker (its agent writes only the keys of the partitions it owns), so every worker ended
up with part of the data (faust-streaming/faust#283; measured here: 22 + 26 of 48 items with
two workers). Instead, each worker reads every partition of the topic with a group-less
consumer and keeps the records in its local store, with the next offset of each partition
stored beside them (the way aiokafka's own state keeps offsets with the data): a restart reads
only the tail, an empty state folder re-reads the compacted topic.

Applying a record must be idempotent (an upsert or a delete), so a crash between a record's
write and its offset's write replays the record harmlessly. `caught_up` is set once every
partition is read up to where it ended when the worker started: readiness waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mode
from aiokafka import TopicPartition

from state.kv import MemoryKV, RocksKV
from streams.kafka.connection import KafkaClients
from streams.kafka.topology import partition_counts

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer

log = logging.getLogger(__name__)

OFFSET_KEY = "offset/{partition}"


def local_stores(
    state_dir: Path, app_id: str, name: str, store: str
) -> tuple[MutableMapping[str, bytes], MutableMapping[str, bytes]]:
    """(records, offsets) of the replica `name`: RocksDB beside the tables, or memory (the
    worker's store URL says which)."""
    if store.startswith("memory"):
        return MemoryKV(), MemoryKV()
    root = state_dir / f"{app_id}-{name}"
    return RocksKV(root / "items"), RocksKV(root / "offsets")


class TopicReplica(mode.Service):
    """Follows a compacted topic; subclasses say what one record does (`apply_record`)."""

    what = "records"  # for logs

    def __init__(
        self,
        offsets: MutableMapping[str, bytes],
        *,
        clients: KafkaClients,
        topic: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.offsets = offsets
        self.clients = clients
        self.topic = topic
        self.caught_up = asyncio.Event()  # the topic as of the worker's start is loaded
        self.applied = 0
        self.skipped = 0

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record (idempotently); False when it was skipped as malformed."""
        raise NotImplementedError

    def size(self) -> int:
        """How many keys the replica holds (for the caught-up log line)."""
        return 0

    def apply(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One record, then its partition's next offset."""
        if not self.apply_record(key, value):
            self.skipped += 1
        self.applied += 1
        self.offsets[OFFSET_KEY.format(partition=partition)] = str(offset + 1).encode()

    def stored_offset(self, partition: int) -> int | None:
        raw = self.offsets.get(OFFSET_KEY.format(partition=partition))
        return None if raw is None else int(raw)

    async def _partitions(self) -> list[TopicPartition]:
        counts = await partition_counts(self.clients, [self.topic])
        if self.topic not in counts:
            raise RuntimeError(f"topic {self.topic} does not exist")
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
                    log.info("%s replica caught up: %d records applied, %d %s", self.topic,
                             self.applied, self.size(), self.what)
                    self.caught_up.set()
        finally:
            await consumer.stop()


__all__ = ["OFFSET_KEY", "TopicReplica", "local_stores"]
