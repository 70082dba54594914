"""Deadletter records: the original key and bytes (or as much of them as the topic takes),
with where they came from and why.

Metadata goes in headers (the Kafka Connect convention) so the value stays byte-for-byte what
the producer sent and can be fixed and replayed as it is. A record too large for the
deadletter topic (or for the worker's producer) is kept as a prefix; its original size and
sha256 are in the headers, so nothing is silently cut and the original can be found again
by checksum in the source topic (`source.topic/partition/offset` say where).

A deadletter send is awaited until the broker acknowledges it, and retried while the broker
is away: the agent does not move on (and so never commits the offset) before the bad record
is safely in the deadletter topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts import DecodeError

log = logging.getLogger(__name__)

HEADER_PREFIX = "streamrank.deadletter."
# Room for the record batch framing, the headers (error text ≤ 2000 bytes) and a short key.
OVERHEAD_BYTES = 16 * 1024
# Keys longer than this are cut too (a key is meant to be an id).
MAX_KEY_BYTES = 1024
RETRY_S = (0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Fitted:
    """A record's key and value cut to fit, with what the headers must say about them."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def truncated(self) -> bool:
        return self.headers["truncated"] == "true"


def fit(key: bytes | None, value: bytes | None, max_record_bytes: int) -> Fitted:
    """The deadletter record for `key`/`value` in at most `max_record_bytes` (the smaller of
    the topic's max.message.bytes and the producer's max request size)."""
    original = value or b""
    budget = max(0, max_record_bytes - OVERHEAD_BYTES)
    kept_key = key if key is None or len(key) <= MAX_KEY_BYTES else key[:MAX_KEY_BYTES]
    kept = original if len(original) <= budget else original[:budget]
    headers = {
        "original.size": str(len(original)),
        "original.sha256": hashlib.sha256(original).hexdigest(),
        "truncated": "true" if len(kept) < len(original) else "false",
    }
    if key is not None and kept_key is not None and len(kept_key) < len(key):
        headers["original.key.size"] = str(len(key))
        headers["original.key.sha256"] = hashlib.sha256(key).hexdigest()
    return Fitted(kept_key, kept, headers)


def headers_for(
    error: DecodeError, *, topic: str, partition: int, offset: int,
    extra: dict[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    fields = {
        "reason": error.reason,
        "error": error.detail[:2000],
        "source.topic": topic,
        "source.partition": str(partition),
        "source.offset": str(offset),
        **(extra or {}),
    }
    return [(HEADER_PREFIX + k, v.encode()) for k, v in fields.items()]


class DeadLetters:
    """Sends undecodable events to the deadletter topic and counts them by reason."""

    def __init__(
        self, topic: Any, on_send: Callable[[str], None] | None = None, *,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        self._topic = topic
        self.counts: Counter[str] = Counter()
        self.truncated = 0
        self.max_record_bytes = max_record_bytes
        self._on_send = on_send  # e.g. a metrics counter, told the reason

    async def send(self, event: Any, error: DecodeError) -> None:
        message = event.message
        record = fit(event.key, event.value, self.max_record_bytes)
        log.warning(
            "deadletter %s[%s]@%s: %s%s", message.topic, message.partition, message.offset,
            error, f" (kept {len(record.value)} of {record.headers['original.size']} bytes)"
            if record.truncated else "",
        )
        headers = headers_for(error, topic=message.topic, partition=message.partition,
                              offset=message.offset, extra=record.headers)
        attempt = 0
        while True:
            try:
                pending = await self._topic.send(key=record.key, value=record.value,
                                                 headers=headers)
                if inspect.isawaitable(pending):  # Faust's delivery future
                    await pending  # acknowledged: only now may the source offset be committed
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if "TooLarge" in repr(exc) and self.max_record_bytes > 2 * OVERHEAD_BYTES:
                    # The cluster's limit is lower than we were told: halve ours and retry.
                    self.max_record_bytes //= 2
                    record = fit(event.key, event.value, self.max_record_bytes)
                    headers = headers_for(error, topic=message.topic,
                                          partition=message.partition, offset=message.offset,
                                          extra=record.headers)
                    continue
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                attempt += 1
                log.warning("deadletter send of %s[%s]@%s failed (%r); retry %d in %.1f s",
                            message.topic, message.partition, message.offset, exc, attempt,
                            delay)
                await asyncio.sleep(delay)
        # Counted once it is in the topic: the counters match the deadletter topic.
        self.counts[error.reason] += 1
        if record.truncated:
            self.truncated += 1
        if self._on_send is not None:
            self._on_send(error.reason)
