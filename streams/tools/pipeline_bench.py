"""`streamrank bench pipeline`: searches/s and latency through a real broker and worker.

Real product text (the retrotech Best Buy catalogue when present, else the built-in one),
50 candidates per search, users with history. Three phases on the same worker:
  cold        every item's first appearance: the item-embedding cache fills;
  throughput  all searches published at once: searches/s the worker sustains;
  half load   searches paced at half that rate: end-to-end latency p50/p99.
Latency is measured from the moment the producer's send is acknowledged to the moment the
result is read, on one clock; the worker's own share is published_ts - received_ts.
Searches go through the client library (streams/client) and products through
streams/tools/products.py: the bench scores the text the worker scores.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts import ActionEvent, Candidate, Item, SearchEvent, TopicNames
from streams.client import RankingClient
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import broker_for_session
from streams.settings import Settings
from streams.tools.products import sample_products
from streams.tools.simulation import catalog_items
from streams.tools.worker_process import WorkerProcess, worker_env


@dataclass
class Phase:
    name: str
    searches: int
    seconds: float
    searches_per_s: float
    p50_ms: float
    p99_ms: float
    worker_p50_ms: float
    worker_p99_ms: float
    degraded: int


PHASE_TIMEOUT_S = 60.0  # plus 50 ms per search of the phase


def load_products(path: Path, limit: int, seed: int = 1) -> list[Item]:
    """`limit` products of the file (streams/tools/products.py: the text the worker scores),
    or the built-in catalog where the file is absent."""
    return sample_products(path, limit, seed) if path.exists() else catalog_items()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Traffic:
    def __init__(self, items: list[Item], users: int, candidates: int, seed: int = 3) -> None:
        self.items = items
        self.rng = random.Random(seed)
        self.users = [f"bench-{k}" for k in range(users)]
        self.candidates = min(candidates, len(items))
        self.n = 0

    def search(self, pool: list[Item] | None = None) -> SearchEvent:
        self.n += 1
        chosen = pool if pool is not None else self.rng.sample(self.items, self.candidates)
        words = self.rng.choice(chosen).title.split()[:3]
        return SearchEvent(
            event_id=f"bs-{self.n}", request_id=f"br-{self.n}", user_id=self.rng.choice(self.users),
            ts=int(time.time() * 1000), query=" ".join(words),
            candidates=[Candidate(item_id=i.item_id) for i in chosen],
        )

    def history(self, per_user: int) -> list[ActionEvent]:
        return [
            ActionEvent(event_id=f"ba-{u}-{k}", user_id=u, ts=k,
                        item_id=self.rng.choice(self.items).item_id, action="click")
            for u in self.users for k in range(per_user)
        ]


async def _run_phase(
    name: str, searches: list[SearchEvent], client: RankingClient, rate: float | None,
) -> Phase:
    """Publish `searches` (open loop: at `rate`/s, or all at once) while their results are
    read; latency from each send's acknowledgement to its result, on one clock."""

    async def publish() -> None:
        start = time.perf_counter()
        for k, s in enumerate(searches):
            if rate:
                await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            await client.send_search(s, expect=False)
        await client.flush()

    ids = [s.request_id for s in searches]
    client.expect(ids)  # all awaited before the first is sent
    started = time.perf_counter()
    pub = asyncio.create_task(publish())
    try:
        replies = await client.results(ids, PHASE_TIMEOUT_S + len(searches) / 20)
    finally:
        await pub
    seconds = time.perf_counter() - started
    latencies = [r.latency_ms for r in replies.values()]
    worker_ms = [float(r.result.published_ts - r.result.received_ts) for r in replies.values()]
    return Phase(
        name=name, searches=len(searches), seconds=round(seconds, 2),
        searches_per_s=round(len(searches) / seconds, 1),
        p50_ms=round(percentile(latencies, 0.5), 1), p99_ms=round(percentile(latencies, 0.99), 1),
        worker_p50_ms=percentile(worker_ms, 0.5), worker_p99_ms=percentile(worker_ms, 0.99),
        degraded=sum(r.result.degraded for r in replies.values()),
    )


async def _bench(
    settings: Settings, clients: KafkaClients, tmp: Path, products: Path, n_items: int,
    users: int, searches: int, candidates: int,
) -> tuple[list[Phase], dict[str, object]]:
    run_id = uuid.uuid4().hex[:8]
    env = worker_env(clients, tmp / "state", run_id, models_dir=settings.models_dir,
                     app_prefix="bench", partitions=4)
    topics = TopicNames(env["STREAMRANK_TOPIC_PREFIX"])
    items = load_products(products, n_items)
    traffic = Traffic(items, users, candidates)
    worker = WorkerProcess(env, tmp / "worker.log")
    try:
        await worker.wait_ready(180)  # topics exist with the worker's partition counts
        async with RankingClient(clients, topics, fetch_max_wait_ms=5) as client:
            for item in items:
                await client.send_item(item)
            for action in traffic.history(per_user=5):
                await client.send_action(action)
            await client.flush()
            await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] >= len(items),
                                  "catalog", 300)
            last = traffic.users[-1]
            await worker.wait_for(
                lambda w: len(w.get(f"/users/{last}/sequence/")["entries"]) >= 5, "history", 120)
            health = worker.get("/health/")
            # Cold: each item once, in candidate lists of the usual size.
            shuffled = traffic.rng.sample(items, len(items))
            cold = [traffic.search(shuffled[k:k + traffic.candidates])
                    for k in range(0, len(shuffled) - traffic.candidates + 1,
                                   traffic.candidates)]
            phases = [await _run_phase("cold", cold, client, None)]
            full = await _run_phase("throughput", [traffic.search() for _ in range(searches)],
                                    client, None)
            phases.append(full)
            half_rate = full.searches_per_s / 2
            half = [traffic.search() for _ in range(max(50, searches // 2))]
            phases.append(await _run_phase(f"half load ({half_rate:.0f}/s)", half, client,
                                           half_rate))
        meta: dict[str, object] = {
            "model_version": health["model_version"], "provider": health["provider"],
            "items": len(items), "users": users, "candidates": traffic.candidates,
            "catalog": str(products) if products.exists() else "built-in",
            "partitions": 4,
        }
        return phases, meta
    finally:
        worker.stop()


def render(phases: list[Phase], meta: dict[str, object]) -> str:
    lines = [
        f"model {meta['model_version']} on {meta['provider']}; {meta['items']} items from "
        f"{meta['catalog']}; {meta['candidates']} candidates/search; {meta['users']} users "
        f"with 5 actions each; one worker, {meta['partitions']} partitions",
        "",
        "| phase | searches | s | searches/s | p50 ms | p99 ms | worker p50 ms | worker p99 ms "
        "| degraded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p.name} | {p.searches} | {p.seconds} | {p.searches_per_s} | {p.p50_ms} | {p.p99_ms} "
        f"| {p.worker_p50_ms} | {p.worker_p99_ms} | {p.degraded} |"
        for p in phases
    ]
    return "\n".join(lines) + "\n"


def run_pipeline_bench(
    settings: Settings, *, port: int, products: Path, items: int, users: int, searches: int,
    candidates: int, out: Path | None,
) -> int:
    from streams.tools.model_setup import ensure_model

    ensure_model(settings)
    with (
        tempfile.TemporaryDirectory(prefix="streamrank-bench-") as tmp,
        broker_for_session(port, Path(tmp)) as broker,
    ):
        # The local broker listens PLAINTEXT; the worker is told the same (worker_env).
        clients = KafkaClients.plaintext(broker.bootstrap_servers)
        phases, meta = asyncio.run(_bench(settings, clients, Path(tmp), products, items, users,
                                          searches, candidates))
    table = render(phases, meta)
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(table)
        out.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "phases": [asdict(p) for p in phases]}, indent=2) + "\n")
    return 0
