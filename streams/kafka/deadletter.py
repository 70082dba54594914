"""Deadletter records: the original key and raw bytes, with where they came from and why.

Metadata goes in headers (the Kafka Connect convention) so the value stays byte-for-byte what
the producer sent and can be fixed and replayed as it is.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from contracts import DecodeError

log = logging.getLogger(__name__)

HEADER_PREFIX = "streamrank.deadletter."


def headers_for(
    error: DecodeError, *, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    fields = {
        "reason": error.reason,
        "error": error.detail[:2000],
        "source.topic": topic,
        "source.partition": str(partition),
        "source.offset": str(offset),
    }
    return [(HEADER_PREFIX + k, v.encode()) for k, v in fields.items()]


class DeadLetters:
    """Sends undecodable events to the deadletter topic and counts them by reason."""

    def __init__(self, topic: Any, on_send: Callable[[str], None] | None = None) -> None:
        self._topic = topic
        self.counts: Counter[str] = Counter()
        self._on_send = on_send  # e.g. a metrics counter, told the reason

    async def send(self, event: Any, error: DecodeError) -> None:
        message = event.message
        self.counts[error.reason] += 1
        if self._on_send is not None:
            self._on_send(error.reason)
        log.warning(
            "deadletter %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
        )
        await self._topic.send(
            key=event.key,
            value=event.value if event.value is not None else b"",
            headers=headers_for(
                error, topic=message.topic, partition=message.partition, offset=message.offset
            ),
        )
