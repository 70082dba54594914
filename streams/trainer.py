"""The learning loop's Kafka side: read captured samples, publish and roll back ModelUpdates.

- `read_samples`: TrainingSamples from the samples topic, every partition, between two
  offsets or two times (offsets_for_times), read_committed, up to the end offsets taken when
  reading starts (so a busy topic still gives a finite read).
- `current_update` / `publish_update`: the compacted models topic (key "current"); workers
  follow it (streams/scoring_service.py) and validate each update before serving it.
- `rollback`: re-publish an earlier registry version.
- `schedule`: run a job every interval (`streamrank train --every 30m`).
The fine-tuning itself is scoring/training/finetune.py (torch); streams/train_cli.py wires
both into the command line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tqdm import tqdm  # type: ignore[import-untyped]

from contracts import DecodeError, ModelUpdate, TrainingSample, decode, encode
from scoring.base import MANIFEST_FILE, load_verified, sha256_file
from scoring.registry import ModelRegistry
from streams.topology import partition_counts

log = logging.getLogger(__name__)

MODELS_KEY = b"current"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in "90s", "30m", "1h30m", "2d"; a bare number is seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 1h30m, 2d)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Epoch ms from epoch ms digits, an ISO 8601 time (UTC unless it says otherwise), or a
    duration meaning that long before now ("24h")."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return now - int(parse_duration(text) * 1000)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (epoch ms, ISO 8601, or a duration ago)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition ids of `topic`; [] when it does not exist (it is not created)."""
    counts = await partition_counts(bootstrap, [topic])
    return list(range(counts.get(topic, 0)))


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    # No group: the trainer reads ranges, never commits, and must not steal partitions.
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed",
    )


async def _range(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_ms: int | None,
    until_ms: int | None, from_offset: int | None,
) -> dict[TopicPartition, tuple[int, int]]:
    """[start, stop) offsets per partition."""
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    start = {tp: max(begin[tp], from_offset or 0) for tp in tps}
    stop = dict(end)
    if since_ms is not None:
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        start = {tp: max(start[tp], found[tp].offset if found[tp] else end[tp]) for tp in tps}
    if until_ms is not None:
        found = await consumer.offsets_for_times({tp: until_ms for tp in tps})
        stop = {tp: min(end[tp], found[tp].offset if found[tp] else end[tp]) for tp in tps}
    return {tp: (start[tp], max(start[tp], stop[tp])) for tp in tps}


async def read_samples(
    bootstrap: str,
    topic: str,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    from_offset: int | None = None,
    progress: bool = False,
) -> list[TrainingSample]:
    """Every committed sample of `topic` in the range (all partitions). Undecodable records
    are logged and skipped; duplicates are left for samples.build_lists to drop."""
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        log.warning("topic %s does not exist (yet): no samples", topic)
        return []
    consumer = _consumer(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        span = await _range(consumer, tps, since_ms, until_ms, from_offset)
        for tp, (start, _) in span.items():
            consumer.seek(tp, start)
        samples: list[TrainingSample] = []
        bad = 0
        todo = {tp for tp, (start, stop) in span.items() if stop > start}
        with tqdm(total=sum(b - a for a, b in span.values()), desc="reading samples",
                  unit="rec", disable=not progress) as bar:
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, records in batch.items():
                    stop = span[tp][1]
                    for rec in records:
                        if rec.offset >= stop:
                            break
                        try:
                            samples.append(decode(rec.value, TrainingSample))
                        except DecodeError as exc:
                            bad += 1
                            log.debug("skipping %s@%d: %s", tp, rec.offset, exc)
                    bar.update(sum(1 for r in records if r.offset < stop))
                # Transaction markers take offsets too: position, not record count, says done.
                for tp in list(todo):
                    if await consumer.position(tp) >= span[tp][1]:
                        todo.discard(tp)
        if bad:
            log.warning("skipped %d records of %s that are not TrainingSamples", bad, topic)
        return samples
    finally:
        await consumer.stop()


async def current_update(bootstrap: str, topic: str) -> ModelUpdate | None:
    """The last valid ModelUpdate on the models topic (what workers serve), or None."""
    if not await partitions_of(bootstrap, topic):
        return None
    consumer = _consumer(bootstrap)
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


async def ensure_models_topic(bootstrap: str, topic: str, replication: int = 1) -> None:
    """Create the models topic as the worker would (1 partition, compacted) if missing, so a
    trainer publishing first does not leave an auto-created topic behind."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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
    bootstrap: str, topic: str, update: ModelUpdate, replication: int = 1
) -> None:
    await ensure_models_topic(bootstrap, topic, replication)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode(update), key=MODELS_KEY)
    finally:
        await producer.stop()
    log.info("published ModelUpdate %s on %s", update.version, topic)


async def rollback(
    bootstrap: str, topic: str, models_dir: Path, version: str, replication: int = 1
) -> ModelUpdate:
    """Re-publish `version` (a registry version or folder name) as the model to serve."""
    update = update_for(ModelRegistry(models_dir).find(version))
    await publish_update(bootstrap, topic, update, replication)
    return update


def schedule(
    every_s: float,
    job: Callable[[], object],
    *,
    stop: threading.Event | None = None,
    max_runs: int | None = None,
) -> int:
    """Run `job` now and then every `every_s` seconds (from the start of the last run) until
    `stop` is set or `max_runs` ran; a failing run is logged and the next one still comes."""
    stop = stop or threading.Event()
    runs = 0
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        started = time.monotonic()
        runs += 1
        try:
            job()
        except Exception:
            log.exception("scheduled run %d failed; next in %.0fs", runs, every_s)
        if max_runs is not None and runs >= max_runs:
            break
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))
    return runs


__all__ = [
    "current_update",
    "ensure_models_topic",
    "flat_metrics",
    "parse_duration",
    "parse_time",
    "partitions_of",
    "publish_update",
    "read_samples",
    "rollback",
    "schedule",
    "update_for",
]
