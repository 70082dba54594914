"""ScorerSlot: hot swaps load off the event loop, refuse bad models, and never drop a search."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from scoring import ModelError, Scorer
from scoring.batcher import MicroBatcher
from scoring.serving import ScorerSlot
from tests.unit.scoring.conftest import FakeScorer, request


async def test_swap_loads_off_the_loop_and_serves_the_new_scorer() -> None:
    old, new = FakeScorer("v1"), FakeScorer("v2")
    threads: list[str] = []

    def loader(ref: Path | str) -> Scorer:
        threads.append(threading.current_thread().name)
        assert ref == "v2"
        return new

    slot = ScorerSlot(old)
    assert await slot.swap_to("v2", loader=loader)
    assert slot.current is new and slot.swaps == 1
    assert threads and threads[0] != threading.current_thread().name


async def test_failed_load_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    old = FakeScorer("v1")

    def loader(ref: Path | str) -> Scorer:
        raise ModelError("sha256 mismatch for 'model.onnx'")

    slot = ScorerSlot(old)
    with caplog.at_level(logging.ERROR, logger="scoring.serving"):
        assert not await slot.swap_to("v2", loader=loader)
    assert slot.current is old and slot.refused == 1
    assert "refused model v2: sha256 mismatch" in caplog.text
    assert "sha256 mismatch" in slot.last_refusal


async def test_in_flight_batch_keeps_its_scorer() -> None:
    old, new = FakeScorer("v1"), FakeScorer("v2")
    slot = ScorerSlot(old)
    batcher = MicroBatcher(slot, max_wait_ms=0, timeout_ms=5000)
    batcher.start()
    old.gate.clear()
    try:
        first = asyncio.create_task(batcher.submit(request(2)))
        deadline = time.perf_counter() + 2
        while not old.calls:
            assert time.perf_counter() < deadline
            await asyncio.sleep(0.001)
        assert await slot.swap_to("v2", loader=lambda ref: new)
        second = asyncio.create_task(batcher.submit(request(2)))
        old.gate.set()
        assert (await first).model_version == "v1"
        assert (await second).model_version == "v2"
    finally:
        old.gate.set()
        await batcher.stop()
