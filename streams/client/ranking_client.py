"""The async client: publish events with the right keys; rank a search through Kafka.

    async with RankingClient(KafkaClients(settings), settings.topics) as client:
        await client.publish_item(item)                      # key: item_id
        await client.publish_action(action)                  # key: user_id
        result = await client.rank(search, deadline_s=0.05)  # key: user_id

`rank` publishes the search and awaits the worker's RankedResult for its request_id; past the
deadline (measured from the call) it answers in the site's order itself, degraded, as a
ClientFallback with the reason. A request_id is published once: a second `rank` of one still
awaited waits for the same result, and with `remember=N` one answered recently is answered
from that first result (workers answer a request_id once). For tools that publish bursts and
measure: `send_search`
(registers the request_id, returns the delivery future without waiting), then `results`
(all of them) or `replies` (each as it arrives), each a Reply with the send, acknowledgement
and receipt times.

One group-less consumer reads every partition of the recommendations topic from the end
(from its creation if it does not exist yet), so results of searches sent after `start` are
seen whichever worker answers; results of other clients' searches are dropped unread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from pydantic import ValidationError

from contracts import ActionEvent, Item, RankedResult, SearchEvent, TopicNames, encode
from streams.client.fallback import CLIENT_TIMEOUT, PUBLISH_FAILED, site_order
from streams.client.pending import Pending, Reply
from streams.client.recent import RecentResults
from streams.kafka.connection import KafkaClients
from streams.kafka.topology import partitions_of

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer, Producer

log = logging.getLogger(__name__)

TOPIC_POLL_S = 1.0  # how often a missing recommendations topic is looked for
Delivery = asyncio.Future[RecordMetadata]


class RankingClient:
    def __init__(
        self,
        clients: KafkaClients,
        topics: TopicNames,
        *,
        listen: bool = True,
        keep_s: float = 300.0,
        max_waiting: int = 100_000,
        remember: int = 0,
        producer_options: dict[str, Any] | None = None,
        fetch_max_wait_ms: int = 10,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`listen=False`: publish only (no consumer). `keep_s`/`max_waiting` bound the
        searches waiting for a result (streams/client/pending.py); `remember`: recent results
        kept to answer a repeated request_id (streams/client/recent.py)."""
        self.clients = clients
        self.topics = topics
        self.listen = listen
        self.clock = clock
        self.pending = Pending(keep_s=keep_s, limit=max_waiting, clock=clock)
        self.recent = RecentResults(remember)
        self._waiters: Counter[str] = Counter()  # rank() calls per request_id in flight
        self.fallbacks: Counter[str] = Counter()
        self._producer_options = {"acks": "all", "linger_ms": 0, **(producer_options or {})}
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RankingClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect; once this returns, every result of a search sent afterwards is seen."""
        try:
            # aiokafka clients bind to the running loop: built here, not in __init__.
            self._producer = self.clients.producer(**self._producer_options)
            await self._producer.start()
            if self.listen:
                self._consumer = self.clients.consumer(
                    group_id=None, enable_auto_commit=False, auto_offset_reset="latest",
                    fetch_max_wait_ms=self._fetch_max_wait_ms,
                )
                await self._consumer.start()
                assigned = await self._assign(at_end=True)
                self._reader = asyncio.create_task(self._read(assigned),
                                                   name="streamrank-client-results")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self.pending.close()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()  # flushes what was sent
            self._producer = None

    # -- publishing --------------------------------------------------------------------------

    async def send_search(self, search: SearchEvent, *, expect: bool = True) -> Delivery:
        """Publish `search` (key: user_id) without waiting for the broker; with `expect`, its
        result is kept for `result`/`results`/`replies` (without: only if `expect` was called
        for it before). Returns the delivery future."""
        if expect:
            self._must_listen()
            self.pending.expect(search.request_id)
        else:
            self.pending.sent(search.request_id)
        try:
            delivery = await self._send(self.topics.search, search.user_id, encode(search))
        except BaseException as exc:
            self.pending.fail(search.request_id, exc)
            raise
        rid = search.request_id
        delivery.add_done_callback(lambda f: self._acked(rid, f))
        return delivery

    async def publish_search(self, search: SearchEvent, *, expect: bool = True) -> RecordMetadata:
        """`send_search`, then wait for the broker's acknowledgement."""
        return await (await self.send_search(search, expect=expect))

    async def send_action(self, action: ActionEvent) -> Delivery:
        """Publish `action` (key: user_id: the partition of the user's searches)."""
        return self._logged(await self._send(self.topics.action, action.user_id, encode(action)))

    async def publish_action(self, action: ActionEvent) -> RecordMetadata:
        return await (await self.send_action(action))

    async def send_item(self, item: Item) -> Delivery:
        """Publish a catalog item (key: item_id; the topic is compacted by it)."""
        return self._logged(await self._send(self.topics.catalog, item.item_id, encode(item)))

    async def publish_item(self, item: Item) -> RecordMetadata:
        return await (await self.send_item(item))

    async def flush(self) -> None:
        """Until everything sent so far is acknowledged (or failed)."""
        if self._producer is not None:
            await self._producer.flush()

    # -- waiting -----------------------------------------------------------------------------

    async def rank(
        self, search: SearchEvent, deadline_s: float, *, fallback: bool = True
    ) -> RankedResult:
        """The worker's RankedResult for `search`, or by `deadline_s` after the call the
        site's order (a degraded ClientFallback). `fallback=False`: TimeoutError instead."""
        self._must_listen()
        rid = search.request_id
        first = self.recent.get(rid)
        if first is not None and first.user_id == search.user_id:
            return first  # answered before: its first result, not a second ranking
        joined = rid in self.pending  # the same request in flight: wait for its result
        future = self.pending.future(rid) if joined else self.pending.expect(rid)
        self._waiters[rid] += 1
        try:
            async with asyncio.timeout(deadline_s):
                if not joined:
                    delivery = await self._send(self.topics.search, search.user_id,
                                                encode(search))
                    await asyncio.shield(delivery)  # a cancelled send would not undo it
                    self.pending.acked(rid)
                # Shielded: one caller's deadline must not cancel another's wait.
                return (await asyncio.shield(future)).result
        except TimeoutError:
            if not fallback:
                raise
            self.fallbacks[CLIENT_TIMEOUT] += 1
            return site_order(search, CLIENT_TIMEOUT)
        except KafkaError as exc:
            if not fallback:
                raise
            log.warning("search %s not published (%r): answered in the site's order",
                        search.request_id, exc)
            self.fallbacks[PUBLISH_FAILED] += 1
            return site_order(search, PUBLISH_FAILED)
        finally:
            self._waiters[rid] -= 1
            if self._waiters[rid] <= 0:
                del self._waiters[rid]
                self.pending.forget(rid)

    def expect(self, request_ids: Iterable[str]) -> None:
        """Keep the results of searches published some other way (call before publishing)."""
        self._must_listen()
        for request_id in request_ids:
            self.pending.expect(request_id)

    async def result(self, request_id: str, timeout_s: float) -> Reply:
        return (await self.results([request_id], timeout_s))[request_id]

    async def results(self, request_ids: Iterable[str], timeout_s: float) -> dict[str, Reply]:
        """The Reply of every expected request, by request_id; TimeoutError names the
        missing ones. The entries are gone afterwards either way."""
        futures = self._futures(request_ids)
        try:
            if futures:
                await asyncio.wait(futures.values(), timeout=timeout_s)
            missing = [rid for rid, f in futures.items() if not f.done()]
            if missing:
                raise TimeoutError(f"{len(missing)} of {len(futures)} searches unanswered "
                                   f"after {timeout_s:.0f}s (e.g. {missing[:3]})")
            return {rid: f.result() for rid, f in futures.items()}
        finally:
            for rid in futures:
                self.pending.forget(rid)

    async def replies(self, request_ids: Iterable[str], timeout_s: float) -> AsyncIterator[Reply]:
        """Each expected request's Reply as it arrives; TimeoutError once `timeout_s` passed
        with some still missing."""
        futures = self._futures(request_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiting: set[asyncio.Future[Reply]] = set(futures.values())
        try:
            while waiting:
                done, waiting = await asyncio.wait(waiting, timeout=deadline - loop.time(),
                                                   return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise TimeoutError(f"{len(waiting)} of {len(futures)} searches unanswered "
                                       f"after {timeout_s:.0f}s")
                for reply in sorted((f.result() for f in done), key=lambda r: r.received_s):
                    yield reply
        finally:
            for rid in futures:
                self.pending.forget(rid)

    def stats(self) -> dict[str, int]:
        """Matched, dropped, expired and waiting results; fallbacks by reason."""
        return {**self.pending.stats(),
                **{f"fallback_{reason}": n for reason, n in self.fallbacks.items()}}

    # -- internals ---------------------------------------------------------------------------

    def _must_listen(self) -> None:
        if not self.listen:
            raise RuntimeError("this RankingClient publishes only (listen=False)")

    def _futures(self, request_ids: Iterable[str]) -> dict[str, asyncio.Future[Reply]]:
        futures = {}
        for rid in request_ids:
            if rid not in self.pending:
                raise KeyError(f"{rid!r} is not awaited: send it with send_search (or call "
                               "expect before publishing it), and take each result once")
            futures[rid] = self.pending.future(rid)
        return futures

    async def _send(self, topic: str, key: str, value: bytes) -> Delivery:
        if self._producer is None:
            raise RuntimeError("RankingClient is not started (use `async with` or start())")
        delivery: Delivery = await self._producer.send(topic, value, key=key.encode())
        return delivery

    def _acked(self, request_id: str, delivery: Delivery) -> None:
        if delivery.cancelled():
            return
        error = delivery.exception()
        if error is None:
            self.pending.acked(request_id, self.clock())
        else:
            log.warning("search %s not published: %r", request_id, error)
            self.pending.fail(request_id, error)

    @staticmethod
    def _logged(delivery: Delivery) -> Delivery:
        def check(f: Delivery) -> None:
            if not f.cancelled() and f.exception() is not None:
                log.warning("publishing failed: %r", f.exception())

        delivery.add_done_callback(check)
        return delivery

    async def _assign(self, *, at_end: bool) -> bool:
        """Read every partition of the results topic: from now on (`at_end`), or whole."""
        assert self._consumer is not None
        topic = self.topics.recommendations
        tps = [TopicPartition(topic, p) for p in await partitions_of(self.clients, topic)]
        if not tps:
            return False
        self._consumer.assign(tps)
        if at_end:
            await self._consumer.seek_to_end(*tps)
            for tp in tps:
                await self._consumer.position(tp)  # resolved now, before any search is sent
        else:
            await self._consumer.seek_to_beginning(*tps)
        return True

    async def _read(self, assigned: bool) -> None:
        assert self._consumer is not None
        while True:
            try:
                if not assigned:
                    # Not created yet (no worker ran): everything it will hold is new to us.
                    await asyncio.sleep(TOPIC_POLL_S)
                    assigned = await self._assign(at_end=False)
                    continue
                batch = await self._consumer.getmany(timeout_ms=500)
                now = self.clock()
                for records in batch.values():
                    for record in records:
                        self._route(record.value, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading %s failed; retrying", self.topics.recommendations)
                await asyncio.sleep(TOPIC_POLL_S)

    def _route(self, value: bytes | None, received_s: float) -> None:
        # Only the request_id is looked at before a result is known to be wanted: other
        # clients' results cost a JSON parse, never a validation.
        try:
            data = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            data = None
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if isinstance(request_id, str) and value:
            self.recent.add(request_id, value)
        if not isinstance(request_id, str) or not self.pending.wants(request_id):
            self.pending.dropped += 1
            return
        try:
            result = RankedResult.model_validate(data)
        except ValidationError as exc:
            log.warning("result for %s is not a RankedResult: %s", request_id, exc)
            return
        self.pending.deliver(result, received_s)


__all__ = ["RankingClient", "Reply"]
