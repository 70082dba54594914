"""Publishing a RankedResult: acknowledged before the search counts as processed.

The guarantee (docs/architecture.md, "Reliability"): every search whose offset is committed
has its result acknowledged by the broker (acks=all), because the agent awaits the
acknowledgement before it takes the next search, and Faust commits only processed offsets.
After a crash the searches read since the last commit are answered again, so a result may
appear twice on the topic; both copies carry the same request_id, and consumers deduplicate
by it (streams/client does: the first result resolves the search, a later one finds nobody
waiting and is dropped). Kafka transactions would hide the second copy only from
read_committed consumers, at the price of holding every result until the next commit
(measured in docs/architecture.md), which this latency-bound path does not pay.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from contracts import RankedResult, encode

log = logging.getLogger(__name__)

RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class ResultPublisher:
    def __init__(self, topic: Any, on_retry: Callable[[], None] | None = None) -> None:
        self._topic = topic
        self._on_retry = on_retry
        self.retries = 0

    async def publish(self, result: RankedResult) -> None:
        """Send `result` keyed by its user and wait for the broker's acknowledgement,
        retrying while the broker is away (the search stays unacknowledged meanwhile)."""
        value = encode(result)
        attempt = 0
        while True:
            try:
                pending = await self._topic.send(key=result.user_id, value=value)
                if inspect.isawaitable(pending):  # Faust's delivery future
                    await pending
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                attempt += 1
                self.retries += 1
                if self._on_retry is not None:
                    self._on_retry()
                log.warning("publishing the result of %s failed (%r); retry %d in %.1f s",
                            result.request_id, exc, attempt, delay)
                await asyncio.sleep(delay)
