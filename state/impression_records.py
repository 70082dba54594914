"""The records of an impression: what one user was shown, and that user's index of them.

Plain data with their JSON encodings (orjson serializes the dataclasses directly); the logic
that keeps, labels and closes them is state/impressions.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from contracts import LABELS, TrainingSample

MAX_TEXT = 2048  # TrainingSample's ShortText


def sample_id(request_id: str, item_id: str) -> str:
    """The dedup key of one (request, item): readable when unambiguous, else a digest."""
    joined = f"{request_id}|{item_id}"
    if "|" in request_id or len(joined) > 256:
        pair = f"{len(request_id)}:{request_id}{item_id}".encode()
        return "h:" + hashlib.blake2b(pair, digest_size=16).hexdigest()
    return joined


@dataclass
class Impression:
    request_id: str
    user_id: str
    ts: int  # the search's own time (site clock): what an action's ts is compared with
    received_ts: int  # worker clock, like close_at
    close_at: int
    query: str
    history: list[str]
    model_version: str
    items: list[tuple[str, float]]  # shown order: (item_id, published score)
    labels: dict[str, str] = field(default_factory=dict)  # item_id -> strongest action
    closed: bool = False  # window closed: labels frozen, samples being emitted

    def shows(self, item_id: str) -> bool:
        return any(i == item_id for i, _ in self.items)

    def label(self, item_id: str, action: str) -> bool:
        """Record `action` on a shown item; True if it is stronger than what was there."""
        if LABELS[action] <= LABELS[self.labels.get(item_id, "skipped")]:
            return False
        self.labels[item_id] = action
        return True

    def samples(self, item_text: Callable[[str], str]) -> list[TrainingSample]:
        out = []
        for position, (item_id, score) in enumerate(self.items):
            action = self.labels.get(item_id, "skipped")
            out.append(TrainingSample(
                sample_id=sample_id(self.request_id, item_id), request_id=self.request_id,
                user_id=self.user_id, ts=self.ts, query=self.query, history=self.history,
                item_id=item_id, item_text=item_text(item_id)[:MAX_TEXT], label=LABELS[action],
                action=action,  # type: ignore[arg-type]  # a key of LABELS
                position=position, shown_score=score, model_version=self.model_version,
                candidates=len(self.items),
            ))
        return out

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # orjson serializes dataclasses natively (asdict is slow)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Impression:
        data = orjson.loads(raw)
        data["items"] = [(i, s) for i, s in data["items"]]
        return cls(**data)


@dataclass
class UserIndex:
    open: list[list[str | int]] = field(default_factory=list)  # [request_id, ts], newest first
    done: list[list[str | int]] = field(default_factory=list)  # [request_id, forget_at]
    early: list[list[str | int]] = field(default_factory=list)  # [rid, item, action, forget_at]
    gc_at: int = 0  # when a clean-up of this index is scheduled (0: none)

    def knows(self, request_id: str) -> bool:
        return any(e[0] == request_id for e in (*self.open, *self.done))

    def empty(self) -> bool:
        return not (self.open or self.done or self.early)
