"""MicroBatcher: merging, limits, and every way a search is answered degraded, never hanging.

Time is a ManualClock: a batching window or a timeout ends exactly when the test advances the
clock past it, so the assertions hold on any machine, however slow. The scorer still runs in
the batcher's own thread; `_until` only waits for that thread to hand its answer back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from scoring.batcher import MicroBatcher, Outcome
from scoring.serving import ScorerSlot
from tests.unit.scoring.conftest import FakeScorer, ManualClock, request

MakeBatcher = Callable[..., MicroBatcher]


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make(scorer: FakeScorer, clock: ManualClock) -> AsyncIterator[MakeBatcher]:
    started: list[MicroBatcher] = []

    def factory(**kwargs: float) -> MicroBatcher:
        batcher = MicroBatcher(ScorerSlot(scorer), clock=clock, **kwargs)  # type: ignore[arg-type]
        batcher.start()
        started.append(batcher)
        return batcher

    yield factory
    scorer.gate.set()  # never leave the scorer thread blocked
    for batcher in started:
        await batcher.stop()


async def _settle() -> None:
    """Let every task run until it waits on something the test controls."""
    for _ in range(50):
        await asyncio.sleep(0)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for the scorer thread (a guard against hanging, not a timing assumption)."""
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def test_concurrent_submits_share_one_batch(
    make: MakeBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    batcher = make(max_wait_ms=50)
    tasks = [asyncio.create_task(batcher.submit(request(3, f"q{i}"))) for i in range(5)]
    await _settle()
    assert batcher.dispatched == 0  # the window is still open
    clock.advance(0.05)
    outcomes = await asyncio.gather(*tasks)
    assert scorer.batch_sizes == [5]
    assert [r.query for r in scorer.calls[0]] == [f"q{i}" for i in range(5)]  # FIFO
    for out in outcomes:
        assert out == Outcome([0.0, -1.0, -2.0], False, "fake-1", out.timings)
        assert out.timings["queue"] == pytest.approx(0.05)  # the whole window, no more
        assert out.timings["inference"] == 0.0 and out.timings["score"] == 0.0
    assert scorer.threads and threading.current_thread().name not in scorer.threads
    assert batcher.stats()["batches"] == 1 and batcher.pairs == 15
    assert clock.pending == 0  # every search's timeout timer was cancelled once answered


async def test_batches_stop_at_max_batch_pairs(
    make: MakeBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    batcher = make(max_batch_pairs=10, max_wait_ms=50)
    sizes = [4, 4, 4, 4, 25, 1]
    tasks = [asyncio.create_task(batcher.submit(request(n))) for n in sizes]
    # 4+4 (the next 4 would exceed 10), 4+4, then the oversized one alone: none waits for
    # the window; the last search does.
    await _until(lambda: batcher.batches == 3)
    await _settle()
    assert batcher.dispatched == 3
    clock.advance(0.05)
    outcomes = await asyncio.gather(*tasks)
    assert not any(o.degraded for o in outcomes)
    assert [len(o.scores or []) for o in outcomes] == sizes
    assert scorer.batch_sizes == [2, 2, 1, 1]
    assert list(batcher.recent_batch_pairs) == [8, 8, 25, 1]
    assert batcher.batch_pairs_histogram == {8: 2, 32: 1, 1: 1}


async def test_waits_max_wait_for_company_but_not_when_full(
    make: MakeBatcher, clock: ManualClock
) -> None:
    batcher = make(max_batch_pairs=8, max_wait_ms=100)
    alone = asyncio.create_task(batcher.submit(request(2)))
    await _settle()
    clock.advance(0.099)
    await _settle()
    assert batcher.dispatched == 0 and not alone.done()
    clock.advance(0.001)
    out = await alone
    assert not out.degraded and out.timings["queue"] == pytest.approx(0.1)
    full = await asyncio.wait_for(batcher.submit(request(8)), 10)  # fills the batch at once
    assert not full.degraded and full.timings["queue"] == 0.0


async def test_company_arriving_in_the_window_joins_the_batch(
    make: MakeBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    batcher = make(max_wait_ms=10)
    first = asyncio.create_task(batcher.submit(request(1, "first")))
    await _settle()
    clock.advance(0.006)
    second = asyncio.create_task(batcher.submit(request(1, "second")))
    await _settle()
    clock.advance(0.004)  # the window is the first search's: 10 ms after it arrived
    a, b = await asyncio.gather(first, second)
    assert scorer.batch_sizes == [2]
    assert a.timings["queue"] == pytest.approx(0.010)
    assert b.timings["queue"] == pytest.approx(0.004)


async def test_full_queue_is_degraded_at_once(
    make: MakeBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    batcher = make(max_queue=2, max_wait_ms=0, timeout_ms=5000)
    scorer.gate.clear()
    first = asyncio.create_task(batcher.submit(request(2)))
    await _until(lambda: len(scorer.calls) == 1)  # in flight, blocked
    queued = [asyncio.create_task(batcher.submit(request(2))) for _ in range(2)]
    await _until(lambda: batcher.queue_depth == 2)
    before = clock.now()
    out = await batcher.submit(request(2))  # answered without any time passing
    assert clock.now() == before
    assert out.degraded and out.scores is None and out.reason == "queue_full"
    assert out.model_version == "fake-1" and out.timings == {"queue": 0.0}
    scorer.gate.set()
    rest = await asyncio.gather(first, *queued)
    assert not any(o.degraded for o in rest)
    assert batcher.degraded == {"queue_full": 1}


async def test_slow_scorer_past_timeout_is_degraded(
    make: MakeBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    batcher = make(max_wait_ms=0, timeout_ms=100)
    scorer.gate.clear()  # the scorer is busy until the test says otherwise
    task = asyncio.create_task(batcher.submit(request(3)))
    await _until(lambda: len(scorer.calls) == 1)
    clock.advance(0.099)
    await _settle()
    assert not task.done()
    clock.advance(0.001)
    out = await task
    assert out.degraded and out.reason == "timeout" and out.scores is None
    assert out.timings["queue"] == pytest.approx(0.1)
    scorer.gate.set()  # the slow call ends; its late result is dropped
    await _until(lambda: batcher.batches == 1)
    assert batcher.degraded == {"timeout": 1}
    assert not (await asyncio.wait_for(batcher.submit(request(3)), 10)).degraded


async def test_scorer_error_is_degraded_and_the_batcher_goes_on(
    make: MakeBatcher, scorer: FakeScorer
) -> None:
    batcher = make(max_batch_pairs=3, max_wait_ms=20)
    scorer.error = RuntimeError("boom")
    outs = await asyncio.gather(batcher.submit(request(2)), batcher.submit(request(1)))
    assert [(o.degraded, o.reason) for o in outs] == [(True, "error")] * 2
    scorer.error = None
    scorer.nan = True  # non-finite scores count as a failure too
    assert (await batcher.submit(request(3))).reason == "error"
    scorer.nan = False
    assert (await batcher.submit(request(3))).scores == [0.0, -1.0, -2.0]
    assert batcher.degraded == {"error": 3}


async def test_stop_answers_everything_pending(
    make: MakeBatcher, scorer: FakeScorer, clock: ManualClock
) -> None:
    batcher = make(max_wait_ms=0, timeout_ms=10_000)
    scorer.gate.clear()
    tasks = [asyncio.create_task(batcher.submit(request(2)))]
    await _until(lambda: len(scorer.calls) == 1)  # in flight, blocked
    tasks += [asyncio.create_task(batcher.submit(request(2))) for _ in range(3)]
    await _until(lambda: batcher.queue_depth == 3)
    await batcher.stop()
    outs = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert [(o.degraded, o.reason) for o in outs] == [(True, "stopped")] * 4
    after = await batcher.submit(request(1))  # stopped: answered at once, not queued
    assert after.degraded and after.reason == "stopped"
    assert clock.pending == 0
    scorer.gate.set()
    batcher.start()  # and it can be started again
    assert not (await asyncio.wait_for(batcher.submit(request(1)), 10)).degraded


async def test_cancelled_caller_is_skipped(make: MakeBatcher, scorer: FakeScorer) -> None:
    batcher = make(max_wait_ms=0, timeout_ms=5000)
    scorer.gate.clear()
    first = asyncio.create_task(batcher.submit(request(1, "first")))
    await _until(lambda: len(scorer.calls) == 1)
    gone = asyncio.create_task(batcher.submit(request(1, "gone")))
    kept = asyncio.create_task(batcher.submit(request(1, "kept")))
    await _until(lambda: batcher.queue_depth == 2)
    gone.cancel()
    await _settle()
    assert batcher.degraded == {"cancelled": 1}
    scorer.gate.set()
    await asyncio.gather(first, kept)
    assert [r.query for call in scorer.calls for r in call] == ["first", "kept"]


async def test_the_default_clock_is_the_event_loops(scorer: FakeScorer) -> None:
    batcher = MicroBatcher(ScorerSlot(scorer), max_wait_ms=0)
    batcher.start()
    try:
        out = await asyncio.wait_for(batcher.submit(request(2)), 10)
    finally:
        await batcher.stop()
    assert not out.degraded and out.timings["queue"] >= 0.0


def test_limits_are_validated() -> None:
    slot = ScorerSlot(FakeScorer())
    with pytest.raises(ValueError):
        MicroBatcher(slot, max_batch_pairs=0)
    with pytest.raises(ValueError):
        MicroBatcher(slot, timeout_ms=0)
