"""Matching results to waiting searches by request_id, with bounded memory (no Kafka)."""

from __future__ import annotations

import asyncio

import pytest

from contracts import RankedItem, RankedResult
from streams.client.pending import Pending, Reply


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def result(request_id: str) -> RankedResult:
    return RankedResult(request_id=request_id, user_id="u", model_version="m",
                        items=[RankedItem(item_id="a", score=1.0, rank=1)],
                        received_ts=1, published_ts=2)


async def test_a_result_reaches_its_waiter_with_the_send_ack_and_receive_times() -> None:
    clock = Clock()
    pending = Pending(clock=clock)
    future = pending.expect("r1")
    clock.now = 100.5
    pending.acked("r1")
    assert pending.wants("r1")
    assert pending.deliver(result("r1"), received_s=100.75)
    reply = await future
    assert reply == Reply(result("r1"), sent_s=100.0, acked_s=100.5, received_s=100.75)
    assert reply.latency_ms == 250.0  # from the acknowledgement, not the send
    assert not pending.wants("r1")  # answered: a repeat is not kept
    assert not pending.deliver(result("r1"))
    assert pending.take("r1") == reply and len(pending) == 0
    assert pending.stats() == {"waiting": 0, "matched": 1, "dropped": 1, "expired": 0}


async def test_results_nobody_waits_for_are_dropped_not_kept() -> None:
    pending = Pending()
    for n in range(1000):
        assert not pending.deliver(result(f"other-{n}"))
    assert len(pending) == 0 and pending.dropped == 1000


async def test_a_forgotten_request_drops_its_late_result() -> None:
    pending = Pending()
    future = pending.expect("r1")
    pending.forget("r1")  # the caller's deadline passed
    assert future.cancelled() and len(pending) == 0
    assert not pending.deliver(result("r1"))


async def test_entries_expire_after_keep_s_and_their_waiters_time_out() -> None:
    clock = Clock()
    pending = Pending(keep_s=10, clock=clock)
    old = pending.expect("old")
    clock.now = 105.0
    young = pending.expect("young")
    clock.now = 110.0
    assert pending.expire() == 1  # only the one expected 10 s ago
    with pytest.raises(TimeoutError, match="not taken within 10s"):
        await old
    assert "old" not in pending and "young" in pending and not young.done()
    assert not pending.deliver(result("old"))
    assert pending.stats()["expired"] == 1


async def test_at_most_limit_entries_the_oldest_given_up_first() -> None:
    pending = Pending(limit=3)
    futures = [pending.expect(f"r{n}") for n in range(5)]
    assert len(pending) == 3 and [f"r{n}" in pending for n in range(5)] == [False, False,
                                                                             True, True, True]
    for future in futures[:2]:
        with pytest.raises(TimeoutError, match="limit"):
            await future


async def test_request_ids_must_be_unique_while_awaited() -> None:
    pending = Pending()
    pending.expect("r1")
    with pytest.raises(ValueError, match="already awaited"):
        pending.expect("r1")


async def test_a_failed_publish_reaches_the_waiter_at_once() -> None:
    pending = Pending()
    future = pending.expect("r1")
    pending.fail("r1", ConnectionError("broker down"))
    with pytest.raises(ConnectionError):
        await future
    assert pending.take("r1") is None


async def test_close_gives_up_everyone() -> None:
    pending = Pending()
    futures = [pending.expect(f"r{n}") for n in range(3)]
    pending.close()
    assert len(pending) == 0
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)


def test_bounds_must_make_sense() -> None:
    with pytest.raises(ValueError):
        Pending(keep_s=0)
    with pytest.raises(ValueError):
        Pending(limit=0)
