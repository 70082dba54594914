"""The scorer benchmark's measuring loops, with scorers whose cost is known."""

from __future__ import annotations

import time
from collections.abc import Sequence

from scoring.base import ScoreRequest
from streams.tools.scorer_bench import Fresh, capacity, sweep


class SleepyScorer:
    """Takes `per_search` seconds per search and remembers which queries it saw."""

    name = "fake"
    version = "v"
    provider = "test"

    def __init__(self, per_search: float) -> None:
        self.per_search = per_search
        self.seen: list[str] = []

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        time.sleep(self.per_search * len(requests))
        self.seen += [r.query for r in requests]
        return [[float(-j) for j in range(len(r.candidates))] for r in requests]


def _requests(n: int) -> list[ScoreRequest]:
    return [ScoreRequest(query=f"q{k}", history=[], candidates=[("a", "x"), ("b", "y")])
            for k in range(n)]


def test_sweep_gives_every_backend_the_same_searches_in_turns() -> None:
    fast, slow = SleepyScorer(0.001), SleepyScorer(0.004)
    rows, first = sweep("embed", {"fast": fast, "slow": slow}, _requests(400), batch=4,
                        budget_s=0.2, block_s=0.05)
    by = {r.backend: r for r in rows}
    # Each backend's own calls: the slow one ran fewer searches, on the same prefix.
    assert fast.seen[: len(slow.seen)] == slow.seen
    assert by["fast"].searches_per_s > 2 * by["slow"].searches_per_s
    assert by["slow"].calls >= 2
    assert set(first) == {"fast", "slow"} and len(first["fast"]) == 4


def test_capacity_is_zero_when_even_the_first_rate_misses_the_slo() -> None:
    held = capacity("embed", "slow", SleepyScorer(0.03), Fresh(_requests(50)), start=10.0,
                    slo_ms=5.0, seconds=0.5, max_pairs=4)
    assert held.searches_per_s == 0.0


def test_capacity_climbs_while_the_slo_holds() -> None:
    scorer, fresh = SleepyScorer(0.0005), Fresh(_requests(200))
    held = capacity("embed", "fast", scorer, fresh, start=20.0,
                    slo_ms=200.0, seconds=0.4, max_pairs=8, steps=3)
    assert held.searches_per_s >= 20.0 * 1.25  # at least two steps held
    assert held.p99_ms <= 200.0
    # Every step got searches the scorer had not seen (8 + 10 + 12 of them).
    assert len(scorer.seen) == len(set(scorer.seen)) == 30 and not fresh.wrapped
