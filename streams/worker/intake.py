"""What an agent accepts from its input topic: the one place a record becomes a contract.

A record is decoded (size, UTF-8, JSON, depth, contract, the worker's time window) and its key
checked against the contract's key field (user_id for searches and actions, item_id for the
catalog). Anything else raises DecodeError, which the agent sends to the deadletter topic:

- Why refuse a wrong or missing key instead of re-keying it through a repartition topic: the
  record already sits on a partition chosen by that key, so processing it there would split
  the user's state between workers, and a repartition hop would add a produce and a consume
  to every search's latency for a producer bug that should be fixed at the producer (the
  client library in streams/client always keys correctly). The deadletter record keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from contracts import ActionEvent, DecodeError, Item, SearchEvent, check_key, decode
from streams.settings import Settings

T = TypeVar("T", bound=BaseModel)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Intake:
    def __init__(self, settings: Settings, clock_ms: Callable[[], int] = _wall_ms) -> None:
        self.max_bytes = settings.max_payload_bytes
        self.min_ts = settings.min_event_ts_ms
        self.skew_ms = round(settings.max_clock_skew_s * 1000)
        self.clock_ms = clock_ms

    def context(self) -> dict[str, int]:
        """The window an event's `ts` must fall in, as of now (contracts/events.py)."""
        return {"ts_min": self.min_ts, "ts_max": self.clock_ms() + self.skew_ms}

    def record(self, model: type[T], key: bytes | str | None, value: bytes | None) -> T:
        """The contract in `value`, keyed by `key`; DecodeError otherwise."""
        event = decode(value, model, self.max_bytes, context=self.context())
        check_key(event, key)
        return event

    def search(self, event: Any) -> SearchEvent:
        return self.record(SearchEvent, event.key, event.value)

    def action(self, event: Any) -> ActionEvent:
        return self.record(ActionEvent, event.key, event.value)

    def item(self, key: bytes | str | None, value: bytes | None) -> Item | None:
        """An item, or None for a tombstone (a null value under its item_id key)."""
        if value is None:
            if key is None or len(key) == 0:
                raise DecodeError("key_missing", "a tombstone without a key deletes nothing")
            return None
        return self.record(Item, key, value)
