"""The scorer benchmark's measuring loops, with scorers whose cost is known.

Time is a fake clock the fake scorer advances by its declared cost, so what the loops decide
(turns, rates, capacity) is checked exactly, whatever the machine's speed.
"""

from __future__ import annotations

from collections.abc import Sequence

from scoring.base import (
    ItemText,
    ScoreRequest,
    ScoreResult,
    VariantBasis,
    VariantDecision,
)
from streams.tools.scorer_bench import Fresh, LoadRow, capacity, sweep


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SleepyScorer:
    """Costs `per_search` seconds of the fake clock per search; remembers the queries seen."""

    name = "fake"
    version = "v"
    provider = "test"
    caches_items = False
    variant_decision = VariantDecision("fp32", VariantBasis.ONLY, "fake")

    def __init__(self, per_search: float, clock: FakeTime) -> None:
        self.per_search = per_search
        self.clock = clock
        self.seen: list[str] = []

    def warm_items(self, items: Sequence[ItemText]) -> int:
        return 0

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        self.clock.now += self.per_search * len(requests)
        self.seen += [r.query for r in requests]
        return ScoreResult([[float(-j) for j in range(len(r.candidates))] for r in requests])


def _requests(n: int) -> list[ScoreRequest]:
    return [ScoreRequest(query=f"q{k}", history=[], candidates=[("a", "x"), ("b", "y")])
            for k in range(n)]


def test_sweep_gives_every_backend_the_same_searches_in_turns() -> None:
    clock = FakeTime()
    fast, slow = SleepyScorer(0.001, clock), SleepyScorer(0.004, clock)
    rows, first = sweep("embed", {"fast": fast, "slow": slow}, _requests(400), batch=4,
                        budget_s=0.2, block_s=0.05, clock=clock)
    by = {r.backend: r for r in rows}
    # Each backend's own calls: the slow one ran fewer searches, on the same prefix.
    assert fast.seen[: len(slow.seen)] == slow.seen
    assert len(slow.seen) < len(fast.seen)
    # Turns of 0.05 s until each had 0.2 s: fast 50 calls of 4 ms, slow 13 calls of 16 ms.
    assert by["fast"].searches_per_s == 1000.0 and by["slow"].searches_per_s == 250.0
    assert by["fast"].pairs_per_s == 2000.0 and by["fast"].call_ms_p50 == 4.0
    assert by["slow"].calls == 13 and by["fast"].calls == 50
    assert set(first) == {"fast", "slow"} and len(first["fast"]) == 4


def _row(rate: float, p99: float, degraded: int = 0) -> LoadRow:
    return LoadRow("embed", "fake", rate, rate, p99 / 2, p99, degraded, int(rate))


def test_capacity_is_zero_when_even_the_first_rate_misses_the_slo() -> None:
    clock = FakeTime()
    held = capacity("embed", "slow", SleepyScorer(0.03, clock), Fresh(_requests(50)),
                    start=10.0, slo_ms=5.0, seconds=0.5, max_pairs=4,
                    measure=lambda rate: _row(rate, p99=30.0))
    assert held.searches_per_s == 0.0


def test_capacity_climbs_while_the_slo_holds() -> None:
    rates: list[float] = []

    def measure(rate: float) -> LoadRow:
        rates.append(rate)
        return _row(rate, p99=rate)  # p99 in ms grows with the offered rate

    held = capacity("embed", "fast", SleepyScorer(0.0, FakeTime()), Fresh(_requests(8)),
                    start=20.0, slo_ms=40.0, seconds=1.0, max_pairs=8, measure=measure)
    assert rates == [20.0, 25.0, 31.25, 39.0625, 48.828125]  # x1.25 until p99 > 40 ms
    assert held.searches_per_s == 39.0625 and held.p99_ms == 39.0625
    degraded = capacity("embed", "fast", SleepyScorer(0.0, FakeTime()), Fresh(_requests(8)),
                        start=20.0, slo_ms=400.0, seconds=1.0, max_pairs=8,
                        measure=lambda rate: _row(rate, p99=1.0, degraded=int(rate > 30)))
    assert degraded.searches_per_s == 25.0  # a degraded answer ends the climb too


def test_fresh_hands_out_each_search_once_then_says_it_wrapped() -> None:
    fresh = Fresh(_requests(5))
    assert [r.query for r in fresh.take(3)] == ["q0", "q1", "q2"] and not fresh.wrapped
    assert [r.query for r in fresh.take(3)] == ["q3", "q4", "q0"] and fresh.wrapped
