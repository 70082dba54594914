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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from contracts import RankedResult, SearchEvent, decode, encode
from streams.kafka.local_broker import broker_for_session
from streams.settings import Settings
from streams.tools.simulation import Shopper, catalog_items, department, liked_share, shoppers
from streams.tools.worker_process import WorkerProcess, worker_env

TITLES = {i.item_id: i.title for i in catalog_items()}


def show(result: RankedResult, shopper: Shopper, latency_ms: float) -> str:
    top = ", ".join(
        f"{TITLES.get(i.item_id, i.item_id)} [{department(i.item_id)}] {i.score:.2f}"
        for i in result.items[:3]
    )
    return f"{shopper.user_id:>8} likes {shopper.likes:<8} {latency_ms:6.0f} ms  {top}"


async def _demo(settings: Settings, bootstrap: str, users: int, rounds: int, tmp: Path) -> None:
    run_id = uuid.uuid4().hex[:8]
    env = worker_env(
        bootstrap, tmp / "state", run_id, models_dir=settings.models_dir, app_prefix="demo"
    )
    topics = Settings(topic_prefix=env["STREAMRANK_TOPIC_PREFIX"]).topics
    worker = WorkerProcess(env, tmp / "worker.log")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    try:
        await producer.start()
        await worker.wait_ready(180)  # topics exist with the worker's partition counts
        items = catalog_items()
        for item in items:
            await producer.send(topics.catalog, encode(item), key=item.item_id.encode())
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
                await producer.send(topics.action, encode(action), key=shopper.user_id.encode())
        last = returning[-1].user_id
        await worker.wait_for(
            lambda w: len(w.get(f"/users/{last}/sequence/")["entries"]) >= 3, "history"
        )
        print(f"{len(returning)} returning shoppers have history; {users - len(returning)} are new")

        consumer.subscribe([topics.recommendations])
        await consumer.start()
        by_user = {s.user_id: s for s in crowd}
        shares: dict[tuple[int, bool], list[float]] = {}
        latencies: list[float] = []
        for rnd in range(1, rounds + 1):
            print(f"\n— round {rnd}: every shopper searches —")
            sent: dict[str, tuple[SearchEvent, float]] = {}
            for shopper in crowd:
                search = shopper.search(int(time.time() * 1000))
                sent[search.request_id] = (search, time.perf_counter())
                await producer.send(topics.search, encode(search), key=shopper.user_id.encode())
            while sent:
                batch = await consumer.getmany(timeout_ms=10_000)
                if not batch:
                    raise TimeoutError("no ranked results for 10 s")
                for records in batch.values():
                    for rec in records:
                        result = decode(rec.value, RankedResult)
                        if result.request_id not in sent:
                            continue
                        search, started = sent.pop(result.request_id)
                        latency = (time.perf_counter() - started) * 1000
                        latencies.append(latency)
                        shopper = by_user[result.user_id]
                        print(show(result, shopper, latency))
                        ranked = [i.item_id for i in result.items]
                        key = (rnd, shopper in returning)
                        shares.setdefault(key, []).append(liked_share(shopper.likes, ranked))
                        for action in shopper.react(search, ranked, int(time.time() * 1000)):
                            await producer.send(
                                topics.action, encode(action), key=shopper.user_id.encode()
                            )
            await producer.flush()
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
        # A producer bug, to show where bad events go: the deadletter topic, never dropped.
        await producer.send_and_wait(topics.search, b'{"query": "no ids"}', key=b"buggy-site")
        await worker.wait_for(lambda w: w.get("/health/")["deadletters"], "the deadletter")
        print("\nworker /metrics, selected:")
        for line in metrics_summary(worker.metrics_text()):
            print(f"  {line}")
    finally:
        await consumer.stop()
        await producer.stop()
        worker.stop()
        await _delete_topics(bootstrap, [*topics.all().values()], env["STREAMRANK_APP_ID"])


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


async def _delete_topics(bootstrap: str, names: list[str], app_id: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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
        asyncio.run(_demo(settings, broker.bootstrap_servers, users, rounds, Path(tmp)))
    return 0
