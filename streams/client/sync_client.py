"""The client for code without an event loop (a WSGI view, a script, a notebook).

    with SyncRankingClient(KafkaClients(settings), settings.topics) as client:
        result = client.rank(search, deadline_s=0.05)

One background thread runs an event loop with a RankingClient (streams/client/loop_thread.py);
each call hands it a coroutine and blocks until it is done. Thread-safe: calls from several
threads share it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka.structs import RecordMetadata

from contracts import ActionEvent, Item, RankedResult, SearchEvent, TopicNames
from streams.client.loop_thread import LoopThread
from streams.client.ranking_client import RankingClient
from streams.kafka.connection import KafkaClients

T = TypeVar("T")

# Beyond a call's own deadline: how long the loop thread may take to hand back its answer.
GRACE_S = 5.0
CONNECT_TIMEOUT_S = 60.0


class SyncRankingClient:
    def __init__(self, clients: KafkaClients, topics: TopicNames, **options: Any) -> None:
        """`options` are RankingClient's (listen, keep_s, remember, producer_options, ...)."""
        self._loop = LoopThread("streamrank-client")
        self._client: RankingClient | None = None
        try:
            self._client = self._call(self._open(clients, topics, options), CONNECT_TIMEOUT_S)
        except BaseException:
            self._shutdown()
            raise

    @staticmethod
    async def _open(clients: KafkaClients, topics: TopicNames,
                    options: dict[str, Any]) -> RankingClient:
        client = RankingClient(clients, topics, **options)
        await client.start()
        return client

    def __enter__(self) -> SyncRankingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> RankingClient:
        if self._client is None:
            raise RuntimeError("SyncRankingClient is closed")
        return self._client

    def rank(self, search: SearchEvent, deadline_s: float, *,
             fallback: bool = True) -> RankedResult:
        """RankingClient.rank: the worker's answer, or the site's order past the deadline."""
        return self._call(self.client.rank(search, deadline_s, fallback=fallback),
                          deadline_s + GRACE_S)

    def publish_search(self, search: SearchEvent, *, expect: bool = False,
                       timeout_s: float = 30.0) -> RecordMetadata:
        return self._call(self.client.publish_search(search, expect=expect), timeout_s)

    def publish_action(self, action: ActionEvent, timeout_s: float = 30.0) -> RecordMetadata:
        return self._call(self.client.publish_action(action), timeout_s)

    def publish_item(self, item: Item, timeout_s: float = 30.0) -> RecordMetadata:
        return self._call(self.client.publish_item(item), timeout_s)

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            self._call(client.stop(), CONNECT_TIMEOUT_S)
        self._shutdown()

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        return self._loop.call(coro, timeout_s)

    def _shutdown(self) -> None:
        self._loop.close()


__all__ = ["SyncRankingClient"]
