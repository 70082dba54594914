"""A timer wheel in the key-value store: what falls due when, per Kafka partition.

Closing an impression's attribution window must survive a crash and must be found without
scanning every user, so the due times live in the same changelogged store as the impressions:
one key per (partition, second) listing what falls due in it, plus a cursor per partition (the
last second already handled). Keys are per partition because a Faust table writes each change
to the changelog partition of the event being processed: whoever processes partition p's
ticks may only touch partition p's keys.

Reading (`take`) and acknowledging (`done`) are separate: the caller does its work between
them (emitting samples), and a crash in between simply reads the same seconds again. Entries
are only appended to a second, so `done` removes exactly the prefix that was taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from state.kv import KeyValue

BUCKET_MS = 1000

Entry = list[str]


@dataclass(frozen=True)
class Due:
    """Entries of the complete seconds after the cursor, up to a cutoff: (second, entries)."""

    partition: int
    buckets: list[tuple[int, list[Entry]]] = field(default_factory=list)

    @property
    def entries(self) -> list[Entry]:
        return [entry for _, entries in self.buckets for entry in entries]

    def first(self, count: int) -> Due:
        """Only the first `count` entries: what a caller bounded by its own measure handled."""
        kept: list[tuple[int, list[Entry]]] = []
        for bucket, entries in self.buckets:
            if count <= 0 and entries:
                break
            kept.append((bucket, entries[:max(count, 0)]))
            count -= len(entries)
        return Due(self.partition, kept)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DueWheel:
    def __init__(self, kv: KeyValue, clock: Callable[[], int] = _now_ms) -> None:
        self._kv = kv
        self._clock = clock

    @staticmethod
    def _bucket_key(partition: int, bucket: int) -> str:
        return f"d/{partition}/{bucket}"

    @staticmethod
    def _cursor_key(partition: int) -> str:
        return f"c/{partition}"

    def cursor(self, partition: int) -> int | None:
        raw = self._kv.get(self._cursor_key(partition))
        return None if raw is None else int(raw)

    def schedule(self, partition: int, at_ms: int, entry: Entry) -> int:
        """File `entry` under the second of `at_ms`; returns the bucket used.

        A time at or before the cursor goes to the first second not yet handled: a due
        entry is never filed where no one will look again.
        """
        bucket = at_ms // BUCKET_MS
        cursor = self.cursor(partition)
        if cursor is None:
            # First entry of this partition: start the cursor now, so that an entry due
            # sooner than this one (a cap overflow closing now) is not filed behind it.
            cursor = min(bucket, self._clock() // BUCKET_MS) - 1
            self._kv[self._cursor_key(partition)] = str(cursor).encode()
        if bucket <= cursor:
            bucket = cursor + 1
        key = self._bucket_key(partition, bucket)
        raw = self._kv.get(key)
        entries: list[Entry] = orjson.loads(raw) if raw else []
        entries.append(entry)
        self._kv[key] = orjson.dumps(entries)
        return bucket

    def take(
        self, partition: int, cutoff_ms: int, *, max_buckets: int = 3600,
        max_entries: int = 1000,
    ) -> Due:
        """What is due in the complete seconds before `cutoff_ms` (read only).

        Bounded per call so that catching up after a long stop happens in slices instead
        of one huge batch.
        """
        cursor = self.cursor(partition)
        if cursor is None:
            return Due(partition)
        last = cutoff_ms // BUCKET_MS - 1
        due = Due(partition)
        bucket, count = cursor + 1, 0
        while bucket <= last and len(due.buckets) < max_buckets and count < max_entries:
            raw = self._kv.get(self._bucket_key(partition, bucket))
            entries: list[Entry] = orjson.loads(raw) if raw else []
            due.buckets.append((bucket, entries))
            count += len(entries)
            bucket += 1
        return due

    def done(self, due: Due) -> None:
        """Forget the entries `due` holds and move the cursor past the seconds left empty.

        A second may have gained entries since `take` (an entry due now is filed in the
        first second not yet done), and a caller may have handled only part of one: what
        is left stays, and the cursor stops before it.
        """
        stop: int | None = None
        for bucket, taken in due.buckets:
            key = self._bucket_key(due.partition, bucket)
            raw = self._kv.get(key)
            rest = (orjson.loads(raw) if raw else [])[len(taken):]
            if rest:
                self._kv[key] = orjson.dumps(rest)
                stop = bucket - 1 if stop is None else stop
            else:
                self._kv.pop(key, None)
        if due.buckets:
            cursor = due.buckets[-1][0] if stop is None else stop
            self._kv[self._cursor_key(due.partition)] = str(cursor).encode()
