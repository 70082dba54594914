"""An in-memory stand-in for the Kafka clients RankingClient uses: no broker.

`FakeKafka.worker` decides what a "worker" answers to each published search (None: nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import RecordMetadata

from contracts import RankedResult, SearchEvent, TopicNames, decode, encode
from streams.client.fallback import site_items

T = TopicNames("t.")


def answer(search: SearchEvent) -> RankedResult:
    """A worker's answer: the candidates reversed."""
    items = site_items(search.candidates)[::-1]
    return RankedResult(
        request_id=search.request_id, user_id=search.user_id, model_version="m1",
        items=[i.model_copy(update={"rank": n}) for n, i in enumerate(items, start=1)],
        received_ts=search.ts, published_ts=search.ts + 1)


class Record:
    def __init__(self, value: bytes | None) -> None:
        self.value = value


class FakeKafka:
    def __init__(self, partitions: int = 2) -> None:
        self.partitions = partitions  # of the results topic; 0: it does not exist
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.results: asyncio.Queue[bytes] = asyncio.Queue()
        self.worker: Callable[[SearchEvent], RankedResult | None] | None = answer
        self.fail_sends = False

    def publish_result(self, value: bytes) -> None:
        self.results.put_nowait(value)

    # What KafkaClients offers.
    def producer(self, **_: Any) -> FakeProducer:
        return FakeProducer(self)

    def consumer(self, *_: str, **__: Any) -> FakeConsumer:
        return FakeConsumer(self)

    def admin(self, **_: Any) -> FakeAdmin:
        return FakeAdmin(self)


class FakeProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def flush(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes | None = None
                   ) -> asyncio.Future[RecordMetadata]:
        delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if self.kafka.fail_sends:
            from aiokafka.errors import KafkaTimeoutError

            delivery.set_exception(KafkaTimeoutError())
            return delivery
        self.kafka.sent.append((topic, value, key))
        delivery.set_result(RecordMetadata(topic, 0, TopicPartition(topic, 0), len(self.kafka.sent),
                                           0, 0, None))
        if topic == T.search and self.kafka.worker is not None:
            result = self.kafka.worker(decode(value, SearchEvent))
            if result is not None:
                self.kafka.publish_result(encode(result))
        return delivery


class FakeConsumer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.assigned: list[TopicPartition] = []
        self.from_start = False

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    async def seek_to_end(self, *tps: TopicPartition) -> None: ...

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.from_start = True

    async def position(self, tp: TopicPartition) -> int:
        return 0

    async def getmany(self, timeout_ms: int = 0, **_: Any) -> dict[TopicPartition, list[Record]]:
        try:
            value = await asyncio.wait_for(self.kafka.results.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}
        values = [value]
        while not self.kafka.results.empty():
            values.append(self.kafka.results.get_nowait())
        return {TopicPartition(T.recommendations, 0): [Record(v) for v in values]}


class FakeAdmin:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def list_topics(self) -> list[str]:
        return [T.recommendations] if self.kafka.partitions else []

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{} for _ in range(self.kafka.partitions)]}
                for n in names]
