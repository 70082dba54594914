"""Searches waiting for their RankedResult, matched by request_id. No Kafka here.

The client reads every result on the recommendations topic (all partitions: a user's
partition decides where the worker publishes, not which client asked), so it sees other
clients' results too. Memory stays bounded whatever arrives:
- a result nobody waits for is dropped at once (counted, never stored);
- an entry lives until its caller takes it, or at most `keep_s` after it was expected, and
  at most `limit` entries are kept (the oldest go first); either way a caller still waiting
  gets TimeoutError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from contracts import RankedResult


@dataclass(frozen=True)
class Reply:
    """A worker's RankedResult with the client's own times (seconds on `clock`)."""

    result: RankedResult
    sent_s: float  # the search was handed to the producer
    acked_s: float | None  # the broker acknowledged the search (None: not seen yet)
    received_s: float  # the client read the result

    @property
    def latency_ms(self) -> float:
        """From the broker's acknowledgement of the search (else its send) to the result."""
        start = self.acked_s if self.acked_s is not None else self.sent_s
        return max(0.0, self.received_s - start) * 1000


class _Entry:
    __slots__ = ("acked_s", "expires_s", "future", "sent_s")

    def __init__(self, future: asyncio.Future[Reply], sent_s: float, expires_s: float) -> None:
        self.future = future
        self.sent_s = sent_s
        self.acked_s: float | None = None
        self.expires_s = expires_s


class Pending:
    """request_id -> the future its Reply is delivered to."""

    def __init__(
        self, *, keep_s: float = 300.0, limit: int = 100_000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if keep_s <= 0 or limit < 1:
            raise ValueError("keep_s must be > 0 and limit >= 1")
        self.keep_s = keep_s
        self.limit = limit
        self.clock = clock
        self._entries: dict[str, _Entry] = {}  # insertion order = expiry order
        self.matched = 0
        self.dropped = 0  # results nobody waited for (other clients', late, repeated)
        self.expired = 0  # entries given up (keep_s or limit) before they were taken

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._entries

    def expect(self, request_id: str) -> asyncio.Future[Reply]:
        """Wait for `request_id` (call before the search is published: a fast answer must
        find its entry)."""
        now = self.clock()
        self.expire(now)
        if request_id in self._entries:
            raise ValueError(f"request_id {request_id!r} is already awaited: ids must be unique")
        while len(self._entries) >= self.limit:
            self._give_up(next(iter(self._entries)), "limit of waiting searches reached")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._entries[request_id] = _Entry(future, now, now + self.keep_s)
        return future

    def sent(self, request_id: str, at_s: float | None = None) -> None:
        """The search was handed to the producer (when expected earlier than sent)."""
        entry = self._entries.get(request_id)
        if entry is not None:
            entry.sent_s = self.clock() if at_s is None else at_s

    def acked(self, request_id: str, at_s: float | None = None) -> None:
        entry = self._entries.get(request_id)
        if entry is not None and entry.acked_s is None:
            entry.acked_s = self.clock() if at_s is None else at_s

    def wants(self, request_id: str) -> bool:
        """Whether a result for `request_id` would be kept (checked before decoding it)."""
        entry = self._entries.get(request_id)
        return entry is not None and not entry.future.done()

    def deliver(self, result: RankedResult, received_s: float | None = None) -> bool:
        """Hand `result` to whoever waits for it; False (and dropped) if nobody does."""
        now = self.clock() if received_s is None else received_s
        self.expire(now)
        entry = self._entries.get(result.request_id)
        if entry is None or entry.future.done():
            self.dropped += 1
            return False
        entry.future.set_result(Reply(result, entry.sent_s, entry.acked_s, now))
        self.matched += 1
        return True

    def future(self, request_id: str) -> asyncio.Future[Reply]:
        """The future of an expected request (KeyError if it is not, or no longer, expected)."""
        return self._entries[request_id].future

    def take(self, request_id: str) -> Reply | None:
        """Remove the entry; its Reply if it had arrived."""
        entry = self._entries.pop(request_id, None)
        if entry is None or not entry.future.done() or entry.future.cancelled():
            return None
        return None if entry.future.exception() is not None else entry.future.result()

    def forget(self, request_id: str) -> None:
        """Stop waiting (a caller's deadline passed): a later result is dropped."""
        entry = self._entries.pop(request_id, None)
        if entry is not None and not entry.future.done():
            entry.future.cancel()

    def fail(self, request_id: str, error: BaseException) -> None:
        """The search could not be published: its waiter learns now, not at its deadline."""
        entry = self._entries.get(request_id)
        if entry is not None and not entry.future.done():
            entry.future.set_exception(error)
            entry.future.exception()  # retrieved: no warning if nobody awaits it

    def close(self) -> None:
        """Give up every entry (the client stops): waiters get TimeoutError."""
        for request_id in list(self._entries):
            self._give_up(request_id, "the client stopped")

    def expire(self, now: float | None = None) -> int:
        """Give up entries older than keep_s; how many."""
        now = self.clock() if now is None else now
        gone = 0
        while self._entries:
            request_id, entry = next(iter(self._entries.items()))
            if entry.expires_s > now:
                break
            self._give_up(request_id, f"not taken within {self.keep_s:.0f}s")
            gone += 1
        return gone

    def _give_up(self, request_id: str, why: str) -> None:
        entry = self._entries.pop(request_id)
        self.expired += 1
        if not entry.future.done():
            entry.future.set_exception(TimeoutError(f"no result for {request_id}: {why}"))
            entry.future.exception()  # retrieved: no "never retrieved" warning if unawaited

    def stats(self) -> dict[str, int]:
        return {"waiting": len(self._entries), "matched": self.matched,
                "dropped": self.dropped, "expired": self.expired}


__all__ = ["Pending", "Reply"]
