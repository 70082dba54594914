"""`streamrank bench pipeline`: what a deployment lives with, through a real broker and worker.

One run, on the same model version and product texts as `bench scorer` (embed by default, its
variant decided at load as a worker decides it, 50 candidates, real product titles):

1. scorer alone: the micro-batcher's capacity at the SLO in this process (bench scorer's
   method), before the worker starts, on the same catalog;
2. catalog warm-up: --items products published to a fresh worker, timed until every one is
   embedded; users get a history;
3. sustained capacity through Kafka: open-loop steps at rising rates with the learning loop on
   (clicks on a tenth of the results, impressions closing after a short attribution window,
   samples written) until p99 (producer acknowledgement to result read) exceeds --slo or
   anything is degraded; the per-stage times of the last step that held;
4. a burst of --burst searches at half that capacity while --new-items items warm;
5. action ingest with attribution on;
6. POST /rank at half capacity: the latency it adds over the worker's own time;
7. overload: 3x capacity for --overload, then the time until latency is back to normal;
the worker's resident memory is sampled throughout. Prints markdown; --out writes .md and
.json with a top-level `capacity` object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from contracts import Item, TopicNames
from scoring import ModelRegistry
from scoring.kinds import ModelKind
from streams.client import RankingClient
from streams.kafka.connection import KafkaClients
from streams.kafka.local_broker import broker_for_session
from streams.settings import Settings
from streams.tools import bench_phases as phases
from streams.tools.bench_load import Traffic
from streams.tools.bench_probe import MemoryTrace
from streams.tools.bench_report import Report, render, write
from streams.tools.products import sample_products
from streams.tools.simulation import catalog_items
from streams.tools.worker_process import WorkerProcess, worker_env

log = logging.getLogger(__name__)

PARTITIONS = 2
CLICK_RATE = 0.1
ATTRIBUTION_WINDOW_S = 5.0


@dataclasses.dataclass(frozen=True)
class Options:
    products: Path
    kind: ModelKind = ModelKind.EMBED
    port: int = 9092
    items: int = 3000
    new_items: int = 3000
    users: int = 200
    candidates: int = 50
    slo_ms: float = 50.0
    step_s: float = 15.0
    burst: int = 1000
    actions: int = 30_000
    overload_s: float = 60.0
    deadline_ms: float = 200.0
    max_age_ms: float = 300.0
    out: Path | None = None


def load_products(path: Path, limit: int, seed: int = 1) -> list[Item]:
    """`limit` products of the file (the text the worker scores), else the built-in ones."""
    return sample_products(path, limit, seed) if path.exists() else catalog_items()


def model_version(settings: Settings, kind: ModelKind) -> Path:
    """The version both the scorer-alone phase and the worker serve: the configured one, else
    the newest of `kind`, else an untrained base exported now (needs the train extra)."""
    registry = ModelRegistry(settings.models_dir)
    if settings.model_version:
        return registry.resolve(settings.model_version)
    found = registry.latest(kind.value)
    if found is not None:
        return found
    from scoring.training.export_ranker import ensure_base_ranker

    return ensure_base_ranker(kind, settings.models_dir)


def scorer_alone(version: Path, items: list[Item], opts: Options) -> dict[str, Any]:
    """Capacity of the scorer through a micro-batcher in this process (bench scorer's rule)."""
    from streams.tools import scorer_bench as sb  # torch: only for this phase
    from streams.tools.behaviour_workload import USERS

    scorer = ModelRegistry(version.parent).load(version, device="cpu")
    reqs = sb.workload(items, 6000, opts.candidates, seed=7)
    if scorer.caches_items:
        scorer.warm_items([(i.item_id, i.text()) for i in items])
    for start in range(0, USERS, 8):  # users' histories seen, as in a running worker
        scorer.score(reqs[start : start + 8])
    fresh = sb.Fresh(reqs[USERS:])
    t0 = time.perf_counter()
    probe = fresh.take(64)
    for k in range(0, len(probe), 8):
        scorer.score(probe[k : k + 8])
    best = len(probe) / (time.perf_counter() - t0)
    cap = sb.capacity(opts.kind.value, scorer.variant_decision.variant, scorer, fresh,
                      max(1.0, 0.25 * best), opts.slo_ms, max(3.0, opts.step_s / 3),
                      opts.candidates * 8)
    return {"searches_per_s": cap.searches_per_s, "p50_ms": cap.p50_ms, "p99_ms": cap.p99_ms,
            "variant": scorer.variant_decision.variant, "version": version.name}


async def run(opts: Options, settings: Settings, clients: KafkaClients, tmp: Path,
              version: Path, report: Report) -> None:
    items = load_products(opts.products, opts.items + opts.new_items)
    warm, new = items[: opts.items], items[opts.items :]
    env = {
        **worker_env(clients, tmp / "state", uuid.uuid4().hex[:8],
                     models_dir=settings.models_dir, app_prefix="bench",
                     partitions=PARTITIONS),
        "STREAMRANK_SCORER": opts.kind.value, "STREAMRANK_MODEL_VERSION": version.name,
        "STREAMRANK_ATTRIBUTION_WINDOW_S": str(ATTRIBUTION_WINDOW_S),
        "STREAMRANK_IMPRESSION_TTL_S": "120", "STREAMRANK_ATTRIBUTION_TICK_S": "0.5",
        "STREAMRANK_SEARCH_DEADLINE_MS": str(opts.deadline_ms),
        "STREAMRANK_SEARCH_MAX_AGE_MS": str(opts.max_age_ms),
        "STREAMRANK_RANK_DEADLINE_MS": str(max(opts.deadline_ms, 1000.0)),
        "STREAMRANK_LOG_LEVEL": "warning",
    }
    topics = TopicNames(env["STREAMRANK_TOPIC_PREFIX"])
    traffic = Traffic(warm, opts.users, opts.candidates)
    worker = WorkerProcess(env, tmp / "worker.log")
    memory = MemoryTrace()
    sampler = asyncio.create_task(memory.run(worker))
    try:
        await worker.wait_ready(300)
        health = worker.get("/health/")
        report.meta.update(model_version=health["model_version"], provider=health["provider"],
                           variant=health["variant"]["variant"])
        async with RankingClient(clients, topics, fetch_max_wait_ms=5) as client:
            ctx = phases.Context(worker, client, traffic, memory, topics.action, opts.slo_ms,
                                 opts.step_s)
            report.catalog = await phases.catalog_warmup(ctx, warm)
            for action in traffic.history(per_user=5):
                await client.send_action(action)
            await client.flush()
            await phases.users_seen(ctx)
            start = max(5.0, 0.5 * report.scorer.get("searches_per_s", 0.0))
            report.held, report.sustained = await phases.sustained(ctx, start)
            capacity = report.held.offered_per_s if report.held else start / 2
            half = max(1.0, capacity / 2)
            report.warm_burst, report.warm = await phases.warm_burst(ctx, warm, new,
                                                                     opts.burst, half)
            report.actions = await phases.action_ingest(ctx, opts.actions, half)
            report.rank_http, report.rank_kafka = await phases.rank_overhead(
                ctx, f"http://127.0.0.1:{worker.web_port}", half, opts.step_s,
                max(opts.deadline_ms, 1000.0) / 1000)
            report.overload, report.recovery = await phases.overload(
                ctx, 3 * capacity, opts.overload_s, max(2.0, capacity / 10),
                opts.max_age_ms + opts.deadline_ms)
        report.meta["answers"] = worker.get("/scoring/")["answers"]
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        report.memory = {"by_phase": memory.by_phase(), "peak_mb": memory.peak(),
                         "samples": memory.samples}
        worker.stop()


def run_pipeline_bench(settings: Settings, opts: Options) -> int:
    version = model_version(settings, opts.kind)
    report = Report(meta={
        "kind": opts.kind.value, "items": opts.items, "users": opts.users,
        "candidates": opts.candidates, "partitions": PARTITIONS,
        "catalog": str(opts.products) if opts.products.exists() else "built-in",
        "slo_ms": opts.slo_ms, "step_s": opts.step_s, "deadline_ms": opts.deadline_ms,
        "max_age_ms": opts.max_age_ms, "attribution_window_s": ATTRIBUTION_WINDOW_S,
        "click_rate": CLICK_RATE, "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    })
    items = load_products(opts.products, opts.items)
    report.scorer = scorer_alone(version, items, opts)
    log.info("scorer alone: %s", report.scorer)
    with (
        tempfile.TemporaryDirectory(prefix="streamrank-bench-") as tmp,
        broker_for_session(opts.port, Path(tmp)) as broker,
    ):
        clients = KafkaClients.plaintext(broker.bootstrap_servers)
        asyncio.run(run(opts, settings, clients, Path(tmp), version, report))
    report.meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render(report))
    if opts.out is not None:
        write(report, opts.out)
    return 0


__all__ = ["Options", "run_pipeline_bench"]
