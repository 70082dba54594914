"""DeadlineAnswerer: stale searches shed unscored, deadlines carried to the batcher, degraded
answers labelled, repeats answered once. A fake handler and clocks: no broker, no model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from contracts import Candidate, RankedResult, SearchEvent
from scoring.batcher import EXPLAIN, SCORE_DEADLINE, Outcome
from scoring.ranking import original_order, rank
from streams.settings import Settings
from streams.worker.deadline import (
    QUEUE_FULL,
    STALE,
    TIMEOUT,
    DeadlineAnswerer,
    DeadlinePolicy,
)
from streams.worker.repeats import Repeats
from streams.worker.search import Answer


def search(rid: str = "r1", user: str = "u1", *, explain: bool = False) -> SearchEvent:
    return SearchEvent(event_id=f"e-{rid}", request_id=rid, user_id=user, ts=1, query="q",
                       candidates=[Candidate(item_id=i) for i in ("a", "b", "c", "a")],
                       explain=explain)


class FakeClock:
    def __init__(self) -> None:
        self.t = 500.0

    def now(self) -> float:
        return self.t


class FakeBatcher:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.slot = type("Slot", (), {"current": type("S", (), {"version": "m-1"})()})()


class FakeHandler:
    """Records the deadline and explain flag it was called under; answers as told."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, float | None, bool]] = []
        self.gate: asyncio.Event | None = None

    async def answer(self, s: SearchEvent, received_ts: int) -> Answer:
        self.calls.append((s.request_id, SCORE_DEADLINE.get(), EXPLAIN.get()))
        if self.gate is not None:
            await self.gate.wait()
        cands = [Candidate(item_id=i) for i in ("a", "b", "c")]
        o = self.outcome
        items = original_order(cands) if o.scores is None else rank(cands, o.scores)
        result = RankedResult(request_id=s.request_id, user_id=s.user_id, items=items,
                              model_version=o.model_version, degraded=o.degraded,
                              received_ts=received_ts, published_ts=received_ts + 1)
        return Answer(result, ["h"], o, 0.001)


def answerer(handler: FakeHandler, *, deadline_ms: float = 200, max_age_ms: float = 1000,
             now_ms: int = 10_000, **kw: Any) -> DeadlineAnswerer:
    return DeadlineAnswerer(handler, FakeBatcher(),  # type: ignore[arg-type]
                            DeadlinePolicy(deadline_ms, max_age_ms), clock_ms=lambda: now_ms,
                            **kw)


SCORED = Outcome([0.1, 0.9, 0.5], False, "m-1", {"queue": 0.001})


def test_policy_budget() -> None:
    policy = DeadlinePolicy(200, 1000)
    fresh = policy.budget(produced_ms=9_500, received_ms=10_000)
    assert (fresh.age_ms, fresh.due_ms, fresh.stale) == (500, 10_200, False)
    assert fresh.remaining_s(10_050) == pytest.approx(0.15)
    assert policy.budget(8_999, 10_000).stale  # waited 1001 ms in Kafka
    assert not policy.budget(9_000, 10_000).stale  # exactly the limit: still served
    assert not policy.budget(None, 10_000).stale  # unknown production time
    assert not DeadlinePolicy(200, 0).budget(0, 10_000).stale  # 0: no age limit
    with pytest.raises(ValueError):
        DeadlinePolicy(0, 10)


def test_policy_from_settings_defaults_to_the_score_timeout() -> None:
    assert DeadlinePolicy.from_settings(Settings(score_timeout_ms=700)).deadline_ms == 700
    got = DeadlinePolicy.from_settings(Settings(search_deadline_ms=90, search_max_age_ms=300))
    assert (got.deadline_ms, got.max_age_ms) == (90, 300)


async def test_a_fresh_search_is_scored_under_its_deadline() -> None:
    handler = FakeHandler(SCORED)
    got = await answerer(handler, now_ms=10_050).answer(search(), 10_000, produced_s=9.9)
    assert got is not None and not got.result.degraded and got.result.degraded_reason is None
    assert [i.item_id for i in got.result.items] == ["b", "c", "a"]
    # Received at 10 000 with 200 ms: due 10 200, i.e. 150 ms after "now" on the batcher clock.
    (_, deadline, explain), = handler.calls
    assert deadline == pytest.approx(500.15) and explain is False
    assert SCORE_DEADLINE.get() is None  # reset after the call


async def test_a_stale_search_is_answered_at_once_unscored_in_site_order() -> None:
    handler = FakeHandler(SCORED)
    a = answerer(handler)
    got = await a.answer(search(), 10_000, produced_s=8.0)  # 2 s in Kafka, limit 1 s
    assert got is not None and handler.calls == []  # the handler (state, scorer) never ran
    result = got.result
    assert result.degraded and result.degraded_reason == STALE
    assert [i.item_id for i in result.items] == ["a", "b", "c"]  # site order, each once
    assert got.outcome.reason == STALE and got.history == []
    assert a.counts[STALE] == 1


@pytest.mark.parametrize("reason", [QUEUE_FULL, TIMEOUT, "error"])
async def test_degraded_answers_carry_their_reason(reason: str) -> None:
    handler = FakeHandler(Outcome(None, True, "m-1", {}, reason))
    got = await answerer(handler).answer(search(), 10_000, produced_s=10.0)
    assert got is not None and got.result.degraded and got.result.degraded_reason == reason


async def test_a_repeated_request_id_is_answered_once() -> None:
    handler = FakeHandler(SCORED)
    a = answerer(handler)
    assert await a.answer(search("r1"), 10_000) is not None
    assert await a.answer(search("r1"), 10_001) is None  # answered: the first result stands
    assert await a.answer(search("r1", user="u2"), 10_002) is not None  # another user's id
    assert a.counts["repeated"] == 1 and len(handler.calls) == 2


async def test_a_copy_arriving_while_the_first_is_scored_is_skipped() -> None:
    handler = FakeHandler(SCORED)
    handler.gate = asyncio.Event()
    a = answerer(handler)
    first = asyncio.create_task(a.answer(search("r1"), 10_000))
    await asyncio.sleep(0)
    assert await a.answer(search("r1"), 10_001) is None
    handler.gate.set()
    assert (await first) is not None


async def test_a_failed_answer_may_come_again() -> None:
    class Boom(FakeHandler):
        async def answer(self, s: SearchEvent, received_ts: int) -> Answer:
            raise RuntimeError("state unreadable")

    a = answerer(Boom(SCORED))
    with pytest.raises(RuntimeError):
        await a.answer(search("r1"), 10_000)
    a.handler = FakeHandler(SCORED)  # type: ignore[assignment]
    assert await a.answer(search("r1"), 10_000) is not None


async def test_explain_is_asked_of_the_scorer_only_when_the_search_asks() -> None:
    handler = FakeHandler(SCORED)
    a = answerer(handler)
    await a.answer(search("r1", explain=True), 10_000)
    await a.answer(search("r2"), 10_000)
    assert [explain for _, _, explain in handler.calls] == [True, False]


def test_repeats_forget_the_oldest_beyond_their_bound() -> None:
    repeats = Repeats(remember=2)
    for rid in ("a", "b", "c"):
        assert repeats.begin("u", rid)
        repeats.done("u", rid)
    assert len(repeats) == 2
    assert repeats.begin("u", "a")  # forgotten: answered again
    assert not repeats.begin("u", "c")
