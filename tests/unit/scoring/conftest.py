"""Fixtures of the scoring unit tests: a controllable fake scorer and a manual clock."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence

from scoring.base import ItemText, ScoreRequest, ScoreResult, VariantBasis, VariantDecision

FAKE_VARIANT = VariantDecision("fp32", VariantBasis.ONLY, "a fake scorer has one variant")


class FakeScorer:
    """Scores candidate j as -j (so the original order wins); one call at a time."""

    name = "fake"
    provider = "FakeExecutionProvider"
    caches_items = False
    variant_decision = FAKE_VARIANT

    def __init__(
        self,
        version: str = "fake-1",
        *,
        delay: float = 0.0,
        error: Exception | None = None,
        nan: bool = False,
    ) -> None:
        self.version = version
        self.delay = delay
        self.error = error
        self.nan = nan
        self.calls: list[list[ScoreRequest]] = []
        self.threads: set[str] = set()
        # Cleared: score() blocks until the test sets it (tests must set it before leaving).
        self.gate = threading.Event()
        self.gate.set()

    @property
    def batch_sizes(self) -> list[int]:
        return [len(call) for call in self.calls]

    def warm_items(self, items: Sequence[ItemText]) -> int:
        return 0

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        self.calls.append(list(requests))
        self.threads.add(threading.current_thread().name)
        self.gate.wait(timeout=10)
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        value = float("nan") if self.nan else 0.0
        scores = [[value - j for j in range(len(req.candidates))] for req in requests]
        return ScoreResult(scores, {"inference": self.delay})


class ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A batcher clock that moves only when a test calls `advance`: windows and timeouts are
    asserted at exact instants, with no sleeping and no dependence on the machine's speed."""

    def __init__(self, start: float = 100.0) -> None:
        self.time = start
        self._order = itertools.count()
        self._timers: list[tuple[float, int, ManualTimer, Callable[[], None]]] = []

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer()
        heapq.heappush(self._timers, (self.time + delay, next(self._order), timer, callback))
        return timer

    @property
    def pending(self) -> int:
        return sum(1 for _, _, timer, _ in self._timers if not timer.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer due by then in order (at its own instant)."""
        target = self.time + seconds
        while self._timers and self._timers[0][0] <= target + 1e-9:
            when, _, timer, callback = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.time = max(self.time, when)
            callback()
        self.time = target


def request(n: int, query: str = "q") -> ScoreRequest:
    """A search with `n` candidates."""
    return ScoreRequest(query, ["h"], [(f"i{j}", f"item {j}") for j in range(n)])
