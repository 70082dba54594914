"""RankingClient's request-reply logic against in-memory Kafka fakes (tests/unit/client/fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import ActionEvent, Candidate, Item, SearchEvent, decode, encode
from streams.client import (
    CLIENT_TIMEOUT,
    PUBLISH_FAILED,
    ClientFallback,
    RankingClient,
    SyncRankingClient,
    ranking_client,
)
from tests.unit.client.fakes import FakeKafka, T, answer

LONG = 30.0  # a deadline never reached when the fake worker answers at once
SHORT = 0.05  # a deadline that passes: nobody answers


def search(n: int, user: str = "u1") -> SearchEvent:
    return SearchEvent(event_id=f"e{n}", request_id=f"r{n}", user_id=user, ts=1000 + n,
                       query="q", candidates=[Candidate(item_id=i) for i in "abc"])


def client(kafka: FakeKafka, **options: Any) -> RankingClient:
    return RankingClient(kafka, T, **options)  # type: ignore[arg-type]


async def test_rank_returns_the_workers_answer_and_forgets_the_request() -> None:
    kafka = FakeKafka()
    async with client(kafka) as c:
        got = await c.rank(search(1), LONG)
        assert got == answer(search(1)) and not isinstance(got, ClientFallback)
        assert [i.item_id for i in got.items] == ["c", "b", "a"]
        assert len(c.pending) == 0
    topic, value, key = kafka.sent[0]
    assert (topic, key) == (T.search, b"u1") and decode(value, SearchEvent) == search(1)


async def test_past_the_deadline_rank_answers_in_the_site_order() -> None:
    kafka = FakeKafka()
    kafka.worker = None  # no worker answers
    async with client(kafka) as c:
        got = await c.rank(search(1), SHORT)
        assert isinstance(got, ClientFallback) and got.reason == CLIENT_TIMEOUT
        assert got.degraded and [i.item_id for i in got.items] == ["a", "b", "c"]
        assert len(c.pending) == 0  # the waiting entry is gone...
        kafka.publish_result(encode(answer(search(1))))  # ...so a late answer is dropped
        with pytest.raises(TimeoutError):
            await c.rank(search(2), SHORT, fallback=False)
        assert c.stats()["fallback_client_timeout"] == 1


async def test_a_failed_publish_falls_back_at_once() -> None:
    kafka = FakeKafka()
    kafka.fail_sends = True
    async with client(kafka) as c:
        got = await c.rank(search(1), LONG)
        assert isinstance(got, ClientFallback) and got.reason == PUBLISH_FAILED


async def test_other_clients_results_and_garbage_are_dropped_unkept() -> None:
    kafka = FakeKafka()
    kafka.worker = None
    async with client(kafka) as c:
        await c.send_search(search(1))
        for value in (encode(answer(search(7, "other"))), b"{not json", b"[1]"):
            kafka.publish_result(value)
        kafka.publish_result(encode(answer(search(1))))
        replies = await c.results(["r1"], LONG)
        assert replies["r1"].result == answer(search(1))
        assert c.stats()["dropped"] == 3 and c.stats()["waiting"] == 0


async def test_a_burst_is_collected_with_send_ack_and_receive_times() -> None:
    kafka = FakeKafka()
    async with client(kafka) as c:
        sent = [search(n, f"u{n % 3}") for n in range(20)]
        for s in sent:
            await c.send_search(s)
        await c.flush()
        seen = [reply async for reply in c.replies([s.request_id for s in sent], LONG)]
        assert sorted(r.result.request_id for r in seen) == sorted(s.request_id for s in sent)
        for r in seen:
            assert r.acked_s is not None and r.sent_s <= r.acked_s and r.latency_ms >= 0
        assert len(c.pending) == 0
    # Each search keyed by its user: the worker owning the user's state answers it.
    assert [key for _, _, key in kafka.sent] == [f"u{n % 3}".encode() for n in range(20)]


async def test_results_names_what_is_missing_and_cleans_up() -> None:
    kafka = FakeKafka()
    kafka.worker = lambda s: answer(s) if s.request_id != "r2" else None
    async with client(kafka) as c:
        for n in range(3):
            await c.send_search(search(n))
        with pytest.raises(TimeoutError, match="1 of 3 searches unanswered"):
            await c.results(["r0", "r1", "r2"], SHORT)
        assert len(c.pending) == 0
        with pytest.raises(KeyError, match="not awaited"):
            await c.results(["r0"], SHORT)  # each result is taken once


async def test_actions_and_items_are_keyed_by_user_and_item() -> None:
    kafka = FakeKafka()
    async with client(kafka, listen=False) as c:
        await c.publish_action(ActionEvent(event_id="a", user_id="ann", ts=1, item_id="x",
                                           action="click"))
        await c.publish_item(Item(item_id="x", title="X"))
        with pytest.raises(RuntimeError, match="publishes only"):
            await c.rank(search(1), LONG)
    assert [(t, k) for t, _, k in kafka.sent] == [(T.action, b"ann"), (T.catalog, b"x")]


async def test_a_results_topic_created_later_is_read_from_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ranking_client, "TOPIC_POLL_S", 0.01)
    kafka = FakeKafka(partitions=0)  # no worker has created the topic yet
    async with client(kafka) as c:
        consumer = c._consumer
        assert consumer is not None and consumer.assigned == []  # type: ignore[attr-defined]
        kafka.partitions = 2
        got = await c.rank(search(1), LONG)  # the answer lands once the topic is found
        assert got == answer(search(1))
        assert consumer.from_start and len(consumer.assigned) == 2  # type: ignore[attr-defined]


def test_the_sync_client_ranks_and_falls_back_without_an_event_loop() -> None:
    kafka = FakeKafka()
    with SyncRankingClient(kafka, T) as c:  # type: ignore[arg-type]
        assert c.rank(search(1), LONG) == answer(search(1))
        kafka.worker = None
        got = c.rank(search(2), SHORT)
        assert isinstance(got, ClientFallback) and got.reason == CLIENT_TIMEOUT
        c.publish_item(Item(item_id="x", title="X"))
    assert kafka.sent[-1][0] == T.catalog
    with pytest.raises(RuntimeError, match="closed"):
        c.rank(search(3), LONG)
