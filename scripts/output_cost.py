"""What exactly-once results would cost the search path: the latency a consumer of the
recommendations topic sees, from the moment the worker hands a result to its producer to the
moment the consumer reads it, for the way results are published now and for Kafka
transactions at three commit cadences. One throwaway local broker, one partition, results of
the real RankedResult size, offered open-loop at --rate for --seconds per mode; a final
phase finds how many searches per second one partition can answer when every search commits
its own transaction (the per-search cost serialises a partition). Prints figures; asserts
nothing. Decision it informs: docs/architecture.md, "Reliability".

Modes:
  acked          acks=all, awaited per result, read_uncommitted (what streams/worker/output.py
                 does)
  txn-per-search one transaction per result (send, the input offset, commit), read_committed
  txn-<ms>       results sent in a transaction committed every <ms> (the input offsets with
                 it), read_committed: Faust's exactly_once commits every commit_interval (1 s)

    .venv/bin/python scripts/output_cost.py [--rate 200] [--seconds 10] [--every 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiokafka.admin import NewTopic
from aiokafka.structs import TopicPartition

from contracts import RankedItem, RankedResult, encode
from streams.kafka.broker_config import free_port
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import LocalBroker

STAMP = struct.Struct("<d")  # the send time, in front of the result's bytes


def result_bytes(candidates: int) -> bytes:
    items = [RankedItem(item_id=f"sku-{k:07d}", score=1.0 - k / candidates, rank=k + 1)
             for k in range(candidates)]
    return encode(RankedResult(request_id="req-0123456789", user_id="user-42",
                               ts=1_700_000_000_000, model_version="hybrid-1a2b3c4d",
                               items=items, received_ts=1_700_000_000_002,
                               published_ts=1_700_000_000_030))


async def topic(clients: KafkaClients) -> str:
    """A fresh results topic and its searches topic (the offsets a transaction commits)."""
    name = f"results-{random.randrange(10**9)}"
    admin = clients.admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1), NewTopic(f"in-{name}", 1, 1)])
    finally:
        await admin.close()
    return name


async def read(clients: KafkaClients, name: str, committed: bool, expect: int,
               ready: asyncio.Event) -> list[float]:
    """Latency (ms) of each of `expect` results as the consumer sees them."""
    consumer = clients.consumer(name, auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed" if committed
                                else "read_uncommitted", fetch_max_wait_ms=5)
    await consumer.start()
    ready.set()
    seen: list[float] = []
    try:
        while len(seen) < expect:
            batches = await consumer.getmany(timeout_ms=1000)
            now = time.perf_counter()
            for records in batches.values():
                stamps = (STAMP.unpack_from(r.value)[0] for r in records)
                seen.extend((now - t) * 1e3 for t in stamps if t > 0)  # 0: the warm-up
    finally:
        await consumer.stop()
    return seen


async def offered(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> int:
    """Open-loop arrivals: search k is due at k / rate; a late sender does not slow them."""
    n = int(rate * seconds)
    start = time.perf_counter()
    for k in range(n):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(k)
    return n


async def run_mode(clients: KafkaClients, mode: str, rate: float, seconds: float,
                   value: bytes) -> list[float]:
    name = await topic(clients)
    n = int(rate * seconds)
    ready = asyncio.Event()
    committed = mode != "acked"
    reader = asyncio.create_task(read(clients, name, committed, n, ready))
    await ready.wait()
    group = f"worker-{name}"
    source = TopicPartition(f"in-{name}", 0)
    if mode == "acked":
        producer = clients.producer(acks="all", enable_idempotence=True)
    else:
        producer = clients.producer(transactional_id=f"tx-{name}")
    await producer.start()
    await warm(producer, mode != "acked", name, value)

    async def acked(k: int) -> None:
        await (await producer.send(name, STAMP.pack(time.perf_counter()) + value))

    async def per_search(k: int) -> None:
        async with producer.transaction():
            await producer.send(name, STAMP.pack(time.perf_counter()) + value)
            await producer.send_offsets_to_transaction({source: k + 1}, group)

    open_txn = False
    every_s = int(mode.removeprefix("txn-")) / 1e3 if mode.startswith("txn-") and \
        mode != "txn-per-search" else 0.0
    last_commit = time.perf_counter()

    async def batched(k: int) -> None:
        nonlocal open_txn, last_commit
        if not open_txn:
            await producer.begin_transaction()
            open_txn = True
        await producer.send(name, STAMP.pack(time.perf_counter()) + value)
        if time.perf_counter() - last_commit >= every_s:
            await producer.send_offsets_to_transaction({source: k + 1}, group)
            await producer.commit_transaction()
            open_txn, last_commit = False, time.perf_counter()

    send = {"acked": acked, "txn-per-search": per_search}.get(mode, batched)
    try:
        await offered(rate, seconds, send)
        if open_txn:
            await producer.commit_transaction()
        return await asyncio.wait_for(reader, timeout=30)
    finally:
        await producer.stop()


async def warm(producer: Any, transactional: bool, name: str, value: bytes) -> None:
    """One untimed record first: a new topic's leader and the transaction coordinator settle
    (NotEnoughReplicas retries) before anything is timed."""
    if transactional:
        async with producer.transaction():
            await producer.send(name, STAMP.pack(0.0) + value)
    else:
        await (await producer.send(name, STAMP.pack(0.0) + value))


async def serial_capacity(clients: KafkaClients, seconds: float, value: bytes) -> float:
    """Searches/s of one partition when each search waits for its own transaction."""
    name = await topic(clients)
    producer = clients.producer(transactional_id=f"tx-{name}")
    await producer.start()
    group, source, done = f"worker-{name}", TopicPartition(f"in-{name}", 0), 0
    await warm(producer, True, name, value)
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            async with producer.transaction():
                await producer.send(name, value)
                await producer.send_offsets_to_transaction({source: done + 1}, group)
            done += 1
    finally:
        await producer.stop()
    return done / seconds


async def measure(bootstrap: str, args: argparse.Namespace) -> None:
    clients = KafkaClients.plaintext(bootstrap)
    value = result_bytes(args.candidates)
    modes = ["acked", "txn-per-search", *(f"txn-{ms}" for ms in args.every)]
    await run_mode(clients, "acked", args.rate, 2.0, value)  # warm the broker and the JIT-less path
    print(f"{args.rate:.0f} results/s offered for {args.seconds:.0f} s per mode, one partition, "
          f"{len(value):,} bytes per result; latency from the producer call to the read (ms):")
    print("| mode | results | p50 | p99 | max |\n|---|---|---|---|---|")
    for mode in modes:
        lat = np.array(await run_mode(clients, mode, args.rate, args.seconds, value))
        print(f"| {mode} | {len(lat)} | {np.percentile(lat, 50):.1f} | "
              f"{np.percentile(lat, 99):.1f} | {lat.max():.1f} |", flush=True)
    cap = await serial_capacity(clients, args.seconds, value)
    print(f"\none transaction per search, back to back: {cap:,.0f} searches/s per partition")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="results per second offered")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each mode")
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--every", type=lambda s: [int(x) for x in s.split(",")],
                   default=[100, 1000], help="commit intervals (ms) of the batched modes")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(
            port=free_port(), data_dir=tmp) as broker:
        asyncio.run(measure(broker.bootstrap_servers, args))


if __name__ == "__main__":
    main()
