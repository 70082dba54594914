"""Every worker's own copy of the whole catalog, read straight from the compacted topic
(streams/worker/replica.py says how, and why not a Faust GlobalTable).

Records that do not decode are skipped here: the catalog agent (one worker per partition)
sends them to the deadletter topic once.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from contracts import DecodeError, Item, check_key, decode
from state import CatalogStore
from streams.kafka.connection import KafkaClients
from streams.worker.replica import OFFSET_KEY, TopicReplica

__all__ = ["OFFSET_KEY", "CatalogReplica"]


class CatalogReplica(TopicReplica):
    what = "items"

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
        super().__init__(offsets, clients=clients, topic=topic, **kwargs)
        self.catalog = catalog
        self.on_item = on_item
        self.max_bytes = max_bytes

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        if value is None:
            if key is not None:  # a Kafka tombstone on the compacted topic
                self.catalog.delete(key.decode(errors="replace"))
            return True
        try:
            item = decode(value, Item, self.max_bytes)
            check_key(item, key)  # the catalog agent deadletters what this skips
        except DecodeError:
            return False
        self.catalog.upsert(item)
        if not item.deleted:
            self.on_item(item)
        return True

    def size(self) -> int:
        return len(self.catalog)
