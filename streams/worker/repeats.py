"""A request_id is answered once: the worker never ranks, keeps or publishes it twice.

A site may send the same search twice (a retry, or over both Kafka and `POST /rank`, or to
two workers' `/rank`); the user's partition brings every copy to the worker that owns it,
which answers the first and skips the others: their answer is the first result (the rank API
and the client library hand it to whoever asks again, streams/worker/rank_api.py).

What this process answered or is answering is kept in memory, bounded (the oldest forgotten
first). Deliberately not the impression table: after a crash, a search whose result may not
have reached the broker is read again, and it must then be answered again (a duplicate that
consumers drop by request_id) rather than skipped because its impression was restored.
"""

from __future__ import annotations

from collections import OrderedDict

REMEMBERED = 100_000  # request ids, ~100 bytes each


class Repeats:
    def __init__(self, remember: int = REMEMBERED) -> None:
        if remember < 0:
            raise ValueError("remember must be >= 0")
        self.remember = remember
        self._in_flight: set[tuple[str, str]] = set()
        self._answered: OrderedDict[tuple[str, str], None] = OrderedDict()

    def begin(self, user_id: str, request_id: str) -> bool:
        """True: answer it (now marked in flight); False: answered or being answered."""
        key = (user_id, request_id)
        if key in self._in_flight or key in self._answered:
            return False
        self._in_flight.add(key)
        return True

    def done(self, user_id: str, request_id: str) -> None:
        """Its answer is out: every later copy is a repeat."""
        key = (user_id, request_id)
        self._in_flight.discard(key)
        if self.remember:
            self._answered[key] = None
            while len(self._answered) > self.remember:
                self._answered.popitem(last=False)

    def abandon(self, user_id: str, request_id: str) -> None:
        """Answering it failed: a later copy is answered."""
        self._in_flight.discard((user_id, request_id))

    def __len__(self) -> int:
        return len(self._answered)


__all__ = ["Repeats"]
