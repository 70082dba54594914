"""Every worker's copy of every item's statistics, read from the compacted item-stats topic.

A search may name any item, and an item's statistics are written by the one worker that owns
its partition of the item-actions topic (streams/worker/item_stats_table.py): so every worker
follows the whole item-stats topic (streams/worker/replica.py) into its local store, like the
catalog. A record replaces the stored one only when its `seq` (actions applied) is higher: a
late or repeated record (a previous owner's, or one read again after a restart) never takes
an item's statistics back. Records of another layout (a rolling upgrade that changed it) are
skipped until the item's next action republishes it in this worker's layout.

Stored value: seq int64, as-of ts int64, then the float64 vector: read with one np.frombuffer.
Every search reads its candidates' vectors, so the hot ones are also kept decoded in memory
(at most CACHED items; a record that changes an item replaces its entry).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np

from contracts import DecodeError, check_key, decode
from contracts.item_stats import ItemStatsRecord
from state.item_stats import LAYOUT, ItemStatsLayout, ItemStatsReading, Vector
from streams.kafka.connection import KafkaClients
from streams.worker.item_stats_table import layout_id
from streams.worker.replica import TopicReplica

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<qq")
CACHED = 100_000  # decoded vectors kept in memory (~0.3 kB each with the default layout)


class ItemStatsReplica(TopicReplica):
    what = "items with statistics"

    def __init__(
        self,
        stats: MutableMapping[str, bytes],
        offsets: MutableMapping[str, bytes],
        *,
        clients: KafkaClients,
        topic: str,
        max_bytes: int,
        layout: ItemStatsLayout = LAYOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(offsets, clients=clients, topic=topic, **kwargs)
        self.stats = stats
        self.layout = layout
        self.layout_id = layout_id(layout)
        self.max_bytes = max_bytes
        self.other_layout = 0  # records skipped for another layout
        self._cache: dict[str, Vector | None] = {}

    def apply_record(self, key: bytes | None, value: bytes | None) -> bool:
        if value is None:
            if key is not None:  # a tombstone: the item's statistics are gone
                item_id = key.decode(errors="replace")
                self.stats.pop(item_id, None)
                self._cache.pop(item_id, None)
            return True
        try:
            record = decode(value, ItemStatsRecord, self.max_bytes)
            check_key(record, key)
        except DecodeError as exc:
            log.debug("skipping an item-stats record: %s", exc)
            return False
        if record.layout != self.layout_id or len(record.values) != self.layout.size:
            self.other_layout += 1
            return True
        stored = self.stats.get(record.item_id)
        if stored is not None and _HEAD.unpack_from(stored, 0)[0] >= record.seq:
            return True  # older than what is here
        vector = np.asarray(record.values, dtype="<f8")
        self.stats[record.item_id] = _HEAD.pack(record.seq, record.ts) + vector.tobytes()
        self._cache.pop(record.item_id, None)
        return True

    def size(self) -> int:
        return len(self.stats)

    def seq(self, item_id: str) -> int:
        """Actions applied to the item as this replica knows it (0: none)."""
        raw = self.stats.get(item_id)
        return 0 if raw is None else int(_HEAD.unpack_from(raw, 0)[0])

    def vector(self, item_id: str) -> Vector | None:
        try:
            return self._cache[item_id]
        except KeyError:
            pass
        raw = self.stats.get(item_id)
        vector = None if raw is None else np.frombuffer(
            raw, dtype="<f8", count=self.layout.size, offset=_HEAD.size)
        if len(self._cache) >= CACHED:
            self._cache.clear()  # cheaper than an LRU per read; the hot items come back
        self._cache[item_id] = vector
        return vector

    def read(self, item_ids: Sequence[str], now: int) -> ItemStatsReading:
        """The candidates' statistics at `now` (the search's event time)."""
        return self.layout.read_many([self.vector(i) for i in item_ids], now)


__all__ = ["ItemStatsReplica"]
