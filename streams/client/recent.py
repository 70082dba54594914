"""The last results read, by request_id: a repeated request is answered from its first result.

A worker answers each request_id once (streams/worker/repeats.py), so a search sent again (a
retry, or over another path) gets no second result; whoever reads results can hand the first
one out instead. Kept raw (bytes as read) and decoded only when asked for, at most `limit`,
the oldest forgotten first; the first result of a request_id wins.
"""

from __future__ import annotations

from collections import OrderedDict

from pydantic import ValidationError

from contracts import DecodeError, RankedResult, decode


class RecentResults:
    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self.limit = limit
        self._raw: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._raw)

    def add(self, request_id: str, raw: bytes) -> None:
        if not self.limit or request_id in self._raw:
            return
        self._raw[request_id] = raw
        while len(self._raw) > self.limit:
            self._raw.popitem(last=False)

    def get(self, request_id: str) -> RankedResult | None:
        raw = self._raw.get(request_id)
        if raw is None:
            return None
        try:
            return decode(raw, RankedResult)
        except (DecodeError, ValidationError):
            del self._raw[request_id]
            return None


__all__ = ["RecentResults"]
