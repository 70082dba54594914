"""MicroBatcher: merging, limits, and every way a search is answered degraded, never hanging."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from scoring.batcher import MicroBatcher, Outcome
from scoring.serving import ScorerSlot
from tests.unit.scoring.conftest import FakeScorer, request

MakeBatcher = Callable[..., MicroBatcher]


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
async def make(scorer: FakeScorer) -> AsyncIterator[MakeBatcher]:
    started: list[MicroBatcher] = []

    def factory(**kwargs: float) -> MicroBatcher:
        batcher = MicroBatcher(ScorerSlot(scorer), **kwargs)  # type: ignore[arg-type]
        batcher.start()
        started.append(batcher)
        return batcher

    yield factory
    scorer.gate.set()  # never leave the scorer thread blocked
    for batcher in started:
        await batcher.stop()


async def _until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def test_concurrent_submits_share_one_batch(make: MakeBatcher, scorer: FakeScorer) -> None:
    batcher = make(max_wait_ms=50)
    outcomes = await asyncio.gather(*(batcher.submit(request(3, f"q{i}")) for i in range(5)))
    assert scorer.batch_sizes == [5]
    assert [r.query for r in scorer.calls[0]] == [f"q{i}" for i in range(5)]  # FIFO
    for out in outcomes:
        assert out == Outcome([0.0, -1.0, -2.0], False, "fake-1", out.timings)
        assert {"queue", "inference", "score"} <= set(out.timings)
        assert 0 <= out.timings["queue"] < 1
    assert scorer.threads and threading.current_thread().name not in scorer.threads
    assert batcher.stats()["batches"] == 1 and batcher.pairs == 15


async def test_batches_stop_at_max_batch_pairs(make: MakeBatcher, scorer: FakeScorer) -> None:
    batcher = make(max_batch_pairs=10, max_wait_ms=50)
    sizes = [4, 4, 4, 4, 25, 1]
    outcomes = await asyncio.gather(*(batcher.submit(request(n)) for n in sizes))
    assert not any(o.degraded for o in outcomes)
    assert [len(o.scores or []) for o in outcomes] == sizes
    # 4+4 (the next 4 would exceed 10), 4+4, then the oversized one alone, then the last.
    assert scorer.batch_sizes == [2, 2, 1, 1]
    assert list(batcher.recent_batch_pairs) == [8, 8, 25, 1]
    assert batcher.batch_pairs_histogram == {8: 2, 32: 1, 1: 1}


async def test_waits_max_wait_for_company_but_not_when_full(make: MakeBatcher) -> None:
    batcher = make(max_batch_pairs=8, max_wait_ms=100)
    started = time.perf_counter()
    await batcher.submit(request(2))
    assert 0.09 <= time.perf_counter() - started < 0.6
    slow = make(max_batch_pairs=8, max_wait_ms=5000)
    started = time.perf_counter()
    out = await slow.submit(request(8))  # fills the batch: no reason to wait
    assert not out.degraded and time.perf_counter() - started < 1.0


async def test_full_queue_is_degraded_at_once(make: MakeBatcher, scorer: FakeScorer) -> None:
    batcher = make(max_queue=2, max_wait_ms=0, timeout_ms=5000)
    scorer.gate.clear()
    first = asyncio.create_task(batcher.submit(request(2)))
    await _until(lambda: len(scorer.calls) == 1)  # in flight, blocked
    queued = [asyncio.create_task(batcher.submit(request(2))) for _ in range(2)]
    await _until(lambda: batcher.queue_depth == 2)
    started = time.perf_counter()
    out = await batcher.submit(request(2))
    assert time.perf_counter() - started < 0.05
    assert out.degraded and out.scores is None and out.reason == "queue_full"
    assert out.model_version == "fake-1"
    scorer.gate.set()
    rest = await asyncio.gather(first, *queued)
    assert not any(o.degraded for o in rest)
    assert batcher.degraded == {"queue_full": 1}


async def test_slow_scorer_past_timeout_is_degraded(make: MakeBatcher, scorer: FakeScorer) -> None:
    scorer.delay = 0.5
    batcher = make(max_wait_ms=0, timeout_ms=100)
    started = time.perf_counter()
    out = await batcher.submit(request(3))
    assert 0.09 <= time.perf_counter() - started < 0.3
    assert out.degraded and out.reason == "timeout" and out.scores is None
    scorer.delay = 0.0
    await asyncio.sleep(0.5)  # the slow call ends; its late result is dropped
    assert not (await batcher.submit(request(3))).degraded


async def test_scorer_error_is_degraded_and_the_batcher_goes_on(
    make: MakeBatcher, scorer: FakeScorer
) -> None:
    batcher = make(max_wait_ms=20)
    scorer.error = RuntimeError("boom")
    outs = await asyncio.gather(batcher.submit(request(2)), batcher.submit(request(1)))
    assert [(o.degraded, o.reason) for o in outs] == [(True, "error")] * 2
    scorer.error = None
    scorer.nan = True  # non-finite scores count as a failure too
    assert (await batcher.submit(request(2))).reason == "error"
    scorer.nan = False
    assert (await batcher.submit(request(2))).scores == [0.0, -1.0]
    assert batcher.degraded == {"error": 3}


async def test_stop_answers_everything_pending(make: MakeBatcher, scorer: FakeScorer) -> None:
    batcher = make(max_wait_ms=0, timeout_ms=10_000)
    scorer.gate.clear()
    tasks = [asyncio.create_task(batcher.submit(request(2)))]
    await _until(lambda: len(scorer.calls) == 1)  # in flight, blocked
    tasks += [asyncio.create_task(batcher.submit(request(2))) for _ in range(3)]
    await _until(lambda: batcher.queue_depth == 3)
    started = time.perf_counter()
    await batcher.stop()
    outs = await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
    assert time.perf_counter() - started < 0.5
    assert [(o.degraded, o.reason) for o in outs] == [(True, "stopped")] * 4
    after = await batcher.submit(request(1))  # stopped: answered at once, not queued
    assert after.degraded and after.reason == "stopped"
    scorer.gate.set()
    batcher.start()  # and it can be started again
    assert not (await batcher.submit(request(1))).degraded


async def test_cancelled_caller_is_skipped(make: MakeBatcher, scorer: FakeScorer) -> None:
    batcher = make(max_wait_ms=0, timeout_ms=5000)
    scorer.gate.clear()
    first = asyncio.create_task(batcher.submit(request(1, "first")))
    await _until(lambda: len(scorer.calls) == 1)
    gone = asyncio.create_task(batcher.submit(request(1, "gone")))
    kept = asyncio.create_task(batcher.submit(request(1, "kept")))
    await _until(lambda: batcher.queue_depth == 2)
    gone.cancel()
    scorer.gate.set()
    await asyncio.gather(first, kept)
    assert [r.query for call in scorer.calls for r in call] == ["first", "kept"]


def test_limits_are_validated() -> None:
    slot = ScorerSlot(FakeScorer())
    with pytest.raises(ValueError):
        MicroBatcher(slot, max_batch_pairs=0)
    with pytest.raises(ValueError):
        MicroBatcher(slot, timeout_ms=0)
