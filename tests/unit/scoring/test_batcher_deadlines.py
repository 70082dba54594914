"""MicroBatcher: a search's own deadline, refusal when the work ahead cannot clear in time, and
background work that runs only while no search waits. ManualClock time, as in test_batcher."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from scoring.batcher import EXPLAIN, SCORE_DEADLINE, MicroBatcher
from scoring.serving import ScorerSlot
from tests.unit.scoring.conftest import FakeScorer, ManualClock, request
from tests.unit.scoring.test_batcher import _settle, _until


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def batcher(scorer: FakeScorer, clock: ManualClock) -> AsyncIterator[MicroBatcher]:
    b = MicroBatcher(ScorerSlot(scorer), clock=clock, max_wait_ms=0, timeout_ms=1000,
                     max_batch_pairs=4)
    b.start()
    yield b
    scorer.gate.set()
    await b.stop()


async def test_the_search_deadline_replaces_the_longer_timeout(
    batcher: MicroBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    scorer.gate.clear()
    token = SCORE_DEADLINE.set(clock.now() + 0.05)
    try:
        task = asyncio.create_task(batcher.submit(request(3)))
    finally:
        SCORE_DEADLINE.reset(token)
    await _until(lambda: len(scorer.calls) == 1)
    clock.advance(0.049)
    await _settle()
    assert not task.done()
    clock.advance(0.001)
    out = await task
    assert out.degraded and out.reason == "timeout"


async def test_an_explicit_deadline_already_past_is_a_timeout_not_a_hang(
    batcher: MicroBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    scorer.gate.clear()
    task = asyncio.create_task(batcher.submit(request(2), deadline=clock.now()))
    await _settle()
    clock.advance(0)
    out = await asyncio.wait_for(task, 10)
    assert out.degraded and out.reason == "timeout"


async def test_work_that_cannot_clear_in_time_is_refused_at_once(
    batcher: MicroBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    # Measure the pace: 4 pairs in 0.1 s = 40 pairs/s.
    scorer.gate.clear()
    first = asyncio.create_task(batcher.submit(request(4)))
    await _until(lambda: len(scorer.calls) == 1)
    clock.advance(0.1)
    scorer.gate.set()
    assert not (await first).degraded
    assert batcher.pairs_per_s == pytest.approx(40.0)
    # 4 pairs being scored: a 4-pair search needs 8/40 = 0.2 s; with 0.15 s it is refused now.
    scorer.gate.clear()
    busy = asyncio.create_task(batcher.submit(request(4)))
    await _until(lambda: len(scorer.calls) == 2)
    refused = await batcher.submit(request(4), deadline=clock.now() + 0.15)
    assert refused.degraded and refused.reason == "queue_full"
    assert refused.timings["queue"] == 0.0  # answered at once, not at its deadline
    # With 0.25 s it fits and is queued.
    fits = asyncio.create_task(batcher.submit(request(4), deadline=clock.now() + 0.25))
    await _settle()
    assert not fits.done() and batcher.queue_depth == 1
    scorer.gate.set()
    assert not (await busy).degraded and not (await fits).degraded


async def test_a_search_alone_is_always_tried_after_a_slow_batch(
    batcher: MicroBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    scorer.gate.clear()
    slow = asyncio.create_task(batcher.submit(request(4)))
    await _until(lambda: len(scorer.calls) == 1)
    clock.advance(10.0)  # 0.4 pairs/s measured: nothing could "fit" any deadline
    scorer.gate.set()
    await slow
    out = await asyncio.wait_for(batcher.submit(request(4), deadline=clock.now() + 0.05), 10)
    assert not out.degraded


async def test_background_work_waits_for_searches_and_runs_in_the_scorer_thread(
    batcher: MicroBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    ran: list[str] = []
    scorer.gate.clear()
    search = asyncio.create_task(batcher.submit(request(4)))  # being scored
    await _until(lambda: len(scorer.calls) == 1)
    queued = asyncio.create_task(batcher.submit(request(4)))  # waits for the scorer

    def warm() -> str:
        ran.append(threading.current_thread().name)
        return "warm"

    work = asyncio.create_task(batcher.idle(warm))
    await _settle()
    scorer.gate.set()
    assert await asyncio.wait_for(work, 10) == "warm"
    await search
    await queued
    # The queued search was scored before the background work ran.
    assert len(scorer.calls) == 2 and ran and ran[0] in scorer.threads


async def test_background_errors_reach_their_caller(batcher: MicroBatcher) -> None:
    def boom() -> None:
        raise ValueError("bad slice")

    with pytest.raises(ValueError, match="bad slice"):
        await asyncio.wait_for(batcher.idle(boom), 10)
    assert await asyncio.wait_for(batcher.idle(lambda: 7), 10) == 7  # still serving


async def test_stop_fails_waiting_background_work(
    batcher: MicroBatcher, scorer: FakeScorer
) -> None:
    scorer.gate.clear()
    busy = asyncio.create_task(batcher.submit(request(4)))
    await _until(lambda: len(scorer.calls) == 1)
    queued = asyncio.create_task(batcher.submit(request(4)))
    work = asyncio.create_task(batcher.idle(lambda: 1))
    await _settle()
    await batcher.stop()
    scorer.gate.set()
    with pytest.raises(RuntimeError):
        await work
    assert (await busy).reason == "stopped" and (await queued).reason == "stopped"
    with pytest.raises(RuntimeError):
        await batcher.idle(lambda: 1)


async def test_explain_context_reaches_the_scorer(
    batcher: MicroBatcher, scorer: FakeScorer
) -> None:
    token = EXPLAIN.set(True)
    try:
        await asyncio.wait_for(batcher.submit(request(2)), 10)
    finally:
        EXPLAIN.reset(token)
    await asyncio.wait_for(batcher.submit(request(2)), 10)
    assert [r.explain for call in scorer.calls for r in call] == [True, False]


async def test_a_lone_small_search_does_not_set_the_pace(
    batcher: MicroBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    scorer.gate.clear()
    task = asyncio.create_task(batcher.submit(request(1)))  # 1 of 4 pairs: a small batch
    await _until(lambda: len(scorer.calls) == 1)
    clock.advance(1.0)
    scorer.gate.set()
    await task
    assert batcher.pairs_per_s is None  # its fixed costs say nothing about full batches
