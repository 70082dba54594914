"""The catalog as the trainer needs it: item texts, read whole from the compacted topic.

Samples carry item ids, not texts (contracts/samples.py): a training run reads every partition
of the catalog topic up to the end offsets taken when reading starts, keeping the latest
version of each item (a tombstone or `deleted: true` removes it), and builds each item's
model text exactly as the worker does (Item.text()).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiokafka import TopicPartition

from contracts import DecodeError, Item, decode
from streams.kafka.connection import KafkaClients
from streams.kafka.topology import partitions_of

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer

log = logging.getLogger(__name__)


async def read_catalog_texts(clients: KafkaClients, topic: str) -> dict[str, str]:
    """item_id -> model text of every item on `topic` now; {} when the topic does not exist."""
    partitions = await partitions_of(clients, topic)
    if not partitions:
        log.warning("catalog topic %s does not exist: items are trained without text", topic)
        return {}
    consumer: Consumer = clients.consumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            await consumer.seek_to_beginning(tp)
        texts: dict[str, str] = {}
        skipped = 0
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset >= ends[tp]:
                        break
                    key = rec.key.decode(errors="replace") if rec.key else None
                    if rec.value is None:
                        if key is not None:
                            texts.pop(key, None)  # a tombstone
                        continue
                    try:
                        item = decode(rec.value, Item)
                    except DecodeError:
                        skipped += 1
                        continue
                    if item.deleted:
                        texts.pop(item.item_id, None)
                    else:
                        texts[item.item_id] = item.text()
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        if skipped:
            log.warning("skipped %d catalog records that are not items", skipped)
        return texts
    finally:
        await consumer.stop()


__all__ = ["read_catalog_texts"]
