"""A timer wheel in the key-value store: what falls due when, per Kafka partition.

Closing an impression's attribution window must survive a crash and must be found without
scanning every user, so the due times live in the same changelogged store as the impressions:
one key per (partition, second) listing what falls due in it, plus a cursor per partition (the
last second already handled). Keys are per partition because a Faust table writes each change
to the changelog partition of the event being processed: whoever processes partition p's
ticks may only touch partition p's keys.

Reading (`take`) and acknowledging (`done`) are separate: the caller does its work between
them (emitting samples), and a crash in between simply reads the same seconds again.
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
    """Entries of the complete seconds after the cursor, up to a cutoff."""

    partition: int
    buckets: list[int] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


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
        of one huge batch; whole seconds only, so the cursor stays exact.
        """
        cursor = self.cursor(partition)
        if cursor is None:
            return Due(partition)
        last = cutoff_ms // BUCKET_MS - 1
        due = Due(partition)
        bucket = cursor + 1
        while (bucket <= last and len(due.buckets) < max_buckets
               and len(due.entries) < max_entries):
            raw = self._kv.get(self._bucket_key(partition, bucket))
            if raw:
                due.entries.extend(orjson.loads(raw))
            due.buckets.append(bucket)
            bucket += 1
        return due

    def done(self, due: Due) -> None:
        """Forget the seconds `due` covered and move the cursor past them."""
        for bucket in due.buckets:
            self._kv.pop(self._bucket_key(due.partition, bucket), None)
        if due.buckets:
            self._kv[self._cursor_key(due.partition)] = str(due.buckets[-1]).encode()
