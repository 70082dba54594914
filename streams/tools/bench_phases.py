"""The phases of `bench pipeline`, each against the running worker (streams/tools/pipeline_bench.py
runs them in order and writes the report).

- catalog warm-up: items published until every one is embedded (the worker's /scoring/);
- sustained capacity: open-loop steps at rising rates (x1.15) with clicks, impressions closing
  after a short attribution window and samples written, until p99 > SLO or anything degraded;
  the last step that held is the capacity, with its per-stage times from /metrics;
- warm-up burst: searches while new items warm;
- action ingest: actions citing recent searches as fast as the client sends them;
- POST /rank at half capacity: the latency it adds over the worker's own time;
- overload: 3x capacity, then light probes until latency is back to normal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from contracts import ActionEvent, Item
from streams.client import HttpRankingClient, RankingClient
from streams.tools.bench_load import Step, Traffic, http_step, kafka_step, percentile
from streams.tools.bench_probe import MemoryTrace, stage_times
from streams.tools.worker_process import WorkerProcess

log = logging.getLogger(__name__)

RISE = 1.15  # each capacity step offers this much more than the last
MAX_STEPS = 14


@dataclass
class Context:
    """What every phase uses."""

    worker: WorkerProcess
    client: RankingClient
    traffic: Traffic
    memory: MemoryTrace
    topics_action: str
    slo_ms: float
    step_s: float
    notes: dict[str, Any] = field(default_factory=dict)

    def phase(self, name: str) -> None:
        self.memory.phase = name
        log.info("bench phase: %s", name)


async def wait_warm(ctx: Context, expected_items: int, timeout_s: float = 900.0) -> float:
    """Seconds until the worker knows and has embedded `expected_items` items in all."""
    started = time.perf_counter()

    def warm(w: WorkerProcess) -> bool:
        status = w.get("/scoring/")["warm"]
        return bool(w.get("/health/")["catalog_items"] >= expected_items
                    and status["pending"] == 0 and status["items"] >= expected_items)

    await ctx.worker.wait_for(warm, f"{expected_items} items warm", timeout_s)
    return round(time.perf_counter() - started, 1)


async def publish_items(client: RankingClient, items: list[Item]) -> None:
    for item in items:
        await client.send_item(item)
    await client.flush()


async def catalog_warmup(ctx: Context, items: list[Item]) -> dict[str, float]:
    ctx.phase("catalog")
    started = time.perf_counter()
    await publish_items(ctx.client, items)
    seconds = await wait_warm(ctx, len(items))
    status = ctx.worker.get("/scoring/")["warm"]
    return {"items": len(items), "seconds": round(time.perf_counter() - started, 1),
            "items_per_s": round(len(items) / max(seconds, 1e-6), 1),
            "ms_per_item": status["ms_per_item"]}


async def users_seen(ctx: Context, rate: float = 20.0) -> None:
    """Every user searches once, unmeasured: their histories are encoded and cached, as in a
    worker that has been serving them (a fresh query still costs its encoding every time)."""
    ctx.phase("users")
    users = ctx.traffic.users
    await kafka_step(ctx.client, ctx.traffic, "users", rate, len(users), clicks=0.0,
                     tag="first", each_user=True)


async def measured_step(ctx: Context, name: str, rate: float, seconds: float,
                        **kw: Any) -> Step:
    """A Kafka step with the worker's stage times over exactly that step."""
    before = ctx.worker.metrics_text()
    step, _ = await kafka_step(ctx.client, ctx.traffic, name, rate,
                               max(20, round(rate * seconds)), **kw)
    step.stages = stage_times(before, ctx.worker.metrics_text())
    log.info("%s: %s/s offered, %s/s achieved, p50 %s ms, p99 %s ms, %d degraded %s",
             name, step.offered_per_s, step.achieved_per_s, step.p50_ms, step.p99_ms,
             step.degraded, step.reasons)
    return step


async def sustained(ctx: Context, start_rate: float) -> tuple[Step | None, list[Step]]:
    """Open-loop steps from `start_rate`: halved until one holds, then rising x1.15 until one
    breaks the SLO; (the last that held, every step)."""
    ctx.phase("sustained")
    steps: list[Step] = []
    held: Step | None = None
    rate = start_rate
    for n in range(MAX_STEPS):
        step = await measured_step(ctx, f"sustained {n + 1}", rate, ctx.step_s)
        steps.append(step)
        await asyncio.sleep(2.0)  # let attribution windows of the step close
        if step.held(ctx.slo_ms):
            held = step
            rate *= RISE
        elif held is None and rate > 2.0:
            await settle(ctx)
            rate /= 2  # the start was above capacity: find a rate that holds first
        else:
            break
    await settle(ctx)
    return held, steps


async def warm_burst(ctx: Context, warm: list[Item], new: list[Item], burst: int,
                     rate: float) -> tuple[Step, dict[str, float]]:
    """`burst` searches over warm items at `rate`/s while `new` items arrive and warm."""
    ctx.phase("warm-up burst")
    await settle(ctx)
    started = time.perf_counter()
    await publish_items(ctx.client, new)
    step = await measured_step(ctx, f"burst of {burst} while {len(new)} items warm", rate,
                               burst / rate, pool=warm, tag="burst")
    warm_s = await wait_warm(ctx, len(warm) + len(new))
    return step, {"new_items": len(new),
                  "warm_seconds": round(time.perf_counter() - started, 1),
                  "after_burst_s": warm_s}


async def action_ingest(ctx: Context, count: int, rate: float) -> dict[str, float]:
    """`count` actions citing searches of the last seconds (attribution at work), sent as fast
    as one client sends; how fast the worker applies them."""
    ctx.phase("actions")
    _, replies = await kafka_step(ctx.client, ctx.traffic, "searches to cite", rate,
                                  max(50, round(rate * 2)), clicks=0.0, tag="cited")
    shown = [(r.result.request_id, r.result.user_id, r.result.items) for r in replies]
    actions = []
    rng = ctx.traffic.rng
    for n in range(count):
        rid, user, items = shown[n % len(shown)]
        position = rng.randrange(len(items))
        actions.append(ActionEvent(
            event_id=f"ingest-{n}", user_id=user, ts=int(time.time() * 1000),
            item_id=items[position].item_id, action=rng.choice(["view", "click", "add_to_cart"]),
            request_id=rid, position=position))
    before = applied_actions(ctx.worker)
    async with RankingClient(ctx.client.clients, ctx.client.topics, listen=False,
                             producer_options={"linger_ms": 5,
                                               "max_batch_size": 512 * 1024}) as sender:
        started = time.perf_counter()
        for action in actions:
            await sender.send_action(action)
        await sender.flush()
        sent_s = time.perf_counter() - started

    await ctx.worker.wait_for(lambda w: applied_actions(w) - before >= count,
                              f"{count} actions applied", 900)
    seconds = time.perf_counter() - started
    attribution = ctx.worker.get("/health/")["attribution"]
    await settle(ctx)
    return {"actions": count, "send_seconds": round(sent_s, 2), "seconds": round(seconds, 2),
            "actions_per_s": round(count / seconds, 1), "attribution": attribution}


def applied_actions(worker: WorkerProcess) -> int:
    """Actions the worker has applied (attributed or not): read from its attribution counts,
    which move when an action is processed, not when it is fetched."""
    counts = worker.get("/health/")["attribution"]
    return sum(int(v) for k, v in counts.items() if k.startswith("actions_"))


async def settle(ctx: Context, rate: float = 5.0) -> None:
    """Until a few searches in a row are answered ranked within the SLO: the worker is
    through whatever the last phase left behind."""
    for _ in range(120):
        step, _ = await kafka_step(ctx.client, ctx.traffic, "settle", rate, 5, clicks=0.0,
                                   tag="settle")
        if not step.degraded and step.p99_ms <= ctx.slo_ms:
            return
    log.warning("the worker did not settle after the last phase")


async def rank_overhead(ctx: Context, url: str, rate: float, seconds: float,
                        deadline_s: float) -> tuple[Step, Step]:
    """POST /rank and the Kafka path at the same rate: (HTTP step, Kafka step)."""
    ctx.phase("rank api")
    await settle(ctx)
    kafka = await measured_step(ctx, f"Kafka path at {rate:.0f}/s", rate, seconds)
    async with HttpRankingClient(url) as http:
        before = ctx.worker.metrics_text()
        step = await http_step(http, ctx.traffic, f"POST /rank at {rate:.0f}/s", rate,
                               max(20, round(rate * seconds)), deadline_s)
        step.stages = stage_times(before, ctx.worker.metrics_text())
    step.extra["vs_kafka_p50_ms"] = round(step.p50_ms - kafka.p50_ms, 1)
    return step, kafka


async def overload(ctx: Context, rate: float, seconds: float, probe_rate: float,
                   bound_ms: float) -> tuple[Step, dict[str, Any]]:
    """`rate`/s for `seconds`, then probes at `probe_rate`/s in one-second windows until one
    is back to normal (p99 <= SLO, nothing degraded)."""
    ctx.phase("overload")
    await settle(ctx)
    step, replies = await kafka_step(ctx.client, ctx.traffic, f"overload {rate:.0f}/s", rate,
                                     round(rate * seconds), tag="over")
    late = [r.latency_ms for r in replies if r.latency_ms > bound_ms + 100]
    ended = time.perf_counter() - max(0.0, step.seconds - seconds)  # when the last was sent
    ctx.phase("recovery")
    windows: list[dict[str, float]] = []
    recovered_s: float | None = None
    for _ in range(60):
        probe, _ = await kafka_step(ctx.client, ctx.traffic, "probe", probe_rate,
                                    max(3, round(probe_rate)), tag="probe")
        since = round(time.perf_counter() - ended, 1)
        windows.append({"since_end_s": since, "p99_ms": probe.p99_ms,
                        "degraded": probe.degraded})
        if probe.p99_ms <= ctx.slo_ms and not probe.degraded:
            recovered_s = since
            break
    lags = [r.latency_ms for r in replies]
    return step, {
        "bound_ms": bound_ms, "answered": len(replies),
        "over_bound_plus_100ms": len(late), "latency_p99_ms": percentile(lags, 0.99),
        "latency_max_ms": round(max(lags), 1) if lags else None,
        "recovered_after_s": recovered_s, "probes": windows,
    }


__all__ = ["Context", "action_ingest", "catalog_warmup", "overload", "rank_overhead",
           "sustained", "users_seen", "warm_burst"]
