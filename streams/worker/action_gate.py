"""How far attribution windows may close: never past actions the worker has not read yet.

Actions and ticks are different topics, so nothing orders a tick after the actions that
happened before it. After a restart (uncommitted actions are read again) or under consumer
lag, a tick that closed every window due by the wall clock would close some before their
clicks were read, and those labels would be lost. A window therefore closes at a tick only
once the actions agent has read everything the action partition held (its high watermark);
until then only up to the time of the last action read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from faust.types import TP

from streams.kafka.connection import KafkaClients

if TYPE_CHECKING:
    from streams.kafka.connection import Admin

log = logging.getLogger(__name__)


class ActionGate:
    def __init__(
        self,
        end_offset: Callable[[int], int | None],
        committed: Callable[[int], Awaitable[int | None]],
    ) -> None:
        self._end_offset = end_offset  # the action partition's high watermark
        self._committed = committed  # where the group resumes reading the action partition
        self._next: dict[int, int] = {}
        self._watermark: dict[int, int] = {}

    def processed(self, partition: int, offset: int, record_ts_ms: int) -> None:
        """The actions agent is done with this record (applied or dead-lettered)."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        self._watermark[partition] = max(self._watermark.get(partition, 0), record_ts_ms)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._next.pop(partition, None)
            self._watermark.pop(partition, None)

    async def cutoff(self, partition: int, now: int) -> int:
        """The time up to which windows of `partition` may close at a tick sent at `now`."""
        end = self._end_offset(partition)
        done = self._next.get(partition)
        if done is None and end is not None:
            # Nothing read since the partition was assigned: caught up if the group had
            # already committed everything there is.
            committed = await self._committed(partition)
            if committed is not None:
                done = self._next[partition] = max(committed, self._next.get(partition, 0))
        if end is not None and done is not None and done >= end:
            return now
        return min(now, self._watermark.get(partition, 0))


class KafkaActionOffsets:
    """The two offsets ActionGate needs, from the worker's consumer and the group."""

    def __init__(self, app: Any, topic: str, group_id: str, clients: KafkaClients) -> None:
        self.app = app
        self.topic = topic
        self.group_id = group_id
        self.clients = clients
        self._admin: Admin | None = None

    def end_offset(self, partition: int) -> int | None:
        try:
            end = self.app.consumer.highwater(TP(self.topic, partition))
        except Exception:  # consumer not started, or the partition not assigned (yet)
            return None
        return end if isinstance(end, int) and end >= 0 else None

    async def committed(self, partition: int) -> int | None:
        tp = TopicPartition(self.topic, partition)
        try:
            if self._admin is None:
                self._admin = self.clients.admin()
                await self._admin.start()
            offsets = await self._admin.list_consumer_group_offsets(self.group_id,
                                                                    partitions=[tp])
            meta = offsets.get(tp)
            if meta is not None and meta.offset >= 0:
                return int(meta.offset)
            # No commit yet: the group starts at the earliest offset (auto_offset_reset).
            earliest = await self.app.consumer.earliest_offsets(TP(self.topic, partition))
            return int(earliest[TP(self.topic, partition)])
        except Exception as exc:  # asked again at the next tick
            log.warning("committed offset of %s[%d] unavailable: %r", self.topic, partition, exc)
            return None

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
