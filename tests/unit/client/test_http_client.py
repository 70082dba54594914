"""HttpRankingClient against small local HTTP servers: the worker's answer, the next worker
when one is down, the site's order past the deadline or when no worker answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from contracts import RankedResult, SearchEvent, decode, encode
from streams.client import (
    CLIENT_TIMEOUT,
    NO_WORKER,
    REJECTED,
    ClientFallback,
    HttpRankingClient,
    RankRequestError,
    SyncHttpRankingClient,
)
from streams.kafka.broker_config import free_port
from tests.unit.client.fakes import answer
from tests.unit.client.test_ranking_client import LONG, SHORT, search

Handler = Callable[[web.Request], Awaitable[web.Response]]


class Worker:
    """A stand-in for a worker's POST /rank."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, str | None]] = []  # (request_id, deadline_ms)
        self.delay = 0.0
        self.status = 200
        self._runner: web.AppRunner | None = None

    async def rank(self, request: web.Request) -> web.Response:
        body = decode(await request.read(), SearchEvent)
        self.seen.append((body.request_id, request.query.get("deadline_ms")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status, text="no")
        return web.Response(body=encode(answer(body)), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/rank", self.rank)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker()
    await w.start()
    yield w
    await w.stop()


def down() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


async def test_the_workers_answer_comes_back_with_the_deadline_passed_on(worker: Worker) -> None:
    async with HttpRankingClient(worker.url) as client:
        got = await client.rank(search(1), 2.0)
    assert got == answer(search(1)) and not isinstance(got, ClientFallback)
    (rid, deadline_ms), = worker.seen
    assert rid == "r1" and deadline_ms is not None and 1500 < int(deadline_ms) < 2000


async def test_a_worker_that_is_down_or_failing_is_skipped(worker: Worker) -> None:
    async with HttpRankingClient([down(), worker.url]) as client:
        for n in range(4):  # whichever worker each call starts with
            assert isinstance(await client.rank(search(n), LONG), RankedResult)
            assert not isinstance(await client.rank(search(n), LONG), ClientFallback)
        assert sum(client.failures.values()) >= 1
    failing = Worker()
    failing.status = 503
    await failing.start()
    try:
        async with HttpRankingClient([failing.url, worker.url]) as client:
            got = [await client.rank(search(n), LONG) for n in range(10, 14)]
        assert not any(isinstance(r, ClientFallback) for r in got)
    finally:
        await failing.stop()


async def test_no_worker_answering_is_the_site_order() -> None:
    async with HttpRankingClient([down(), down()]) as client:
        got = await client.rank(search(1), LONG)
        assert isinstance(got, ClientFallback) and got.reason == NO_WORKER
        assert got.degraded and got.degraded_reason == NO_WORKER
        assert [i.item_id for i in got.items] == ["a", "b", "c"]
        with pytest.raises(ConnectionError):
            await client.rank(search(2), LONG, fallback=False)


async def test_past_the_deadline_the_client_answers_itself(worker: Worker) -> None:
    worker.delay = 1.0
    async with HttpRankingClient(worker.url) as client:
        got = await client.rank(search(1), SHORT)
        assert isinstance(got, ClientFallback) and got.reason == CLIENT_TIMEOUT
        with pytest.raises(TimeoutError):
            await client.rank(search(2), SHORT, fallback=False)


async def test_an_invalid_search_is_not_sent_around(worker: Worker) -> None:
    worker.status = 400
    async with HttpRankingClient([worker.url, worker.url]) as client:
        got = await client.rank(search(1), LONG)
        assert isinstance(got, ClientFallback) and got.reason == REJECTED
        assert len(worker.seen) == 1
        with pytest.raises(RankRequestError):
            await client.rank(search(2), LONG, fallback=False)


async def test_the_sync_client(worker: Worker) -> None:
    def call() -> RankedResult:
        with SyncHttpRankingClient(worker.url) as client:
            return client.rank(search(1), LONG)

    assert await asyncio.to_thread(call) == answer(search(1))
