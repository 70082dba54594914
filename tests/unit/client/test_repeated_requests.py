"""A request_id is published once: a second rank() of one in flight waits for the same result,
one answered recently is answered from its first result (RankingClient over Kafka fakes)."""

from __future__ import annotations

import asyncio

from contracts import SearchEvent, encode
from streams.client import ClientFallback, RankingClient
from streams.client.recent import RecentResults
from tests.unit.client.fakes import FakeKafka, T, answer
from tests.unit.client.test_ranking_client import LONG, SHORT, search


def searches_sent(kafka: FakeKafka) -> int:
    return sum(1 for topic, _, _ in kafka.sent if topic == T.search)


async def test_a_request_in_flight_is_joined_not_sent_again() -> None:
    kafka = FakeKafka()
    held: list[SearchEvent] = []
    kafka.worker = lambda s: held.append(s) or None  # type: ignore[func-returns-value]
    async with RankingClient(kafka, T) as c:  # type: ignore[arg-type]
        first = asyncio.create_task(c.rank(search(1), LONG))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(c.rank(search(1), LONG))
        await asyncio.sleep(0.01)
        kafka.publish_result(encode(answer(held[0])))
        a, b = await asyncio.gather(first, second)
        assert a == b == answer(search(1)) and searches_sent(kafka) == 1
        assert len(c.pending) == 0


async def test_one_callers_deadline_does_not_end_anothers_wait() -> None:
    kafka = FakeKafka()
    held: list[SearchEvent] = []
    kafka.worker = lambda s: held.append(s) or None  # type: ignore[func-returns-value]
    async with RankingClient(kafka, T) as c:  # type: ignore[arg-type]
        patient = asyncio.create_task(c.rank(search(1), LONG))
        await asyncio.sleep(0.01)
        hasty = await c.rank(search(1), SHORT)
        assert isinstance(hasty, ClientFallback)
        kafka.publish_result(encode(answer(held[0])))
        assert await patient == answer(search(1))


async def test_a_repeat_is_answered_from_the_first_result_when_remembered() -> None:
    kafka = FakeKafka()
    async with RankingClient(kafka, T, remember=10) as c:  # type: ignore[arg-type]
        first = await c.rank(search(1), LONG)
        kafka.worker = None  # a worker answers a request_id once: no second result
        again = await c.rank(search(1), SHORT)
        assert again == first and not isinstance(again, ClientFallback)
        assert searches_sent(kafka) == 1
    async with RankingClient(kafka, T) as c:  # type: ignore[arg-type]  # remembers nothing
        assert isinstance(await c.rank(search(1), SHORT), ClientFallback)


def test_recent_results_keep_the_first_and_forget_the_oldest() -> None:
    recent = RecentResults(2)
    one, other = answer(search(1)), answer(search(2)).model_copy(update={"request_id": "r1"})
    recent.add("r1", encode(one))
    recent.add("r1", encode(other))  # a second result of r1: the first stands
    assert recent.get("r1") == one
    recent.add("r2", encode(answer(search(2))))
    recent.add("r3", encode(answer(search(3))))
    assert recent.get("r1") is None and len(recent) == 2
    recent.add("bad", b"{not json")
    assert recent.get("bad") is None and len(recent) == 1  # r2 went for it; bad when read
    assert RecentResults(0).get("r1") is None


async def test_a_remembered_result_is_only_handed_to_its_own_user() -> None:
    kafka = FakeKafka()
    async with RankingClient(kafka, T, remember=10) as c:  # type: ignore[arg-type]
        await c.rank(search(1, user="u1"), LONG)
        other = await c.rank(search(1, user="u2"), LONG)  # same request_id, another user
        assert other.user_id == "u2" and searches_sent(kafka) == 2
