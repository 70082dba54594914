"""Simulated shoppers against a running deployment: the learning loop's traffic.

`streamrank simulate` (and the learning-loop integration test) drives streams/tools/simulation.py's
shoppers through real topics: every shopper has one liked department (a stable, learnable
preference), half of them arrive with a few earlier clicks, each round every shopper
searches, reads the worker's RankedResult and clicks liked items near its top. The worker
captures those rankings and clicks as TrainingSamples once their attribution window closes;
`wait_for_samples` waits for them, so `streamrank train` can run straight after.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts import RankedResult, SearchEvent, TopicNames, TrainingSample, decode
from streams.client import RankingClient
from streams.kafka.connection import KafkaClients
from streams.tools.simulation import Shopper, catalog_items, liked_share, shoppers

log = logging.getLogger(__name__)


@dataclass
class Traffic:
    """What a drive sent and got back."""

    searches: dict[str, SearchEvent] = field(default_factory=dict)
    results: dict[str, RankedResult] = field(default_factory=dict)
    clicks: dict[str, set[str]] = field(default_factory=dict)  # request_id -> clicked items
    shares: dict[tuple[int, bool], list[float]] = field(default_factory=dict)
    versions: Counter[str] = field(default_factory=Counter)

    @property
    def degraded(self) -> int:
        return sum(1 for r in self.results.values() if r.degraded)

    def summary(self) -> str:
        lines = [f"{len(self.searches)} searches, {len(self.results)} results "
                 f"({self.degraded} degraded), "
                 f"{sum(len(c) for c in self.clicks.values())} clicks; "
                 f"models: {dict(self.versions)}",
                 "share of the top 3 from the liked department (chance ≈ 0.17):"]
        rounds = sorted({r for r, _ in self.shares})
        for rnd in rounds:
            ret = statistics.mean(self.shares.get((rnd, True), [0.0]))
            new = statistics.mean(self.shares.get((rnd, False), [0.0]))
            lines.append(f"  round {rnd}: returning {ret:.2f}   new {new:.2f}")
        return "\n".join(lines)


async def drive(
    clients: KafkaClients,
    topics: TopicNames,
    *,
    users: int,
    rounds: int,
    seed: int = 7,
    prefix: str = "sim",
    publish_catalog: bool = True,
    settle_s: float = 1.0,
    timeout_s: float = 60.0,
    on_round: Callable[[int, Traffic], None] | None = None,
) -> Traffic:
    """Run `rounds` rounds of `users` shoppers; returns everything sent and received."""
    traffic = Traffic()
    crowd = list(shoppers(users, seed=seed, prefix=prefix))
    returning = {s.user_id for s in crowd[: users // 2]}
    async with RankingClient(clients, topics) as client:
        if publish_catalog:
            for item in catalog_items():
                await client.send_item(item)
        now = int(time.time() * 1000)
        for shopper in crowd:
            if shopper.user_id in returning:
                for action in shopper.warm_up(now):
                    await client.send_action(action)
        await client.flush()
        await asyncio.sleep(settle_s)  # the catalog and earlier clicks reach the worker first
        for rnd in range(1, rounds + 1):
            await _round(rnd, crowd, returning, client, traffic, timeout_s)
            if on_round is not None:
                on_round(rnd, traffic)
            await asyncio.sleep(settle_s)  # this round's clicks reach the users' sequences
    return traffic


async def _round(
    rnd: int, crowd: list[Shopper], returning: set[str], client: RankingClient,
    traffic: Traffic, timeout_s: float,
) -> None:
    by_user = {s.user_id: s for s in crowd}
    sent: list[str] = []
    for shopper in crowd:
        search = shopper.search(int(time.time() * 1000))
        traffic.searches[search.request_id] = search
        sent.append(search.request_id)
        await client.send_search(search)
    await client.flush()
    async for reply in client.replies(sent, timeout_s):
        result = reply.result
        search = traffic.searches[result.request_id]
        traffic.results[result.request_id] = result
        traffic.versions[result.model_version] += 1
        shopper = by_user[result.user_id]
        ranked = [i.item_id for i in result.items]
        key = (rnd, shopper.user_id in returning)
        traffic.shares.setdefault(key, []).append(liked_share(shopper.likes, ranked))
        actions = shopper.react(search, ranked, int(time.time() * 1000))
        traffic.clicks[result.request_id] = {a.item_id for a in actions}
        for action in actions:
            await client.send_action(action)
    await client.flush()


async def wait_for_samples(
    clients: KafkaClients, topic: str, request_ids: set[str], *, timeout_s: float = 120.0
) -> list[TrainingSample]:
    """The committed samples of `request_ids`, once every one of them has some."""
    consumer = clients.consumer(topic, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    found: list[TrainingSample] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not request_ids <= seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"samples of {len(request_ids - seen)} searches missing "
                                   f"after {timeout_s:.0f}s")
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in records:
                    sample = decode(rec.value, TrainingSample)
                    if sample.request_id in request_ids:
                        found.append(sample)
                        seen.add(sample.request_id)
        # A window closes whole (one transaction), so a request seen is a request complete.
        return found
    finally:
        await consumer.stop()


__all__ = ["Traffic", "drive", "wait_for_samples"]
