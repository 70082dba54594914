"""Model rollout over Kafka: the compacted models topic (key "current") that every worker follows.

- `current_update` / `publish_update`: workers follow the topic (streams/worker/scoring_service.py)
  and validate each update before serving it.
- `rollback`: re-publish an earlier registry version.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from contracts import DecodeError, ModelUpdate, decode, encode
from scoring.base import MANIFEST_FILE, load_verified, sha256_file
from scoring.registry import ModelRegistry
from streams.kafka.connection import KafkaClients
from streams.kafka.topology import partitions_of
from streams.learning.samples_reader import range_consumer

log = logging.getLogger(__name__)

MODELS_KEY = b"current"


async def current_update(clients: KafkaClients, topic: str) -> ModelUpdate | None:
    """The last valid ModelUpdate on the models topic (what workers serve), or None."""
    if not await partitions_of(clients, topic):
        return None
    consumer = range_consumer(clients)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        latest: ModelUpdate | None = None
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                for rec in records:
                    try:
                        latest = decode(rec.value, ModelUpdate)
                    except DecodeError:
                        continue  # workers ignore it too
        return latest
    finally:
        await consumer.stop()


async def ensure_models_topic(clients: KafkaClients, topic: str, replication: int = 1) -> None:
    """Create the models topic as the worker would (1 partition, compacted) if missing, so a
    trainer publishing first does not leave an auto-created topic behind."""
    admin = clients.admin()
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics(
                [NewTopic(topic, 1, replication, topic_configs={"cleanup.policy": "compact"})]
            )
    finally:
        await admin.close()


def update_for(path: Path, metrics: dict[str, float] | None = None) -> ModelUpdate:
    """The ModelUpdate announcing the verified version at `path`."""
    manifest = load_verified(path)
    return ModelUpdate(
        # absolute, not resolved: the registry's own path, even where it holds a symlink
        version=manifest.version, uri=str(Path(path).absolute()),
        sha256=sha256_file(Path(path) / MANIFEST_FILE),
        metrics=metrics if metrics is not None else flat_metrics(manifest.metrics),
    )


def flat_metrics(metrics: dict[str, Any] | Any) -> dict[str, float]:
    """Top-level numbers of a manifest's metrics, plus its held-out means."""
    out = {k: float(v) for k, v in dict(metrics).items()
           if isinstance(v, int | float) and not isinstance(v, bool)}
    held = dict(metrics).get("held_out", {})
    for name, interval in held.items() if isinstance(held, dict) else ():
        if isinstance(interval, dict) and isinstance(interval.get("mean"), int | float):
            out[name] = float(interval["mean"])
    return out


async def publish_update(
    clients: KafkaClients, topic: str, update: ModelUpdate, replication: int = 1
) -> None:
    await ensure_models_topic(clients, topic, replication)
    producer = clients.producer(acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode(update), key=MODELS_KEY)
    finally:
        await producer.stop()
    log.info("published ModelUpdate %s on %s", update.version, topic)


async def rollback(
    clients: KafkaClients, topic: str, models_dir: Path, version: str, replication: int = 1
) -> ModelUpdate:
    """Re-publish `version` (a registry version or folder name) as the model to serve."""
    update = update_for(ModelRegistry(models_dir).find(version))
    await publish_update(clients, topic, update, replication)
    return update
