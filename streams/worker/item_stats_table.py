"""Item statistics on the writer's side: actions re-keyed by item, one writer per item.

The actions agent forwards every valid action to the item-actions topic keyed by item_id,
with where it read it (the action topic's partition and offset) in two headers. The worker
that owns an item's partition of that topic is the only one applying its actions: it keeps
the item's statistics in an item-keyed Faust table (changelogged, so they survive a crash)
through state/item_stats.py, the one definition of their decay, and publishes every new
state as an ItemStatsRecord on the compacted item-stats topic that every worker replicates
(streams/worker/item_stats_replica.py).

Applied at most once per source record: the stored value remembers, per action partition,
the offset of the last action applied to the item. A record read again (the table's
changelog already held its effect when the worker crashed before committing, or the actions
agent re-forwarded it after its own crash) carries an offset at or below that mark and is
skipped. Within one action partition the forwards of an item arrive in offset order (one
producer at a time per partition, ordered per item partition), so a mark never hides an action
that was not applied. The same action sent twice by the site (one event_id, two offsets, e.g.
a producer's retry) is caught by a ring of the item's last RING event-id hashes, as the
user's interaction set catches it in the user's last 64: a copy sent after RING other actions
on the same item counts twice.

Stored value (little-endian): magic "SRIT", format, sources n (uint16), seq (int64) | n x
(partition int32, offset int64) | ring of RING event-id hashes (int64, 0 = empty) | the
vector in state/item_stats.py's storage form.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from contracts import ActionEvent
from contracts.ids import event_hash
from contracts.item_stats import ItemStatsRecord
from state.item_stats import LAYOUT, ItemStatsLayout, Vector
from state.kv import KeyValue

SOURCE_PARTITION = "streamrank.source.partition"
SOURCE_OFFSET = "streamrank.source.offset"

_MAGIC = b"SRIT"
_FORMAT = 1
_HEAD = struct.Struct("<4sBxHq")
_SOURCE = struct.Struct("<iq")
RING = 32  # recent event ids per item: a producer's retry follows its original closely


def layout_id(layout: ItemStatsLayout = LAYOUT) -> str:
    """The layout's name in an ItemStatsRecord: its actions and windows."""
    return (",".join(layout.actions) + "/" + ",".join(str(w) for w in layout.windows_ms))


def source_headers(partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The headers of a forwarded action: where the actions agent read it."""
    return [(SOURCE_PARTITION, str(partition).encode()), (SOURCE_OFFSET, str(offset).encode())]


def source_of(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None
              ) -> tuple[int, int] | None:
    """(partition, offset) from a forwarded action's headers; None when absent or bad."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = {k: v for k, v in pairs if k in (SOURCE_PARTITION, SOURCE_OFFSET)}
    try:
        return int(found[SOURCE_PARTITION]), int(found[SOURCE_OFFSET])
    except (KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class ItemState:
    """One item's stored statistics and its applied-source marks."""

    seq: int
    sources: dict[int, int]  # action partition -> offset of the last action applied
    ring: tuple[int, ...]  # the last RING event-id hashes applied, newest last
    vector: Vector

    def to_bytes(self, layout: ItemStatsLayout) -> bytes:
        head = _HEAD.pack(_MAGIC, _FORMAT, len(self.sources), self.seq)
        marks = b"".join(_SOURCE.pack(p, o) for p, o in sorted(self.sources.items()))
        ring = np.zeros(RING, dtype="<i8")
        ring[: len(self.ring)] = self.ring[-RING:]
        return head + marks + ring.tobytes() + layout.to_bytes(self.vector)

    @classmethod
    def from_bytes(cls, raw: bytes, layout: ItemStatsLayout) -> ItemState:
        magic, fmt, n, seq = _HEAD.unpack_from(raw, 0)
        if magic != _MAGIC or fmt != _FORMAT:
            raise ValueError("not an item statistics table value of a known format")
        offset = _HEAD.size
        sources = {}
        for _ in range(n):
            partition, mark = _SOURCE.unpack_from(raw, offset)
            sources[partition] = mark
            offset += _SOURCE.size
        ring = np.frombuffer(raw, dtype="<i8", count=RING, offset=offset)
        offset += 8 * RING
        return cls(seq, sources, tuple(int(h) for h in ring if h != 0),
                   layout.from_bytes(raw[offset:]))


class ItemStatsTable:
    """Item statistics over an item-keyed store (the Faust table): apply, read, publish."""

    def __init__(self, kv: KeyValue, layout: ItemStatsLayout = LAYOUT) -> None:
        self._kv = kv
        self.layout = layout
        self.layout_id = layout_id(layout)

    def get(self, item_id: str) -> ItemState | None:
        raw = self._kv.get(item_id)
        return None if raw is None else ItemState.from_bytes(raw, self.layout)

    def apply(self, action: ActionEvent, source: tuple[int, int] | None = None
              ) -> ItemStatsRecord | None:
        """Apply one action; the record to publish, or None when it was applied already
        (this source record, or this event id recently) or the layout does not count its
        action type."""
        if action.action not in self.layout.actions:
            return None
        state = self.get(action.item_id)
        sources = dict(state.sources) if state is not None else {}
        ring = state.ring if state is not None else ()
        if source is not None:
            partition, offset = source
            if offset <= sources.get(partition, -1):
                return None
            sources[partition] = offset
        eh = event_hash(action.event_id) or 1  # 0 marks an empty ring slot
        if eh in ring:
            return None
        vector = self.layout.apply(None if state is None else state.vector, action.action,
                                   action.ts)
        new = ItemState((0 if state is None else state.seq) + 1, sources,
                        (*ring, eh)[-RING:], vector)
        self._kv[action.item_id] = new.to_bytes(self.layout)
        return self.record(action.item_id, new)

    def record(self, item_id: str, state: ItemState) -> ItemStatsRecord:
        return ItemStatsRecord(
            item_id=item_id, seq=state.seq, ts=int(state.vector[-3]), layout=self.layout_id,
            values=[float(x) for x in np.asarray(state.vector, dtype=np.float64)],
        )


__all__ = ["RING", "SOURCE_OFFSET", "SOURCE_PARTITION", "ItemState", "ItemStatsTable", "layout_id",
           "source_headers", "source_of"]
