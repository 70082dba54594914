"""Load for `bench pipeline`: shoppers' searches and clicks, sent open-loop through the client
library, and what each step of load measured.

Open loop: search k is sent at start + k / rate whatever happened to the earlier ones, so a
slow worker shows up as latency, not as a politely slower load. Latency is measured from the
broker's acknowledgement of the search to the moment its result is read (one clock); the
worker's own share is published_ts - received_ts. A fraction of the results is clicked (an
action citing the request and position), so impressions get labels and samples flow.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from contracts import ActionEvent, Candidate, Item, RankedResult, SearchEvent
from streams.client import HttpRankingClient, RankingClient, Reply
from streams.tools.bench_probe import StageTimes

ANSWER_GRACE_S = 60.0  # how long after the last send every answer must have arrived


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


@dataclass
class Step:
    """One step of load: what was offered, what came back."""

    name: str
    offered_per_s: float
    searches: int
    seconds: float
    achieved_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    worker_p50_ms: float
    worker_p99_ms: float
    degraded: int
    reasons: dict[str, int] = field(default_factory=dict)
    stages: dict[str, StageTimes] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    def held(self, slo_ms: float) -> bool:
        """Within the SLO, nothing degraded, and the offered rate kept up with."""
        return (self.p99_ms <= slo_ms and not self.degraded
                and self.achieved_per_s >= 0.95 * self.offered_per_s)


def summarize(name: str, rate: float, results: list[tuple[float, RankedResult]],
              seconds: float) -> Step:
    """A Step from (latency ms, result) pairs."""
    latencies = [ms for ms, _ in results]
    own = [float(r.published_ts - r.received_ts) for _, r in results]
    reasons = Counter(r.degraded_reason or "unknown" for _, r in results if r.degraded)
    return Step(
        name=name, offered_per_s=round(rate, 1), searches=len(results),
        seconds=round(seconds, 2), achieved_per_s=round(len(results) / seconds, 1),
        p50_ms=percentile(latencies, 0.5), p99_ms=percentile(latencies, 0.99),
        max_ms=round(max(latencies), 1) if latencies else float("nan"),
        worker_p50_ms=percentile(own, 0.5), worker_p99_ms=percentile(own, 0.99),
        degraded=sum(reasons.values()), reasons=dict(reasons),
    )


class Traffic:
    """Shoppers: `users` users searching `candidates` items of `items` with fresh queries."""

    def __init__(self, items: list[Item], users: int, candidates: int, seed: int = 3) -> None:
        self.items = items
        self.rng = random.Random(seed)
        self.users = [f"bench-{k}" for k in range(users)]
        self.candidates = min(candidates, len(items))
        self.n = 0

    def search(self, tag: str = "s", pool: list[Item] | None = None,
               user: str | None = None) -> SearchEvent:
        self.n += 1
        chosen = self.rng.sample(pool or self.items, self.candidates)
        # A query never seen before: its encoding is paid, as a real new query's would be.
        words = self.rng.choice(chosen).title.split()[:3]
        return SearchEvent(
            event_id=f"{tag}-e{self.n}", request_id=f"{tag}-{self.n}",
            user_id=user or self.rng.choice(self.users), ts=int(time.time() * 1000),
            query=f"{' '.join(words)} {self.n}",
            candidates=[Candidate(item_id=i.item_id, retrieval_score=float(len(chosen) - k))
                        for k, i in enumerate(chosen)])

    def history(self, per_user: int) -> list[ActionEvent]:
        return [ActionEvent(event_id=f"h-{u}-{k}", user_id=u, ts=int(time.time() * 1000),
                            item_id=self.rng.choice(self.items).item_id, action="click")
                for u in self.users for k in range(per_user)]

    def click(self, result: RankedResult, probability: float) -> ActionEvent | None:
        """A click on one of the top five shown items, citing the search, or None."""
        if not result.items or self.rng.random() >= probability:
            return None
        position = self.rng.randrange(min(5, len(result.items)))
        self.n += 1
        return ActionEvent(event_id=f"c-{self.n}", user_id=result.user_id,
                           ts=int(time.time() * 1000), item_id=result.items[position].item_id,
                           action="click", request_id=result.request_id, position=position)


async def kafka_step(
    client: RankingClient, traffic: Traffic, name: str, rate: float, count: int, *,
    clicks: float = 0.1, tag: str = "s", pool: list[Item] | None = None,
    each_user: bool = False,
) -> tuple[Step, list[Reply]]:
    """`count` searches at `rate`/s through Kafka (`each_user`: one per user, in turn); every
    one must be answered."""
    searches = [traffic.search(tag, pool, traffic.users[k % len(traffic.users)]
                               if each_user else None) for k in range(count)]
    ids = [s.request_id for s in searches]
    client.expect(ids)  # awaited before the first is sent
    started = time.perf_counter()

    async def publish() -> None:
        for k, search in enumerate(searches):
            await asyncio.sleep(max(0.0, started + k / rate - time.perf_counter()))
            await client.send_search(search, expect=False)

    sender = asyncio.create_task(publish())
    replies: list[Reply] = []
    try:
        async for reply in client.replies(ids, count / rate + ANSWER_GRACE_S):
            replies.append(reply)
            action = traffic.click(reply.result, clicks)
            if action is not None:
                await client.send_action(action)
    finally:
        await sender
    seconds = max(time.perf_counter() - started, 1e-6)
    step = summarize(name, rate, [(r.latency_ms, r.result) for r in replies], seconds)
    return step, replies


async def http_step(
    client: HttpRankingClient, traffic: Traffic, name: str, rate: float, count: int,
    deadline_s: float,
) -> Step:
    """`count` searches at `rate`/s through POST /rank; `extra` holds the added latency (the
    HTTP round trip minus the worker's own time) at p50 and p99."""
    results: list[tuple[float, RankedResult]] = []
    started = time.perf_counter()

    async def one(search: SearchEvent) -> None:
        t0 = time.perf_counter()
        result = await client.rank(search, deadline_s)
        results.append(((time.perf_counter() - t0) * 1000, result))

    tasks = []
    for k in range(count):
        await asyncio.sleep(max(0.0, started + k / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(traffic.search("http"))))
    await asyncio.gather(*tasks)
    step = summarize(name, rate, results, time.perf_counter() - started)
    added = [ms - (r.published_ts - r.received_ts) for ms, r in results if not r.degraded]
    step.extra = {"added_p50_ms": percentile(added, 0.5), "added_p99_ms": percentile(added, 0.99)}
    return step


__all__ = ["Step", "Traffic", "http_step", "kafka_step", "percentile", "summarize"]
