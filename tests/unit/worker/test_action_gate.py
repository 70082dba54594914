"""ActionGate: windows close past the actions read, also when the consumer knows no high
watermark yet (a partition with nothing new after a restart)."""

from __future__ import annotations

import asyncio

from streams.worker.action_gate import ActionGate


def cutoff(gate: ActionGate, now: int = 10_000) -> int:
    return asyncio.run(gate.cutoff(0, now))


async def committed_at_5(partition: int) -> int | None:
    return 5


async def end_at_5(partition: int) -> int | None:
    return 5


async def end_at_9(partition: int) -> int | None:
    return 9


def test_unknown_high_watermark_asks_the_broker() -> None:
    # Nothing read, everything committed: caught up, so windows close up to now.
    assert cutoff(ActionGate(lambda p: None, committed_at_5, end_at_5)) == 10_000
    # Actions past the committed offset: only up to the last action read (none yet).
    assert cutoff(ActionGate(lambda p: None, committed_at_5, end_at_9)) == 0


def test_without_the_broker_nothing_closes_until_a_high_watermark_is_known() -> None:
    assert cutoff(ActionGate(lambda p: None, committed_at_5)) == 0
    assert cutoff(ActionGate(lambda p: 5, committed_at_5)) == 10_000


def test_a_known_high_watermark_is_not_asked_again() -> None:
    asked: list[int] = []

    async def latest(partition: int) -> int | None:
        asked.append(partition)
        return 5

    gate = ActionGate(lambda p: 7, committed_at_5, latest)
    gate.processed(0, 6, 1_234)
    assert cutoff(gate) == 10_000 and asked == []
