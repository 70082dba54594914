"""A user's rolling behaviour sequence: the last N actions, newest first.

Appends are idempotent by event_id, so an action replayed after a crash (at-least-once
delivery) is never applied twice. The dedupe window is the sequence itself: a replayed event
that has already fallen out of the last N is older than everything kept, so it falls out again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson

from contracts import ActionEvent
from state.kv import KeyValue


@dataclass(frozen=True)
class SequenceEntry:
    event_id: str
    item_id: str
    action: str
    ts: int
    query: str | None = None


@dataclass(frozen=True)
class UserSequence:
    entries: tuple[SequenceEntry, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def contains(self, event_id: str) -> bool:
        return any(e.event_id == event_id for e in self.entries)

    def with_action(self, event: ActionEvent, max_len: int) -> UserSequence:
        """This sequence with `event` in time order; unchanged if it was already applied."""
        if self.contains(event.event_id):
            return self
        entry = SequenceEntry(
            event_id=event.event_id,
            item_id=event.item_id,
            action=str(event.action),
            ts=event.ts,
            query=event.query,
        )
        # Newest first; a late event slots in by timestamp (stable for equal ts).
        entries = list(self.entries)
        pos = next((i for i, e in enumerate(entries) if e.ts <= entry.ts), len(entries))
        entries.insert(pos, entry)
        return UserSequence(tuple(entries[:max_len]))

    def item_ids(self) -> list[str]:
        return [e.item_id for e in self.entries]

    def to_bytes(self) -> bytes:
        return orjson.dumps([asdict(e) for e in self.entries])

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> UserSequence:
        if not raw:
            return cls()
        return cls(tuple(SequenceEntry(**e) for e in orjson.loads(raw)))


class SequenceStore:
    """User sequences in a key-value store keyed by user_id."""

    def __init__(self, kv: KeyValue, max_len: int = 20) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self._kv = kv
        self.max_len = max_len

    def get(self, user_id: str) -> UserSequence:
        return UserSequence.from_bytes(self._kv.get(user_id))

    def append(self, event: ActionEvent) -> bool:
        """Apply `event`; False when it was a duplicate and nothing was written."""
        current = self.get(event.user_id)
        updated = current.with_action(event, self.max_len)
        if updated is current:
            return False
        self._kv[event.user_id] = updated.to_bytes()
        return True
