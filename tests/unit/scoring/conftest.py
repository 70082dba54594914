"""Fixtures of the scoring unit tests: a controllable fake scorer, and the learned rankers
exported once per session into the shared `models_dir` (tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from scoring.base import ScoreRequest


class FakeScorer:
    """Scores candidate j as -j (so the original order wins); one call at a time."""

    name = "fake"
    provider = "FakeExecutionProvider"

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
        self.last_timings: dict[str, float] = {}

    @property
    def batch_sizes(self) -> list[int]:
        return [len(call) for call in self.calls]

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        self.calls.append(list(requests))
        self.threads.add(threading.current_thread().name)
        self.gate.wait(timeout=10)
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        self.last_timings = {"inference": self.delay}
        value = float("nan") if self.nan else 0.0
        return [[value - j for j in range(len(req.candidates))] for req in requests]


def request(n: int, query: str = "q") -> ScoreRequest:
    """A search with `n` candidates."""
    return ScoreRequest(query, ["h"], [(f"i{j}", f"item {j}") for j in range(n)])
