"""Catalog warm-up in slices: sized from the measured time per item, run through the batcher's
idle slot (the scorer's thread) while it serves, never in a thread of its own then."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from scoring.base import ItemText
from scoring.serving import ScorerSlot
from streams.settings import Settings
from streams.worker.scoring_service import FIRST_SLICE, ScoringService, Slicer
from tests.unit.scoring.conftest import FakeScorer


def test_slices_last_about_the_target_at_the_measured_pace() -> None:
    slicer = Slicer(0.02, most=100)
    assert slicer.size() == FIRST_SLICE  # nothing measured yet: start small
    slicer.observe(2, 0.02)  # 10 ms per item
    assert slicer.size() == 2
    slicer.observe(0, 5.0)  # all cached: says nothing about encoding
    assert slicer.size() == 2
    for _ in range(30):
        slicer.observe(10, 0.001)  # 0.1 ms per item: slices grow, up to the cap
    assert slicer.size() == 100
    assert Slicer(0.02).size() >= 1


class Warming(FakeScorer):
    caches_items = True

    def __init__(self) -> None:
        super().__init__()
        self.slices: list[int] = []
        self.warm_threads: set[str] = set()

    def warm_items(self, items: Sequence[ItemText]) -> int:
        self.slices.append(len(items))
        self.warm_threads.add(threading.current_thread().name)
        return len(items)


@pytest.fixture
async def service() -> ScoringService:
    scorer = Warming()
    svc = ScoringService(Settings(warm_slice_ms=20), ScorerSlot(scorer), lambda: [])
    return svc


async def test_pending_items_are_warmed_in_the_scorers_thread_while_it_serves(
    service: ScoringService,
) -> None:
    scorer = service.slot.current
    assert isinstance(scorer, Warming)
    for k in range(7):
        service.item_changed(f"i{k}", f"item {k}")
    service.item_changed("i0", "item 0, new text")  # changed twice: warmed once
    assert service.pending == 7
    service.batcher.start()
    try:
        assert await service.warm_pending() == 7
    finally:
        await service.batcher.stop()
    assert service.pending == 0 and sum(scorer.slices) == 7
    assert scorer.slices[0] == FIRST_SLICE  # then sized by the measured pace
    assert {name.split("_")[0] for name in scorer.warm_threads} == {"scorer"}
    status = service.status()
    assert status["items"] == 7 and status["slices"] == len(scorer.slices)


async def test_without_a_running_batcher_the_warm_up_still_happens(
    service: ScoringService,
) -> None:
    service.item_changed("a", "text a")
    assert await service.warm_pending() == 1
