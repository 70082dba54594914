"""The learning loop through the real broker: simulated shoppers search and click, the worker
captures labelled samples, `streamrank train` (tiny budget) installs and announces a new
version, every worker swaps to it while searches keep being answered, and
`streamrank model rollback` brings the old one back."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from contracts import RankedResult, SearchEvent, TrainingSample
from streams.client import RankingClient
from streams.kafka.broker_config import free_port
from streams.tools.simulation import catalog_items, shoppers
from streams.tools.traffic import Traffic, drive, wait_for_samples
from streams.tools.worker_process import WorkerProcess
from tests.integration.conftest import Deployment
from tests.integration.helpers import streamrank

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ITEMS = catalog_items()
FAST = {
    "STREAMRANK_ATTRIBUTION_WINDOW_S": "2",
    "STREAMRANK_IMPRESSION_TTL_S": "120",
    "STREAMRANK_ATTRIBUTION_TICK_S": "0.5",
    "STREAMRANK_SESSION_TIMEOUT_S": "6",
    # The trainer's torch export shares this small machine with both workers: a search slower
    # than the default second would be answered degraded for want of CPU, not because of the
    # swap this test is about.
    "STREAMRANK_SCORE_TIMEOUT_MS": "15000",
}
TRAIN = ["--rule", "always", "--steps", "20", "--lists-per-step", "8", "--min-train-lists", "10",
         "--min-holdout-lists", "5", "--bootstrap-rounds", "200", "--quiet"]


def check_samples(samples: list[TrainingSample], traffic: Traffic) -> None:
    """One sample per search, its items as shown, labelled by what was clicked."""
    by_request = Counter(s.request_id for s in samples)
    assert set(by_request.values()) == {1}, "a search sampled twice"
    assert set(by_request) == set(traffic.results)
    clicks = 0
    for s in samples:
        result = traffic.results[s.request_id]
        assert [i.item_id for i in s.items] == [i.item_id for i in result.items]
        assert [i.shown_score for i in s.items] == [i.score for i in result.items]
        for item in s.items:
            clicked = item.item_id in traffic.clicks[s.request_id]
            clicks += clicked
            assert (item.label, item.action) == ((1.0, "click") if clicked else (0.0, "skipped"))
        assert s.model_version == result.model_version
        assert s.query == traffic.searches[s.request_id].query
    assert clicks == sum(len(c) for c in traffic.clicks.values()) > 0


class Searches:
    """Searches sent steadily in the background while the model changes; their results
    are kept by the client until `answers`."""

    def __init__(self, client: RankingClient) -> None:
        self.client = client
        self.sent: dict[str, float] = {}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        crowd = list(shoppers(8, seed=11, prefix="swap"))
        n = 0
        while not self.stop.is_set():
            shopper = crowd[n % len(crowd)]
            search: SearchEvent = shopper.search(int(time.time() * 1000))
            await self.client.publish_search(search)
            self.sent[search.request_id] = time.monotonic()
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.3)

    async def answers(self, timeout_s: float) -> dict[str, RankedResult]:
        replies = await self.client.results(self.sent, timeout_s)
        return {rid: reply.result for rid, reply in replies.items()}


async def test_captured_samples_train_a_version_every_worker_serves(
    deployment: Deployment, models_dir: Path, tmp_path: Path
) -> None:
    dep = deployment
    registry = tmp_path / "registry"  # this test's versions stay out of the shared cache
    registry.mkdir()
    (registry / "zeroshot-minilm").symlink_to(models_dir / "zeroshot-minilm")
    env = {**dep.env, **FAST, "STREAMRANK_MODELS_DIR": str(registry)}
    first = dep.start_worker(**env)
    second: WorkerProcess | None = None
    stack = contextlib.AsyncExitStack()
    try:
        await first.wait_ready(180)
        async with dep.client(listen=False) as client:
            for item in ITEMS:
                await client.publish_item(item)
        await first.wait_for(lambda w: w.get("/health/")["catalog_items"] == len(ITEMS),
                             "catalog")
        old = first.get("/health/")["model_version"]
        assert old.startswith("zeroshot-")

        # 1. Shoppers search and click; the worker captures what it showed and what it got.
        traffic = await drive(dep.clients, dep.topics, users=24, rounds=4,
                              publish_catalog=False, settle_s=0.5)
        assert traffic.degraded == 0 and len(traffic.results) == 96
        samples = await wait_for_samples(dep.clients, dep.topics.samples,
                                         set(traffic.searches), timeout_s=90)
        check_samples(samples, traffic)

        # A second worker joins the group: the rollout must reach every worker. (It joins
        # only now because each worker's catalog GlobalTable holds just the catalog
        # partitions it was assigned when several start together; the capture checks above
        # need every item's text.)
        second = WorkerProcess(
            {**env, "STREAMRANK_STATE_DIR": str(tmp_path / "state-2"),
             "STREAMRANK_WEB_PORT": str(free_port())}, tmp_path / "worker-second.log")
        workers = [first, second]
        for w in workers:
            await w.wait_ready(180)

        # 2. Train while searches keep coming; the new version reaches every worker.
        # Kept until the end: the training run takes minutes on a small machine.
        background = Searches(await stack.enter_async_context(dep.client(keep_s=3600)))
        task = asyncio.create_task(background.run())
        out = await streamrank(env, "train", *TRAIN, "--report-dir", str(tmp_path / "reports"),
                               timeout=600)
        found = re.search(r"published ModelUpdate (embed-[0-9a-f]{8})", out)
        assert found, out[-3000:]
        new = found.group(1)
        assert (registry / new / "manifest.json").is_file()
        assert list((tmp_path / "reports").glob("*/report.md")), "no report written"
        for w in workers:
            await w.wait_for(lambda w: w.get("/health/")["model_version"] == new,
                             f"worker serving {new}", 180)
        swapped_at = time.monotonic()
        await asyncio.sleep(3)  # searches after the swap too
        background.stop.set()
        await task

        answered = await background.answers(120)
        assert not [r for r in answered.values() if r.degraded], "a search failed in the swap"
        versions = {r.model_version for r in answered.values()}
        assert versions <= {old, new} and new in versions
        late = [r for rid, r in answered.items() if background.sent[rid] > swapped_at + 0.5]
        assert late and all(r.model_version == new for r in late)

        # 3. Rollback: the earlier version is announced again and served again everywhere.
        out = await streamrank(env, "model", "rollback", "zeroshot-minilm", timeout=120)
        assert f"published ModelUpdate {old}" in out
        for w in workers:
            await w.wait_for(lambda w: w.get("/health/")["model_version"] == old,
                             "rolled back", 120)
            assert w.get("/health/")["model_refusals"] == 0
    finally:
        await stack.aclose()
        if second is not None:
            second.stop()
