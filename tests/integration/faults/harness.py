"""What the fault tests share: a broker of their own (they stop it), a worker, traffic whose
acknowledged records are remembered, and the accounting of what came out.

Bounded by construction: traffic runs for a fixed time at a fixed rate, every wait has a
deadline, and everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from contracts import ActionEvent, Candidate, SearchEvent, TopicNames, encode
from streams.kafka.broker_config import free_port
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import LocalBroker
from streams.tools.worker_process import WorkerProcess, worker_env


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FaultDeployment:
    """A worker on a broker that this test alone uses (so stopping it disturbs nothing else)."""

    def __init__(self, broker: LocalBroker, tmp: Path, models_dir: Path, tag: str) -> None:
        self.broker = broker
        self.tmp = tmp
        self.clients = KafkaClients.plaintext(broker.bootstrap_servers)
        self.env = {
            **worker_env(self.clients, tmp / "state", tag, models_dir=models_dir,
                         app_prefix="fault"),
            "STREAMRANK_SEQUENCE_LENGTH": "500",  # every action stays visible for the count
            "STREAMRANK_READINESS_PROBE_S": "0.5",
        }
        self.topics = TopicNames(self.env["STREAMRANK_TOPIC_PREFIX"])
        self.worker: WorkerProcess | None = None
        self.starts = 0

    def start_worker(self, **overrides: str) -> WorkerProcess:
        self.starts += 1
        self.worker = WorkerProcess({**self.env, **overrides},
                                    self.tmp / f"worker-{self.starts}.log")
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()


def ready_now(worker: WorkerProcess) -> bool | None:
    """True/False from /ready/; None when the worker does not answer HTTP at all."""
    try:
        return bool(worker.get("/ready/")["ready"])
    except urllib.error.HTTPError as exc:
        return False if exc.code == 503 else None
    except OSError:
        return None


async def wait_until(check: Any, timeout: float, step: float = 0.1) -> float:
    """Seconds until `check()` is truthy; AssertionError past `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {check}")
        await asyncio.sleep(step)
    return time.monotonic() - began


@dataclass
class Sent:
    """What the traffic offered and what the broker acknowledged."""

    searches: list[str] = field(default_factory=list)  # request ids, acknowledged
    actions: dict[str, list[str]] = field(default_factory=dict)  # user -> item ids, acknowledged
    offered: int = 0
    failed: int = 0
    acked_at: dict[str, float] = field(default_factory=dict)  # request id -> monotonic time


class Traffic:
    """Searches and actions for `users`, one at a time, each awaited (acks=all, idempotent
    producer): an exception or a timeout counts it as not acknowledged."""

    def __init__(self, dep: FaultDeployment, users: int = 8, tag: str = "t") -> None:
        self.dep = dep
        self.users = [f"{tag}-user-{n}" for n in range(users)]
        self.tag = tag
        self.sent = Sent()
        self._n = 0

    async def run(self, seconds: float, rate: float = 20.0) -> Sent:
        producer = self.dep.clients.producer(acks="all", enable_idempotence=True,
                                             request_timeout_ms=5000, linger_ms=0)
        await producer.start()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await self._one(producer)
                await asyncio.sleep(1.0 / rate)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 15)
        return self.sent

    async def _one(self, producer: Any) -> None:
        n = self._n
        self._n += 1
        user = self.users[n % len(self.users)]
        if n % 2:
            event: Any = SearchEvent(
                event_id=f"{self.tag}-s{n}", request_id=f"{self.tag}-r{n}", user_id=user,
                ts=wall_ms(), query="something warm",
                candidates=[Candidate(item_id=f"item-{k}") for k in range(5)])
            topic = self.dep.topics.search
        else:
            event = ActionEvent(event_id=f"{self.tag}-a{n}", user_id=user, ts=wall_ms(),
                                item_id=f"{self.tag}-item-{n}", action="click")
            topic = self.dep.topics.action
        self.sent.offered += 1
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, encode(event), key=user.encode()), 8)
        except Exception:
            self.sent.failed += 1
            return
        if isinstance(event, SearchEvent):
            self.sent.searches.append(event.request_id)
            self.sent.acked_at[event.request_id] = time.monotonic()
        else:
            self.sent.actions.setdefault(user, []).append(event.item_id)


async def read_topic(clients: KafkaClients, topic: str, idle_s: float = 3.0,
                     timeout: float = 90.0) -> list[Any]:
    """Every record of `topic` from the start (read_uncommitted: what any consumer sees),
    until nothing new arrived for `idle_s`."""
    consumer = clients.consumer(topic, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        began = last = time.monotonic()
        while time.monotonic() - last < idle_s and time.monotonic() - began < timeout:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
                last = time.monotonic()
    finally:
        await consumer.stop()
    return records


@dataclass
class Accounting:
    """What came out for what went in: the table of the issue's closing note."""

    offered: int
    acknowledged: int
    answered: int  # acknowledged searches with at least one result
    applied: int  # acknowledged actions present in their user's sequence
    deadlettered: int
    duplicated_results: int  # extra copies of a result on the topic (same request_id)
    duplicated_actions: int  # an action in a sequence more than once
    missing: list[str]

    def row(self) -> str:
        return (f"offered={self.offered} acknowledged={self.acknowledged} "
                f"answered={self.answered} applied={self.applied} "
                f"deadlettered={self.deadlettered} duplicated_results={self.duplicated_results} "
                f"duplicated_actions={self.duplicated_actions} missing={len(self.missing)}")


async def account(dep: FaultDeployment, sent: Sent, worker: WorkerProcess) -> Accounting:
    results = await read_topic(dep.clients, dep.topics.recommendations)
    copies = Counter(orjson.loads(r.value)["request_id"] for r in results)
    dead = await read_topic(dep.clients, dep.topics.deadletter, idle_s=1.0)
    missing = [rid for rid in sent.searches if copies[rid] == 0]
    applied = dup_actions = 0
    for user, items in sent.actions.items():
        seq = [e["item_id"] for e in worker.get(f"/users/{user}/sequence/")["entries"]]
        counts = Counter(seq)
        applied += sum(1 for i in items if counts[i] >= 1)
        dup_actions += sum(c - 1 for c in counts.values() if c > 1)
        missing += [i for i in items if counts[i] == 0]
    acked = len(sent.searches) + sum(len(v) for v in sent.actions.values())
    return Accounting(
        offered=sent.offered, acknowledged=acked,
        answered=sum(1 for rid in sent.searches if copies[rid] >= 1), applied=applied,
        deadlettered=len(dead), duplicated_results=sum(c - 1 for c in copies.values() if c > 1),
        duplicated_actions=dup_actions, missing=missing)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_broker(tmp: Path, **kwargs: Any) -> LocalBroker:
    return LocalBroker(free_port(), data_dir=tmp / "kafka", **kwargs)
