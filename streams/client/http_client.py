"""The HTTP path: a search to a worker's `POST /rank`, its RankedResult back, within a deadline.

    async with HttpRankingClient(["http://worker-1:6066", "http://worker-2:6066"]) as client:
        result = await client.rank(search, deadline_s=0.05)

    with SyncHttpRankingClient("http://worker-1:6066") as client:   # code without a loop
        result = client.rank(search, deadline_s=0.05)

Any worker accepts a search (the one owning the user answers it: streams/worker/rank_api.py).
The client asks the workers in turn, starting with the next one each call; a worker that is
unreachable or answers 5xx is skipped for the next one while time remains. The worker is
given the deadline minus a margin for the way back, so it answers (ranked, or degraded in the
site's order) before the client gives up. Past the deadline, or when no worker accepts, the
client answers itself in the site's order (a degraded ClientFallback: `client_timeout`,
`no_worker`); a search a worker refuses as invalid (400) is `rejected`, or raises
RankRequestError with `fallback=False`. One HTTP session keeps connections open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp

from contracts import DecodeError, RankedResult, SearchEvent, decode, encode
from streams.client.fallback import CLIENT_TIMEOUT, NO_WORKER, REJECTED, site_order
from streams.client.loop_thread import LoopThread

log = logging.getLogger(__name__)

MARGIN_S = 0.005  # left to the way back: the worker's own deadline is the client's minus this
GRACE_S = 5.0  # sync client: beyond a call's own deadline, for the loop thread to hand back
INVALID = (400, 413, 422)  # the search itself is refused: no other worker would take it


class RankRequestError(ValueError):
    """A worker refused the search as invalid (HTTP 400): sending it elsewhere cannot help."""


class HttpRankingClient:
    def __init__(
        self, urls: str | Sequence[str], *, margin_s: float = MARGIN_S,
        max_connections: int = 100,
    ) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("at least one worker URL is needed")
        self.urls = [u.rstrip("/") for u in self.urls]
        self.margin_s = margin_s
        self.max_connections = max_connections
        self.fallbacks: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()  # by worker URL: unreachable or 5xx
        self._next = itertools.cycle(range(len(self.urls)))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpRankingClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._session is None:
            # Bound to the running loop: built here, not in __init__.
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self._session = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def rank(
        self, search: SearchEvent, deadline_s: float, *, fallback: bool = True
    ) -> RankedResult:
        """A worker's RankedResult for `search`, or by `deadline_s` after the call the site's
        order (a degraded ClientFallback). `fallback=False`: TimeoutError (or ConnectionError
        when no worker accepted) instead."""
        if self._session is None:
            raise RuntimeError("HttpRankingClient is not started (use `async with` or start())")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        body = encode(search)
        first = next(self._next)
        reason = NO_WORKER
        for k in range(len(self.urls)):
            url = self.urls[(first + k) % len(self.urls)]
            remaining = deadline - loop.time()
            if remaining <= 0:
                reason = CLIENT_TIMEOUT
                break
            try:
                async with asyncio.timeout(remaining):
                    result = await self._post(url, body, remaining)
            except TimeoutError:
                reason = CLIENT_TIMEOUT
                break
            except (aiohttp.ClientError, OSError) as exc:
                self.failures[url] += 1
                log.debug("worker %s did not take search %s: %r", url, search.request_id, exc)
                continue
            except RankRequestError:
                if not fallback:
                    raise
                log.warning("search %s refused as invalid: answered in the site's order",
                            search.request_id)
                reason = REJECTED
                break
            if result is not None:
                return result
            self.failures[url] += 1  # not answered there: the next worker may
        if not fallback:
            if reason == CLIENT_TIMEOUT:
                raise TimeoutError(f"no result for {search.request_id} in {deadline_s:.3f}s")
            raise ConnectionError(f"no worker of {self.urls} accepted {search.request_id}")
        self.fallbacks[reason] += 1
        return site_order(search, reason)

    async def _post(self, url: str, body: bytes, remaining_s: float) -> RankedResult | None:
        """The worker's answer; None when it did not answer one (5xx, 404)."""
        assert self._session is not None
        worker_ms = max(1, round((remaining_s - self.margin_s) * 1000))
        async with self._session.post(
            f"{url}/rank", data=body, params={"deadline_ms": str(worker_ms)},
            headers={"Content-Type": "application/json"},
        ) as response:
            raw = await response.read()
            if response.status == 200:
                try:
                    return decode(raw, RankedResult)
                except DecodeError as exc:
                    raise aiohttp.ClientPayloadError(f"not a RankedResult: {exc}") from exc
            if response.status in INVALID:
                raise RankRequestError(raw.decode(errors="replace")[:500])
            return None  # anything else (404: not a worker, 5xx): the next worker may do

    def stats(self) -> dict[str, int]:
        return {**{f"fallback_{r}": n for r, n in self.fallbacks.items()},
                **{f"failures {u}": n for u, n in self.failures.items()}}


class SyncHttpRankingClient:
    """HttpRankingClient for code without an event loop (one background loop thread)."""

    def __init__(self, urls: str | Sequence[str], **options: Any) -> None:
        self._loop = LoopThread("streamrank-http-client")
        self._client = HttpRankingClient(urls, **options)
        try:
            self._loop.call(self._client.start(), GRACE_S)
        except BaseException:
            self._loop.close()
            raise

    def __enter__(self) -> SyncHttpRankingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> HttpRankingClient:
        return self._client

    def rank(self, search: SearchEvent, deadline_s: float, *,
             fallback: bool = True) -> RankedResult:
        return self._loop.call(self._client.rank(search, deadline_s, fallback=fallback),
                               deadline_s + GRACE_S)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # closed already
            self._loop.call(self._client.stop(), GRACE_S)
        self._loop.close()


__all__ = ["HttpRankingClient", "RankRequestError", "SyncHttpRankingClient"]
