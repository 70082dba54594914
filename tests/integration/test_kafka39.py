"""Kafka 3.9 stays supported, and the upgrade in docs/operations.md is tested, not only
written: the core path (search answered, action applied, samples written in a transaction)
on a 3.9.1 broker, then the same data directory started by the default 4.x release with
everything intact (topics, records, committed group offsets, transactional samples), the
worker carrying on there, and the feature levels finalized under it (the upgrade's last
step)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from contracts import ActionEvent, Candidate, SearchEvent, encode
from streams.kafka.broker_config import KAFKA_VERSION, LEGACY_KAFKA_VERSION, free_port
from streams.kafka.broker_features import finalize_features
from streams.kafka.local_broker import LocalBroker
from tests.integration.faults.harness import FaultDeployment, read_topic, wall_ms

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


async def search_and_act(dep: FaultDeployment, tag: str) -> None:
    async with dep.clients.producer(acks="all") as producer:
        search = SearchEvent(event_id=f"e-{tag}", request_id=f"r-{tag}", user_id="ann",
                             ts=wall_ms(), query="tea",
                             candidates=[Candidate(item_id=f"{tag}-{i}") for i in range(3)])
        await producer.send_and_wait(dep.topics.search, encode(search), key=b"ann")
        action = ActionEvent(event_id=f"a-{tag}", user_id="ann", ts=wall_ms(),
                             item_id=f"{tag}-1", action="click", request_id=f"r-{tag}",
                             position=0)
        await producer.send_and_wait(dep.topics.action, encode(action), key=b"ann")


async def samples_of(
    dep: FaultDeployment, request_id: str, timeout: float = 90
) -> list[dict[str, object]]:
    """The committed samples of `request_id` (read_committed: only finished transactions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer = dep.clients.consumer(dep.topics.samples, group_id=None,
                                        auto_offset_reset="earliest",
                                        isolation_level="read_committed")
        await consumer.start()
        try:
            found = []
            batch = await consumer.getmany(timeout_ms=2000)
            for recs in batch.values():
                found += [d for r in recs if (d := orjson.loads(r.value))["request_id"]
                          == request_id]
        finally:
            await consumer.stop()
        if found:
            return found
    raise AssertionError(f"no committed samples of {request_id}")


async def test_kafka39_core_path_then_upgrade_to_4(tmp_path: Path, models_dir: Path) -> None:
    old = LocalBroker(free_port(), data_dir=tmp_path / "kafka", version=LEGACY_KAFKA_VERSION)
    old.start(timeout=180)
    dep = FaultDeployment(old, tmp_path, models_dir, tag="k39")
    fast = {"STREAMRANK_ATTRIBUTION_WINDOW_S": "1", "STREAMRANK_IMPRESSION_TTL_S": "60",
            "STREAMRANK_ATTRIBUTION_TICK_S": "0.5"}
    try:
        worker = dep.start_worker(**fast)
        await worker.wait_ready(180)
        assert "Kafka version: 3.9.1" in old.log_file.read_text()
        await search_and_act(dep, "v3")
        await worker.wait_for(lambda w: [e["item_id"] for e in
                                         w.get("/users/ann/sequence/")["entries"]] == ["v3-1"],
                              "the action applied on 3.9", 60)
        # The samples' layout is the learning loop's (not checked here): that they are there,
        # committed by a transaction, is what the broker version must support.
        committed = len(await samples_of(dep, "r-v3"))
        worker.stop()
        old.stop()

        # docs/operations.md, "Upgrading Kafka": the same data directory, the new release.
        new = LocalBroker(old.port, data_dir=old.data_dir, version=KAFKA_VERSION)
        new.start(timeout=180)
        dep.broker = new
        assert f"Kafka version: {KAFKA_VERSION}" in new.log_file.read_text()
        results = await read_topic(dep.clients, dep.topics.recommendations, idle_s=1.0)
        assert [orjson.loads(r.value)["request_id"] for r in results] == ["r-v3"]
        assert len(await samples_of(dep, "r-v3")) == committed  # the transaction, intact
        # Step 3 not yet taken: the cluster still runs 3.9's metadata version (a rollback to
        # 3.9 is possible), and the finalization validates.
        pending = finalize_features(new, dry_run=True)["metadata.version"]
        assert pending.before == pending.after < pending.supported

        worker = dep.start_worker(**fast)
        await worker.wait_ready(180)
        # State and committed offsets came through: nothing replayed, the user's history kept.
        await search_and_act(dep, "v4")
        await worker.wait_for(lambda w: [e["item_id"] for e in
                                         w.get("/users/ann/sequence/")["entries"]]
                              == ["v4-1", "v3-1"], "history kept and extended on 4.x", 60)
        assert await samples_of(dep, "r-v4")  # transactions on 4.x
        # Step 3: finalize the feature levels under a running worker, which carries on.
        final = finalize_features(new)["metadata.version"]
        assert final.before < final.after == final.supported, final
        await search_and_act(dep, "v5")
        await worker.wait_for(lambda w: [e["item_id"] for e in
                                         w.get("/users/ann/sequence/")["entries"]]
                              == ["v5-1", "v4-1", "v3-1"], "the worker after finalizing", 60)
        assert await samples_of(dep, "r-v5")
        results = await read_topic(dep.clients, dep.topics.recommendations, idle_s=1.0)
        assert Counter(orjson.loads(r.value)["request_id"] for r in results) == {
            "r-v3": 1, "r-v4": 1, "r-v5": 1}
        new.stop()
    finally:
        dep.stop()
        old.wipe()
