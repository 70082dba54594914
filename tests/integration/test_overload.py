"""Overload: searches offered faster than the worker can score are all answered, none later
than its deadline once the worker read it (ranked, or degraded in the site's order with the
reason), the backlog and the worker's memory stay bounded, and ranked answers resume right
after. The worker scores one search per inference run here, so that 300 searches/s overload it
on any machine; the end-to-end promise (max age + deadline from production, which also needs
the machine to read searches as fast as they come) is measured by `bench pipeline`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from contracts import Candidate, SearchEvent
from streams.tools.simulation import catalog_items
from tests.integration.conftest import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ITEMS = catalog_items()
DEADLINE_MS, MAX_AGE_MS = 300, 500
RATE, SECONDS = 300, 6  # offered searches per second, and for how long
# A shared 2-core test machine can stall the event loop for a while: allowed on top of the
# deadline once read. End to end, without shedding the last search would wait the whole
# backlog (1,800 searches at a scorer's pace: well over BACKLOG_MS).
SLACK_MS = 1000
BACKLOG_MS = 8000
RSS_GROWTH_MB = 250


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def search(n: int, tag: str) -> SearchEvent:
    chosen = [ITEMS[(n + k) % len(ITEMS)] for k in range(20)]
    return SearchEvent(event_id=f"{tag}-{n}", request_id=f"{tag}-{n}", user_id=f"u-{n % 50}",
                       ts=int(time.time() * 1000), query=chosen[0].title,
                       candidates=[Candidate(item_id=i.item_id) for i in chosen])


async def test_overload_is_answered_within_deadlines_with_bounded_memory(
    deployment: Deployment,
) -> None:
    dep = deployment
    worker = dep.start_worker(STREAMRANK_SEARCH_DEADLINE_MS=str(DEADLINE_MS),
                              STREAMRANK_SEARCH_MAX_AGE_MS=str(MAX_AGE_MS),
                              STREAMRANK_BATCH_MAX_PAIRS="20")  # one search per run
    await worker.wait_ready()
    async with dep.client(fetch_max_wait_ms=5) as client:
        for item in ITEMS:
            await client.send_item(item)
        await client.flush()
        await worker.wait_for(lambda w: w.get("/scoring/")["warm"]["items"] >= len(ITEMS)
                              and w.get("/health/")["catalog_items"] == len(ITEMS), "warm", 120)
        assert not (await client.rank(search(0, "warm"), 30, fallback=False)).degraded
        before = rss_mb(worker.proc.pid)

        sent_ms: dict[str, float] = {}
        searches = [search(n, "load") for n in range(RATE * SECONDS)]
        client.expect([s.request_id for s in searches])
        start = time.perf_counter()
        peak = before
        for k, s in enumerate(searches):  # open loop: the offered rate, whatever the answers
            await asyncio.sleep(max(0.0, start + k / RATE - time.perf_counter()))
            sent_ms[s.request_id] = time.time() * 1000
            await client.send_search(s, expect=False)
            if k % RATE == 0:
                peak = max(peak, rss_mb(worker.proc.pid))
        replies = await client.results(list(sent_ms), 120)
        peak = max(peak, rss_mb(worker.proc.pid))

        own = {rid: r.result.published_ts - r.result.received_ts for rid, r in replies.items()}
        late = {rid: ms for rid, ms in own.items() if ms > DEADLINE_MS + SLACK_MS}
        assert not late, f"{len(late)} answered late once read, e.g. {list(late.items())[:5]}"
        waited = max(r.result.published_ts - sent_ms[rid] for rid, r in replies.items())
        assert waited < BACKLOG_MS, f"a search waited {waited:.0f} ms end to end"
        reasons = {r.result.degraded_reason for r in replies.values() if r.result.degraded}
        assert reasons and reasons <= {"stale", "queue_full", "timeout"}, reasons
        for reply in replies.values():
            if reply.result.degraded:  # unscored: the site's order, each candidate once
                shown = [i.item_id for i in reply.result.items]
                asked = searches[int(reply.result.request_id[5:])].candidates
                assert shown == [c.item_id for c in asked]
        assert peak - before < RSS_GROWTH_MB, (before, peak)

        # Right after: ranked again within seconds.
        recovered = None
        start = time.perf_counter()
        for n in range(100):
            answer = await client.rank(search(n, "after"), 5.0)
            if not answer.degraded:
                recovered = time.perf_counter() - start
                break
        assert recovered is not None and recovered < 15.0
        status = worker.get("/scoring/")
        assert sum(status["answers"].get(r, 0) for r in reasons) >= 1
        metrics = worker.metrics_text()
        assert 'streamrank_degraded_answers_total{reason="stale"}' in metrics or \
            'streamrank_degraded_answers_total{reason="queue_full"}' in metrics or \
            'streamrank_degraded_answers_total{reason="timeout"}' in metrics
