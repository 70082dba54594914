from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contracts import Item, encode
from scoring.serving import ScorerSlot
from streams.kafka.broker_config import free_port
from streams.settings import Settings
from streams.tools.simulation import catalog_items
from streams.worker.app import StreamrankApp


@dataclass
class Sent:
    key: Any
    value: bytes
    headers: Any = None


@dataclass
class Outbox:
    """What the agents produced, per topic: the functional tests read Kafka's side here."""

    sent: dict[str, list[Sent]] = field(default_factory=dict)

    def capture(self, topic: Any) -> None:
        name = topic.get_topic_name()
        bucket = self.sent.setdefault(name, [])

        async def send(*, key: Any = None, value: bytes = b"", headers: Any = None,
                       **_: Any) -> None:
            bucket.append(Sent(key, value, headers))

        topic.send = send

    def of(self, topic: Any) -> list[Sent]:
        return self.sent.get(topic.get_topic_name(), [])

    def take(self, topic: Any) -> list[Sent]:
        """What was sent to `topic` since the last take, removed from the outbox."""
        bucket = self.sent.get(topic.get_topic_name(), [])
        taken = list(bucket)
        bucket.clear()  # the capture keeps appending to this very list
        return taken


@pytest.fixture
async def worker(tmp_path: Path, zeroshot: Any) -> AsyncIterator[tuple[StreamrankApp, Outbox]]:
    settings = Settings(state_dir=tmp_path, web_port=free_port())
    sr = StreamrankApp(settings, ScorerSlot(zeroshot), store="memory://")
    sr.app.finalize()
    sr.scoring.batcher.start()  # test_context does not start the app's services
    outbox = Outbox()
    outbox.capture(sr.topics.recommendations)
    outbox.capture(sr.topics.deadletter)
    outbox.capture(sr.topics.item_actions)
    outbox.capture(sr.topics.item_stats)
    yield sr, outbox
    await sr.scoring.batcher.stop()


async def relay_item_stats(sr: StreamrankApp, outbox: Outbox, partition: int = 0) -> int:
    """As Kafka would: the actions forwarded by item_id reach the item-actions agent, and the
    statistics it publishes reach this worker's item-stats replica. Returns how many records
    the replica applied."""
    forwarded = outbox.take(sr.topics.item_actions)
    if forwarded:
        async with sr.behaviour.agent.test_context() as agent:
            for sent in forwarded:
                await agent.put(sent.value, key=sent.key, headers=sent.headers,
                                partition=partition)
    published = outbox.take(sr.topics.item_stats)
    replica = sr.behaviour.replica
    start = replica.applied
    for sent in published:
        offset = replica.stored_offset(0) or 0
        replica.apply(0, offset, str(sent.key).encode(), sent.value)
    return replica.applied - start


async def load_catalog(sr: StreamrankApp, items: list[Item] | None = None) -> None:
    """As if the catalog topic held `items`: the replica applies them (every worker keeps
    the whole catalog), the catalog agent validates them (one worker per partition)."""
    records = items if items is not None else catalog_items()
    for offset, item in enumerate(records):
        sr.catalog_replica.apply(0, offset, item.item_id.encode(), encode(item))
    async with sr.catalog_agent.test_context() as agent:
        for item in records:
            await agent.put(encode(item), key=item.item_id)
