"""Behaviour feature cost per search, as the worker pays it: gathering the inputs from state
(streams/worker/behaviour_source.py over RocksDB, like the worker's local stores) and
assembling the feature matrix (scoring/behaviour.py), for 50 candidates of a user with a full
retained interaction set. Prints figures; asserts nothing.

    .venv/bin/python scripts/bench_behaviour.py [--items 50000] [--retained 1000]
        [--candidates 50] [--searches 2000] [--neighbours 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from contracts import ActionEvent, Candidate, Item, SearchEvent, encode
from contracts.events import Action
from contracts.ids import item_hash
from scoring.behaviour import build
from scoring.behaviour_spec import BehaviourSpec
from scoring.neighbours import Neighbours
from state import CatalogStore, RocksKV
from state.interactions import InteractionStore
from streams.kafka.connection import KafkaClients
from streams.worker.behaviour_source import BehaviourSource, item_attributes
from streams.worker.item_stats_replica import ItemStatsReplica
from streams.worker.item_stats_table import ItemStatsTable

NOW = 1_700_000_000_000
ACTIONS: tuple[Action, ...] = ("view", "click", "add_to_cart", "purchase")


def percentiles(ms: list[float]) -> str:
    qs = np.percentile(ms, [50, 90, 99])
    return (f"mean {statistics.fmean(ms):.3f}  p50 {qs[0]:.3f}  p90 {qs[1]:.3f}  "
            f"p99 {qs[2]:.3f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--retained", type=int, default=1000)
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--searches", type=int, default=2000)
    p.add_argument("--neighbours", type=int, default=100)
    p.add_argument("--users", type=int, default=20)
    args = p.parse_args()
    rng = random.Random(0)
    ids = [f"sku-{n}" for n in range(args.items)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog = CatalogStore(RocksKV(root / "catalog"))
        for n, item_id in enumerate(ids):
            catalog.upsert(Item(item_id=item_id, title=f"product {n}", brand=f"b{n % 300}",
                                category=f"c{n % 40}|d{n % 7}", price=float(n % 500)))
        # Item statistics as the replica holds them: every item acted on a few times.
        table = ItemStatsTable(RocksKV(root / "table"))
        replica = ItemStatsReplica(RocksKV(root / "stats"), RocksKV(root / "offsets"),
                                   clients=KafkaClients.plaintext("127.0.0.1:1"), topic="t",
                                   max_bytes=1 << 20)
        started = time.perf_counter()
        for n, item_id in enumerate(ids):
            for k in range(3):
                record = table.apply(ActionEvent(
                    event_id=f"i{n}-{k}", user_id="x", ts=NOW - rng.randrange(10**9),
                    item_id=item_id, action=rng.choice(ACTIONS)))
                if record is not None:
                    replica.apply_record(item_id.encode(), encode(record))
        print(f"state: {args.items} items with statistics in "
              f"{time.perf_counter() - started:.1f} s")
        users_kv = RocksKV(root / "users")
        interactions = InteractionStore(users_kv, retained=args.retained)
        started = time.perf_counter()
        for u in range(args.users):
            for k in range(args.retained):
                item_id = ids[rng.randrange(args.items)]
                interactions.apply(ActionEvent(
                    event_id=f"u{u}-{k}", user_id=f"user-{u}", ts=NOW - 10**9 + k * 1000,
                    item_id=item_id, action=rng.choice(ACTIONS)),
                    item_attributes(catalog.get(item_id)))
        applied = args.users * args.retained
        print(f"interactions: {applied} actions applied in {time.perf_counter() - started:.1f}"
              f" s ({1e3 * (time.perf_counter() - started) / applied:.3f} ms per action at up "
              f"to {args.retained} retained); record "
              f"{len(users_kv['user-0']) / 1e3:.1f} kB")
        spec = BehaviourSpec(neighbours=args.neighbours, retained=args.retained)
        neighbours = Neighbours.from_lists(
            {item_hash(i): [(item_hash(ids[rng.randrange(args.items)]), rng.random())
                            for _ in range(args.neighbours)] for i in ids},
            k=args.neighbours)
        source = BehaviourSource(interactions, replica)
        gather_ms, build_ms, catalog_ms = [], [], []
        cpu_started = time.process_time()
        for s in range(args.searches):
            pool = rng.sample(ids, args.candidates)
            search = SearchEvent(event_id=f"s{s}", request_id=f"r{s}",
                                 user_id=f"user-{s % args.users}", ts=NOW, query="q",
                                 candidates=[Candidate(item_id=i, retrieval_score=float(k))
                                             for k, i in enumerate(pool)])
            t0 = time.perf_counter()
            items = [catalog.get(c.item_id) for c in search.candidates]  # the handler's read
            t1 = time.perf_counter()
            inputs = source.inputs(search, search.candidates, items)
            t2 = time.perf_counter()
            build(spec, inputs, neighbours)
            t3 = time.perf_counter()
            if s >= 100:  # warm
                catalog_ms.append((t1 - t0) * 1e3)
                gather_ms.append((t2 - t1) * 1e3)
                build_ms.append((t3 - t2) * 1e3)
        cpu_ms = (time.process_time() - cpu_started) * 1e3 / args.searches
        total = [g + b for g, b in zip(gather_ms, build_ms, strict=True)]
        print(f"{args.candidates} candidates, {args.retained} retained, {args.neighbours} "
              f"neighbours, {len(total)} searches:")
        print(f"  catalog read (the handler's, for texts too): {percentiles(catalog_ms)}")
        print(f"  gathering the inputs (worker):               {percentiles(gather_ms)}")
        print(f"  assembling the features (scorer):            {percentiles(build_ms)}")
        print(f"  gathering + assembly:                        {percentiles(total)}")
        print(f"  CPU time per search, catalog read + gathering + assembly: {cpu_ms:.3f} ms "
              "(less sensitive than wall time to other jobs on the machine)")


if __name__ == "__main__":
    main()
