"""The replay through Kafka: a real broker, a real worker, the evaluator reading its answers.

What is published, keyed by user_id as any producer would:
- catalog: every movie a published event names, as `Movie.item()`;
- actions: each user's ratings in time order (rating grade 3/2/1 -> purchase/add_to_cart/
  click). Ratings older than the worker's sequence length before a user's first evaluated
  search are left out: they would have fallen out of the sequence anyway, so the state the
  worker ranks with is the same;
- searches: the evaluated test searches, with the replay's candidates and retriever scores.

Each evaluated search must see exactly the history the offline run gave the model, and not
its own action. Per user, therefore: publish the actions before the search, wait until the
worker's sequence shows the newest of them (GET /users/{id}/sequence/), publish the search,
wait for its RankedResult on streamrank.recommendations (streams/client's RankingClient.rank,
without the site-order fallback: a missing answer is an error here), and only then go on with
the action it is answered by. Users proceed concurrently (the worker's state is per user, so
their relative order does not change any answer); `rate` caps searches per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from contracts import ActionEvent, Candidate, RankedResult, SearchEvent, TopicNames
from evaluation.protocol import ACTION_OF_GRADE, Replay, Search, grade
from evaluation.results import Floats
from streams.client import RankingClient
from streams.kafka.connection import KafkaClients
from streams.tools.worker_process import WorkerProcess

log = logging.getLogger(__name__)

ACTIONS = ACTION_OF_GRADE


@dataclass
class KafkaRun:
    searches: list[Search]
    results: dict[str, RankedResult]
    seconds: float
    actions_published: int
    catalog_published: int
    model_version: str = ""
    provider: str = ""
    degraded: int = 0
    worker_ms_p50: float = 0.0
    notes: list[str] = field(default_factory=list)

    def scores(self) -> list[Floats]:
        """Each search's ranking as scores aligned with its candidates (rank 1 highest)."""
        out = []
        for s in self.searches:
            rank = {item.item_id: item.rank for item in self.results[s.request_id].items}
            out.append(np.array([-float(rank[m]) for m in s.candidates], dtype=np.float64))
        return out


def _plan(replay: Replay, searches: Sequence[Search], keep: int) -> dict[str, list[Any]]:
    """Per user: the ratings (as (index, Rating)) and searches to publish, in replay order."""
    wanted: dict[str, list[Search]] = defaultdict(list)
    for s in sorted(searches, key=lambda s: s.index):
        wanted[s.user_id].append(s)
    last = {u: ss[-1].index for u, ss in wanted.items()}
    ratings: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for i, r in enumerate(replay.data.ratings):
        if r.user_id in last and i < last[r.user_id]:
            ratings[r.user_id].append((i, r))
    plan: dict[str, list[Any]] = {}
    for user, found in wanted.items():
        first = found[0].index
        mine = ratings[user]
        before = [x for x in mine if x[0] < first][-keep:]
        events: list[Any] = [*before, *[x for x in mine if x[0] >= first], *found]
        # Replay order; a search sorts before the rating it is answered by (same index).
        events.sort(key=lambda e: (e.index, 0) if isinstance(e, Search) else (e[0], 1))
        plan[user] = events
    return plan


async def run_replay(
    replay: Replay,
    searches: Sequence[Search],
    *,
    bootstrap: KafkaClients | str,
    env: dict[str, str],
    log_path: Path,
    rate: float | None = None,
    concurrency: int = 32,
    timeout_s: float = 120.0,
    progress: bool = True,
) -> KafkaRun:
    """Start a worker with `env` (STREAMRANK_* variables), replay, stop the worker.
    `bootstrap`: the broker's clients, or the address of a PLAINTEXT one (the local broker)."""
    clients = bootstrap if isinstance(bootstrap, KafkaClients) else KafkaClients.plaintext(
        bootstrap)
    topics = TopicNames(env.get("STREAMRANK_TOPIC_PREFIX", "streamrank."))
    keep = int(env.get("STREAMRANK_SEQUENCE_LENGTH", "20"))
    plan = _plan(replay, searches, keep)
    movies = replay.data.movies
    needed = {m for s in searches for m in s.candidates}
    needed |= {e[1].movie_id for events in plan.values() for e in events if isinstance(e, tuple)}
    worker = WorkerProcess(env, log_path)
    results: dict[str, RankedResult] = {}
    bar = tqdm(total=len(searches), desc="kafka replay", unit="search", disable=not progress,
               mininterval=1.0)
    pacer = _Pacer(rate)
    published = 0

    async def applied(user: str, event_id: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                seq = await asyncio.to_thread(worker.get, f"/users/{user}/sequence/")
                entries = seq.get("entries") or []
                if entries and entries[0]["event_id"] == event_id:
                    return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"action {event_id} not applied after {timeout_s:.0f}s; "
                           f"see {log_path}")

    async def user_task(
        client: RankingClient, user: str, events: list[Any], gate: asyncio.Semaphore
    ) -> None:
        nonlocal published
        async with gate:
            last_action: str | None = None
            for event in events:
                if isinstance(event, tuple):
                    i, r = event
                    action = ActionEvent(
                        event_id=f"mla-{i}", user_id=user, ts=r.ts * 1000, item_id=r.movie_id,
                        action=ACTIONS[grade(r.rating)],  # type: ignore[arg-type]
                    )
                    await client.send_action(action)
                    last_action = action.event_id
                    published += 1
                    continue
                s: Search = event
                if last_action is not None:
                    await client.flush()
                    await applied(user, last_action)
                await pacer.wait()
                search = SearchEvent(
                    event_id=f"mls-{s.index}", request_id=s.request_id, user_id=user, ts=s.ts,
                    query=s.query,
                    candidates=[Candidate(item_id=m, retrieval_score=sc)
                                for m, sc in zip(s.candidates, s.retrieval_scores, strict=True)],
                )
                # No fallback: quality is measured on the worker's answers, never the site's.
                results[s.request_id] = await client.rank(search, timeout_s, fallback=False)
                bar.update(1)

    started = time.perf_counter()
    try:
        await worker.wait_ready(240)  # the worker creates the topics with its partition count
        async with RankingClient(clients, topics, producer_options={"linger_ms": 5},
                                 fetch_max_wait_ms=20) as client:
            for movie_id in sorted(needed):
                await client.send_item(movies[movie_id].item())
            await client.flush()
            await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] >= len(needed),
                                  "catalog", 300)
            gate = asyncio.Semaphore(concurrency)
            await asyncio.gather(*(user_task(client, u, ev, gate) for u, ev in plan.items()))
        health = worker.get("/health/")
    finally:
        bar.close()
        worker.stop()
    ordered = [results[s.request_id] for s in searches]
    worker_ms = [r.published_ts - r.received_ts for r in ordered]
    return KafkaRun(
        searches=list(searches), results=results,
        seconds=round(time.perf_counter() - started, 1), actions_published=published,
        catalog_published=len(needed), model_version=str(health.get("model_version", "")),
        provider=str(health.get("provider", "")),
        degraded=sum(r.degraded for r in ordered),
        worker_ms_p50=float(np.median(worker_ms)) if worker_ms else 0.0,
    )


class _Pacer:
    """At most `rate` searches per second overall (None: as fast as answers come)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            self.next = max(self.next, now)
            delay = self.next - now
            self.next += self.interval
        if delay > 0:
            await asyncio.sleep(delay)


__all__ = ["KafkaRun", "run_replay"]
