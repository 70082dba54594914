"""A user's retained interaction set: every item they acted on (bounded), as one compact
binary record per user, over any str->bytes store (dict, RocksKV, Faust table).

The feature builder (scoring/behaviour.py) reads it on every search, so the record is laid
out for numpy: columns sorted by item hash, read with np.frombuffer, no per-item Python.

API:
    store = InteractionStore(kv, retained=1000, ring=64, buckets=128)
    store.apply(event: ActionEvent, attributes=None) -> bool
        apply one action; False (nothing written) when its event_id is among the user's last
        `ring` applied events (a replay after a crash). `attributes` are the item's catalog
        attributes (contracts.ids.Attributes), kept as a bucket mask per item.
    store.record(user_id, event_id, item_id, action, ts, attributes=None) -> bool
        the same without an ActionEvent (the evaluation replay)
    store.columns(user_id) -> UserColumns   read-only numpy views; empty for an unknown user

Record (little-endian): header (user aggregates: events applied, strength sum, first/last
event ts, activity decayed over one day with its as-of time) | ring of the last `ring`
event-id hashes | retained attribute counts [buckets] and liked ("purchase") attribute counts
[buckets] | columns, sorted by item hash: hash int64, last ts int64, attribute mask
uint64[buckets/64], count uint32, strongest action uint8 (contracts.ids.ACTION_CODES).

Bounded: past `retained` items the least recently touched item (smallest last ts, then the
smallest hash) is evicted and its attributes leave the counts. Aggregates in the header
(events, strength sum, activity) are over every action ever applied, not only retained ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contracts import ActionEvent
from contracts.ids import (
    ACTION_CODES,
    Attributes,
    attribute_mask,
    event_hash,
    item_hash,
)
from state.item_stats import DAY_MS, decay_factor
from state.kv import KeyValue

_MAGIC = b"SRUI"
_FORMAT = 1
# magic, format, ring size, ring position, buckets, retained count, events, strength sum,
# first ts, last ts, activity, activity as-of; padded to 8 bytes.
_HEAD = struct.Struct("<4sBxHHHIQdqqdq")
_HEAD_SIZE = (_HEAD.size + 7) // 8 * 8
LIKED = ACTION_CODES["purchase"]
ACTIVITY_TAU_MS = DAY_MS

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class UserColumns:
    """One user's record as read-only arrays (see the module doc)."""

    buckets: int
    events: int
    strength_sum: float
    first_ts: int
    last_ts: int
    activity: float  # decayed count of actions at activity_as_of
    activity_as_of: int
    ring: I64  # recent event-id hashes (unordered)
    attr_counts: npt.NDArray[np.int32]  # [buckets], over retained items
    attr_liked: npt.NDArray[np.int32]  # [buckets], over retained items whose strongest is LIKED
    hashes: I64  # [n] sorted
    item_last_ts: I64  # [n] ms
    attr_masks: npt.NDArray[np.uint64]  # [n, buckets // 64]
    counts: npt.NDArray[np.uint32]  # [n]
    actions: npt.NDArray[np.uint8]  # [n] strongest action code

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def lookup(self, hashes: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
        """(found, row) per hash; row is meaningless where not found."""
        q = np.asarray(hashes, dtype=np.int64)
        if len(self) == 0:
            return np.zeros(q.shape, dtype=bool), np.zeros(q.shape, dtype=np.intp)
        rows = np.searchsorted(self.hashes, q)
        rows[rows == len(self)] = 0
        return self.hashes[rows] == q, rows

    def activity_at(self, now: int) -> float:
        return self.activity * decay_factor(now - self.activity_as_of, ACTIVITY_TAU_MS)

    @classmethod
    def empty(cls, buckets: int) -> UserColumns:
        w = buckets // 64
        return cls(
            buckets, 0, 0.0, 0, 0, 0.0, 0, np.zeros(0, np.int64),
            np.zeros(buckets, np.int32), np.zeros(buckets, np.int32), np.zeros(0, np.int64),
            np.zeros(0, np.int64), np.zeros((0, w), np.uint64), np.zeros(0, np.uint32),
            np.zeros(0, np.uint8),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserColumns:
        (magic, fmt, ring_size, _pos, buckets, n, events, strength, first, last, activity,
         as_of) = _HEAD.unpack_from(raw, 0)
        if magic != _MAGIC or fmt != _FORMAT:
            raise ValueError("not an interaction record of a known format")
        w = buckets // 64
        o = _HEAD_SIZE

        def take(dtype: str, count: int) -> npt.NDArray[np.generic]:
            nonlocal o
            arr = np.frombuffer(raw, dtype, count, o)
            o += arr.nbytes
            return arr

        ring = take("<i8", ring_size)
        attr_counts = take("<i4", buckets)
        attr_liked = take("<i4", buckets)
        hashes = take("<i8", n)
        last_ts = take("<i8", n)
        masks = take("<u8", n * w).reshape(n, w)
        counts = take("<u4", n)
        actions = take("u1", n)
        return cls(int(buckets), int(events), float(strength), int(first), int(last),
                   float(activity), int(as_of), ring.astype(np.int64), attr_counts.astype(np.int32),
                   attr_liked.astype(np.int32), hashes.astype(np.int64),
                   last_ts.astype(np.int64), masks.astype(np.uint64), counts.astype(np.uint32),
                   actions.astype(np.uint8))


def mask_words(mask: int, buckets: int) -> npt.NDArray[np.uint64]:
    """A Python-int bucket mask as uint64 words, lowest buckets in word 0."""
    return np.array([(mask >> (64 * k)) & 0xFFFFFFFFFFFFFFFF for k in range(buckets // 64)],
                    dtype=np.uint64)


def mask_bits(words: npt.NDArray[np.uint64], buckets: int) -> npt.NDArray[np.uint8]:
    """[..., W] uint64 words -> [..., buckets] 0/1 bits (bucket b = bit b % 64 of word b // 64)."""
    as_bytes = np.ascontiguousarray(words, dtype="<u8").view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")
    return bits[..., :buckets]


class InteractionStore:
    """Retained interaction sets in a key-value store keyed by user_id."""

    def __init__(self, kv: KeyValue, retained: int = 1000, ring: int = 64,
                 buckets: int = 128) -> None:
        if retained < 1:
            raise ValueError("retained must be at least 1")
        if not 1 <= ring <= 65535:
            raise ValueError("ring must be within 1..65535")
        if buckets < 64 or buckets % 64 or buckets > 4096:
            raise ValueError("buckets must be a multiple of 64, at most 4096")
        self._kv = kv
        self.retained = retained
        self.ring = ring
        self.buckets = buckets

    def columns(self, user_id: str) -> UserColumns:
        raw = self._kv.get(user_id)
        return UserColumns.from_bytes(raw) if raw else UserColumns.empty(self.buckets)

    def apply(self, event: ActionEvent, attributes: Attributes | None = None) -> bool:
        return self.record(event.user_id, event.event_id, event.item_id, event.action,
                           event.ts, attributes)

    def record(self, user_id: str, event_id: str, item_id: str, action: str, ts: int,
               attributes: Attributes | None = None) -> bool:
        """Apply one action (see the module doc); False when it was already applied."""
        code = ACTION_CODES[action]
        raw = self._kv.get(user_id)
        if raw:
            (_m, _f, ring_size, pos, buckets, *_rest) = _HEAD.unpack_from(raw, 0)
            cols = UserColumns.from_bytes(raw)
        else:
            ring_size, pos, buckets, cols = self.ring, 0, self.buckets, UserColumns.empty(
                self.buckets)
        eh = event_hash(event_id)
        if np.any(cols.ring == eh):
            return False
        ring = np.zeros(self.ring, np.int64)
        keep = cols.ring if ring_size == self.ring else cols.ring[:0]
        ring[: len(keep)] = keep
        pos = pos % self.ring if ring_size == self.ring else 0
        ring[pos] = eh
        pos = (pos + 1) % self.ring
        self._kv[user_id] = _Builder(cols, self.buckets if not raw else buckets).apply(
            item_hash(item_id), code, ts, attribute_mask(attributes, buckets), self.retained
        ).to_bytes(ring, pos)
        return True


class _Builder:
    """A mutable copy of a record's columns, for one update."""

    def __init__(self, cols: UserColumns, buckets: int) -> None:
        self.buckets = buckets
        self.events, self.strength = cols.events, cols.strength_sum
        self.first_ts, self.last_ts = cols.first_ts, cols.last_ts
        self.activity, self.as_of = cols.activity, cols.activity_as_of
        self.attr_counts = cols.attr_counts.astype(np.int32, copy=True)
        self.attr_liked = cols.attr_liked.astype(np.int32, copy=True)
        self.hashes, self.ts = cols.hashes.copy(), cols.item_last_ts.copy()
        self.masks, self.counts = cols.attr_masks.copy(), cols.counts.copy()
        self.actions = cols.actions.copy()

    def _count(self, row: int, sign: int) -> None:
        bits = mask_bits(self.masks[row], self.buckets).astype(np.int32)
        self.attr_counts += sign * bits
        if self.actions[row] == LIKED:
            self.attr_liked += sign * bits

    def apply(self, h: int, code: int, ts: int, mask: int, retained: int) -> _Builder:
        self.events += 1
        self.strength += code
        self.first_ts = ts if self.events == 1 else min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        if ts >= self.as_of:
            self.activity = self.activity * decay_factor(ts - self.as_of, ACTIVITY_TAU_MS) + 1.0
            self.as_of = ts
        else:  # a late action counts with its weight at as_of
            self.activity += decay_factor(self.as_of - ts, ACTIVITY_TAU_MS)
        row = int(np.searchsorted(self.hashes, h))
        words = mask_words(mask, self.buckets)
        if row < len(self.hashes) and self.hashes[row] == h:
            self._count(row, -1)
            self.counts[row] += 1
            self.actions[row] = max(int(self.actions[row]), code)
            self.ts[row] = max(int(self.ts[row]), ts)
            if mask:  # the catalog's newest attributes replace the old ones
                self.masks[row] = words
        else:
            self.hashes = np.insert(self.hashes, row, h)
            self.ts = np.insert(self.ts, row, ts)
            self.masks = np.insert(self.masks, row, words, axis=0)
            self.counts = np.insert(self.counts, row, 1)
            self.actions = np.insert(self.actions, row, code)
        self._count(row, +1)
        while len(self.hashes) > retained:
            self._evict(int(np.lexsort((self.hashes, self.ts))[0]))
        return self

    def _evict(self, row: int) -> None:
        self._count(row, -1)
        self.hashes = np.delete(self.hashes, row)
        self.ts = np.delete(self.ts, row)
        self.masks = np.delete(self.masks, row, axis=0)
        self.counts = np.delete(self.counts, row)
        self.actions = np.delete(self.actions, row)

    def to_bytes(self, ring: I64, pos: int) -> bytes:
        n = len(self.hashes)
        head = _HEAD.pack(_MAGIC, _FORMAT, len(ring), pos, self.buckets, n, self.events,
                          self.strength, self.first_ts, self.last_ts, self.activity, self.as_of)
        return b"".join((
            head.ljust(_HEAD_SIZE, b"\0"), ring.astype("<i8").tobytes(),
            self.attr_counts.astype("<i4").tobytes(), self.attr_liked.astype("<i4").tobytes(),
            self.hashes.astype("<i8").tobytes(), self.ts.astype("<i8").tobytes(),
            self.masks.astype("<u8").tobytes(), self.counts.astype("<u4").tobytes(),
            self.actions.astype("u1").tobytes(),
        ))


__all__ = ["ACTIVITY_TAU_MS", "LIKED", "InteractionStore", "UserColumns", "mask_bits",
           "mask_words"]
