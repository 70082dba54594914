"""What one closed impression costs on the samples topic: records, bytes and the CPU to build
and encode them, in the format before #12 (one record per shown candidate, history and item
text repeated) and now (one record per impression, features logged). Real product texts from a
product file; the history is ten of their titles; features random float32 of the hybrid spec's
width. With --kafka, also commits them through the worker's transactional sample log
(streams/worker/sample_log.py) on a throwaway local broker, a tick's impressions per
transaction, and reports impressions per second and the worker's CPU per impression. Prints
figures; asserts nothing.

    .venv/bin/python scripts/sample_cost.py --products /work/shared/data/retrotech/products.csv.gz
        [--kafka] [--impressions 2000] [--per-tick 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
from aiokafka.admin import NewTopic
from pydantic import Field

from contracts import encode
from contracts.events import Contract, EpochMs, Id, ShortText
from scoring.behaviour_spec import BehaviourSpec
from state.impression_records import Impression, pack_features
from streams.kafka.broker_config import free_port
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import LocalBroker
from streams.tools.products import sample_products
from streams.worker.sample_log import KafkaSampleLog


class BeforeSample(Contract):
    """The record of one shown candidate as workers wrote it before #12 (contracts/events.py
    at 786a1a8^), kept here only to measure what it cost."""

    sample_id: Id
    request_id: Id
    user_id: Id
    ts: EpochMs
    query: ShortText
    history: list[ShortText] = Field(default_factory=list)
    item_id: Id
    item_text: ShortText = ""
    label: float = Field(ge=0)
    action: Literal["skipped", "click", "add_to_cart", "purchase"] = "skipped"
    position: int = Field(ge=0)
    shown_score: float
    model_version: str
    candidates: int = Field(ge=1)


def before(imp: Impression, texts: dict[str, str]) -> list[bytes]:
    return [encode(r) for r in _records(imp, texts)]


def timed(fn: object, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - started) / rounds * 1e3


async def through_kafka(bootstrap: str, batches: list[list[object]]) -> tuple[float, float]:
    """(seconds, CPU seconds) to commit every batch in its own transaction."""
    clients = KafkaClients.plaintext(bootstrap)
    admin = clients.admin()
    await admin.start()
    topic = f"samples-{random.randrange(10**9)}"
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    log = KafkaSampleLog(clients, topic, transactional_prefix=topic, lookback_ms=60_000)
    await log.emit(0, batches[0])  # type: ignore[arg-type]  # producer started, topic warm
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches[1:]:
        await log.emit(0, batch)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await log.close()
    return wall, cpu


def kafka_figures(plain: Impression, logged: Impression, texts: dict[str, str],
                  impressions: int, per_tick: int) -> None:
    ticks = impressions // per_tick + 1
    formats: dict[str, list[list[object]]] = {
        "before #12 (a record per candidate)":
            [[r for _ in range(per_tick) for r in _records(plain, texts)]
             for _ in range(ticks)],
        "now, no features": [[plain.sample()] * per_tick for _ in range(ticks)],
        "now, features logged": [[logged.sample()] * per_tick for _ in range(ticks)],
    }
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(
            port=free_port(), data_dir=tmp) as broker:
        for name, batches in formats.items():
            wall, cpu = asyncio.run(through_kafka(broker.bootstrap_servers, batches))
            n = (ticks - 1) * per_tick
            print(f"  {name}: {n / wall:,.0f} impressions/s committed, "
                  f"{1e3 * cpu / n:.2f} ms CPU per impression ({per_tick} per transaction)")


def _records(imp: Impression, texts: dict[str, str]) -> list[BeforeSample]:
    """The old format's records as models the sample log can send."""
    out: list[BeforeSample] = []
    for position, (item_id, score) in enumerate(imp.items):
        action = imp.labels.get(item_id, "skipped")
        out.append(BeforeSample(
            sample_id=f"{imp.request_id}|{item_id}", request_id=imp.request_id,
            user_id=imp.user_id, ts=imp.ts, query=imp.query, history=imp.history,
            item_id=item_id, item_text=texts[item_id][:2048],
            label={"skipped": 0.0, "click": 1.0}[action], action=action,  # type: ignore[arg-type]
            position=position, shown_score=score, model_version=imp.model_version,
            candidates=len(imp.items)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--products", type=Path, required=True)
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--kafka", action="store_true",
                   help="also commit them through a throwaway local broker (needs Java 17)")
    p.add_argument("--impressions", type=int, default=2000)
    p.add_argument("--per-tick", type=int, default=20)
    args = p.parse_args()
    items = sample_products(args.products, 2000)
    texts = {i.item_id: i.text() for i in items}
    rng = random.Random(0)
    shown = rng.sample(items, args.candidates)
    history = [i.title for i in rng.sample(items, 10)]
    spec = BehaviourSpec()
    # Feature-like values: small integers, logs of counts, ratios.
    nrng = np.random.default_rng(0)
    features = np.round(nrng.gamma(1.0, 2.0, (args.candidates, spec.size)), 0)
    features[:, ::3] = np.log1p(nrng.gamma(2.0, 20.0, (args.candidates, len(features[0, ::3]))))
    features = features.astype(np.float32)
    base = dict(request_id="req-0123456789", user_id="user-42", ts=1_700_000_000_000,
                received_ts=1_700_000_000_005, close_at=1_700_001_800_005,
                query="wireless noise cancelling headphones", history=history,
                model_version="hybrid-1a2b3c4d",
                items=[(i.item_id, float(round(1 - k / 50, 6))) for k, i in enumerate(shown)],
                labels={shown[3].item_id: "click"})
    plain = Impression(**base)  # type: ignore[arg-type]
    logged = Impression(**base, feature_spec="1:abcdef12",  # type: ignore[arg-type]
                        features=pack_features(features, args.candidates))
    old = before(plain, texts)
    new_plain, new_logged = encode(plain.sample()), encode(logged.sample())
    print(f"one closed impression of {args.candidates} candidates, history of 10 titles, "
          f"{spec.size} features per item:")
    print(f"  before #12: {len(old)} records, {sum(map(len, old)):,} bytes, "
          f"{timed(lambda: before(plain, texts), args.rounds):.2f} ms to build and encode")
    print(f"  now, text scorer (no features): 1 record, {len(new_plain):,} bytes, "
          f"{timed(lambda: encode(plain.sample()), args.rounds):.2f} ms")
    print(f"  now, hybrid (features logged): 1 record, {len(new_logged):,} bytes, "
          f"{timed(lambda: encode(logged.sample()), args.rounds):.2f} ms")
    if args.kafka:
        kafka_figures(plain, logged, texts, args.impressions, args.per_tick)


if __name__ == "__main__":
    main()
