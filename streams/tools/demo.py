"""`make demo`: a real broker, a real worker, simulated shoppers, ranked results as they arrive.

Runs under its own topic prefix and consumer group so it never mixes with other data on a
broker that was already running; it deletes its topics and stops what it started.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from contracts import RankedResult, SearchEvent, TopicNames
from streams.client import RankingClient
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import broker_for_session
from streams.settings import Settings
from streams.tools.simulation import Shopper, catalog_items, department, liked_share, shoppers
from streams.tools.worker_process import WorkerProcess, worker_env

TITLES = {i.item_id: i.title for i in catalog_items()}
ROUND_TIMEOUT_S = 60.0


def show(result: RankedResult, shopper: Shopper, latency_ms: float) -> str:
    top = ", ".join(
        f"{TITLES.get(i.item_id, i.item_id)} [{department(i.item_id)}] {i.score:.2f}"
        for i in result.items[:3]
    )
    return f"{shopper.user_id:>8} likes {shopper.likes:<8} {latency_ms:6.0f} ms  {top}"


async def _demo(
    settings: Settings, clients: KafkaClients, users: int, rounds: int, tmp: Path
) -> None:
    run_id = uuid.uuid4().hex[:8]
    env = worker_env(clients, tmp / "state", run_id, models_dir=settings.models_dir,
                     app_prefix="demo")
    topics = TopicNames(env["STREAMRANK_TOPIC_PREFIX"])
    worker = WorkerProcess(env, tmp / "worker.log")
    try:
        await worker.wait_ready(180)  # topics exist with the worker's partition counts
        async with RankingClient(clients, topics) as client:
            await _shop(client, worker, users, rounds, run_id)
            # A producer bug, to show where bad events go: the deadletter topic, never dropped.
            async with clients.producer(acks="all") as producer:
                await producer.send_and_wait(topics.search, b'{"query": "no ids"}',
                                             key=b"buggy-site")
        await worker.wait_for(lambda w: w.get("/health/")["deadletters"], "the deadletter")
        print("\nworker /metrics, selected:")
        for line in metrics_summary(worker.metrics_text()):
            print(f"  {line}")
    finally:
        worker.stop()
        await _delete_topics(clients, [*topics.all().values()], env["STREAMRANK_APP_ID"])


async def _shop(
    client: RankingClient, worker: WorkerProcess, users: int, rounds: int, run_id: str
) -> None:
    items = catalog_items()
    for item in items:
        await client.send_item(item)
    await client.flush()
    print(f"published {len(items)} catalog items; waiting for the worker …", flush=True)
    await worker.wait_for(
        lambda w: w.get("/health/")["catalog_items"] >= len(items), "catalog", 180
    )
    health = worker.get("/health/")
    print(f"worker ready: model {health['model_version']} on {health['provider']}")

    crowd = list(shoppers(users, prefix=f"u{run_id[:4]}"))
    returning = crowd[: users // 2]
    t0 = int(time.time() * 1000)
    for shopper in returning:
        for action in shopper.warm_up(t0):
            await client.send_action(action)
    await client.flush()
    last = returning[-1].user_id
    await worker.wait_for(
        lambda w: len(w.get(f"/users/{last}/sequence/")["entries"]) >= 3, "history"
    )
    print(f"{len(returning)} returning shoppers have history; {users - len(returning)} are new")

    by_user = {s.user_id: s for s in crowd}
    shares: dict[tuple[int, bool], list[float]] = {}
    latencies: list[float] = []
    for rnd in range(1, rounds + 1):
        print(f"\n— round {rnd}: every shopper searches —")
        sent: dict[str, SearchEvent] = {}
        for shopper in crowd:
            search = shopper.search(int(time.time() * 1000))
            sent[search.request_id] = search
            await client.send_search(search)
        async for reply in client.replies(list(sent), ROUND_TIMEOUT_S):
            result = reply.result
            latencies.append(reply.latency_ms)
            shopper = by_user[result.user_id]
            print(show(result, shopper, reply.latency_ms))
            ranked = [i.item_id for i in result.items]
            shares.setdefault((rnd, shopper in returning), []).append(
                liked_share(shopper.likes, ranked))
            for action in shopper.react(sent[result.request_id], ranked,
                                        int(time.time() * 1000)):
                await client.send_action(action)
        await client.flush()
        await asyncio.sleep(1.0)  # let the clicks reach the users' sequences

    print("\nshare of the top 3 from the shopper's liked department (chance ≈ 0.17):")
    for rnd in range(1, rounds + 1):
        ret = statistics.mean(shares.get((rnd, True), [0.0]))
        new = statistics.mean(shares.get((rnd, False), [0.0]))
        print(f"  round {rnd}: returning {ret:.2f}   new {new:.2f}")
    lat = sorted(latencies)
    print(
        f"\n{len(lat)} searches, produce→result latency p50 {lat[len(lat) // 2]:.0f} ms, "
        f"p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.0f} ms"
    )


def metrics_summary(text: str) -> list[str]:
    """A few lines from the worker's Prometheus text: what flowed, how fast, on what."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values.setdefault(sample.name, []).append((sample.labels, sample.value))

    def total(name: str) -> float:
        return sum(v for _, v in values.get(name, []))

    def stage_ms(stage: str) -> float:
        count = sum(v for lb, v in values.get("streamrank_stage_seconds_count", [])
                    if lb.get("stage") == stage)
        summed = sum(v for lb, v in values.get("streamrank_stage_seconds_sum", [])
                     if lb.get("stage") == stage)
        return 1000 * summed / count if count else 0.0

    model = next((lb for lb, _ in values.get("streamrank_model_info", [])), {})
    batches = total("streamrank_batch_searches_count")
    return [
        f"records in {total('streamrank_events_in_total'):.0f}, "
        f"out {total('streamrank_events_out_total'):.0f}; "
        f"deadletters {total('streamrank_deadletters_total'):.0f}; "
        f"degraded answers {total('streamrank_degraded_answers_total'):.0f}",
        "mean ms per search: " + ", ".join(
            f"{stage} {stage_ms(stage):.1f}" for stage in
            ("decode", "state", "queue", "tokenize", "inference", "publish", "end_to_end")),
        f"{batches:.0f} scorer runs, {total('streamrank_batch_searches_sum') / max(batches, 1):.1f}"
        f" searches each; model {model.get('version', '?')} on {model.get('provider', '?')}",
    ]


async def _delete_topics(clients: KafkaClients, names: list[str], app_id: str) -> None:
    admin = clients.admin()
    await admin.start()
    try:
        existing = await admin.list_topics()
        doomed = [t for t in existing if t in names or t.startswith(app_id + "-")]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def run_demo(settings: Settings, *, users: int, rounds: int, port: int) -> int:
    from streams.tools.model_setup import ensure_model

    ensure_model(settings)
    with (
        tempfile.TemporaryDirectory(prefix="streamrank-demo-") as tmp,
        broker_for_session(port, Path(tmp)) as broker,
    ):
        print(f"Kafka on {broker.bootstrap_servers}", flush=True)
        # The local broker listens PLAINTEXT; the worker is told the same (worker_env).
        clients = KafkaClients.plaintext(broker.bootstrap_servers)
        asyncio.run(_demo(settings, clients, users, rounds, Path(tmp)))
    return 0
