"""Impressions: the rankings users were shown, what they did next, and the samples they become.

Every published ranking is kept as an impression: request, query, the user's history texts at
that moment (what the model read), shown items with their published scores in shown order,
the feature matrix the model scored them with and the model version. Actions label it until
its attribution window closes; then it becomes one TrainingSample (the whole shown list).
Labels are graded by the strongest action (purchase > add_to_cart > click); a `view` is not a
label (sites report views of items a user never chose, e.g. carousels), and an item nobody
acted on is "skipped".

Layout over any str→bytes store. One user's keys live in the user's Kafka partition:
  i/<len(user)>:<user>/<request_id>  one impression
  u/<user>     index: open impressions newest first, request ids already emitted (kept for
               the TTL, so a replayed or repeated search is not shown twice to the trainer),
               actions that cited a request not seen yet (searches and actions are different
               topics, so an action can overtake its search)
  k/<p>        offset in samples partition p up to which emissions are reflected here
plus the due wheel (state/due.py) that says when windows close.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy.typing as npt
import orjson

from contracts import LABELS, ActionEvent, RankedResult, SearchEvent
from state.due import Due, DueWheel
from state.impression_records import Impression, UserIndex, pack_features
from state.kv import KeyValue

MAX_EARLY = 100  # actions waiting for their search, per user

__all__ = ["Closing", "Impression", "ImpressionStore", "UserIndex"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Closing:
    """Impressions whose window closed at a tick, and the wheel seconds that produced them."""

    impressions: list[Impression]
    due: Due
    cutoff_ms: int

    @property
    def partition(self) -> int:
        return self.due.partition


class ImpressionStore:
    def __init__(
        self, kv: KeyValue, *, window_ms: int, ttl_ms: int, max_per_user: int = 50,
        max_samples: int = 20_000, clock: Callable[[], int] = _now_ms,
    ) -> None:
        if ttl_ms < window_ms:
            raise ValueError("the impression TTL must be at least the attribution window")
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self._kv = kv
        self.wheel = DueWheel(kv, clock)
        self.window_ms, self.ttl_ms = window_ms, ttl_ms
        self.max_per_user, self.max_samples = max_per_user, max_samples
        self._clock = clock

    # -- keys and codecs ----------------------------------------------------------------

    @staticmethod
    def _imp_key(user_id: str, request_id: str) -> str:
        return f"i/{len(user_id)}:{user_id}/{request_id}"

    def load(self, user_id: str, request_id: str) -> Impression | None:
        raw = self._kv.get(self._imp_key(user_id, request_id))
        return None if raw is None else Impression.from_bytes(raw)

    def _save(self, imp: Impression) -> None:
        self._kv[self._imp_key(imp.user_id, imp.request_id)] = imp.to_bytes()

    def index(self, user_id: str) -> UserIndex:
        raw = self._kv.get(f"u/{user_id}")
        return UserIndex() if raw is None else UserIndex(**orjson.loads(raw))

    def _save_index(self, user_id: str, index: UserIndex) -> None:
        if index.empty():
            self._kv.pop(f"u/{user_id}", None)
        else:
            self._kv[f"u/{user_id}"] = orjson.dumps(index)

    def _ensure_gc(self, index: UserIndex, user_id: str, partition: int, at_ms: int) -> None:
        if not index.gc_at:
            index.gc_at = at_ms
            self.wheel.schedule(partition, at_ms, [user_id])

    def open(self, user_id: str) -> list[Impression]:
        """The user's impressions whose window is still open, newest first."""
        found = (self.load(user_id, str(rid)) for rid, _ in self.index(user_id).open)
        return [imp for imp in found if imp is not None]

    # -- the search side ----------------------------------------------------------------

    def record(
        self, search: SearchEvent, result: RankedResult, history: list[str], partition: int,
        features: npt.ArrayLike | None = None, feature_spec: str = "",
    ) -> bool:
        """Keep `result` as shown to the user, with the features the model scored its items
        with (rows in the result's order); False for a request id already kept."""
        index = self.index(search.user_id)
        if index.knows(search.request_id):
            return False
        imp = Impression(
            request_id=search.request_id, user_id=search.user_id, ts=search.ts,
            received_ts=result.received_ts, close_at=result.received_ts + self.window_ms,
            query=search.query, history=list(history), model_version=result.model_version,
            items=[(i.item_id, i.score) for i in result.items],
            feature_spec=feature_spec if features is not None else "",
            features=pack_features(features, len(result.items)),
        )
        waiting = [e for e in index.early if e[0] == search.request_id]
        for _, item, action, _ in waiting:
            if imp.shows(str(item)):
                imp.label(str(item), str(action))
        index.early = [e for e in index.early if e[0] != search.request_id]
        self._save(imp)
        at = next((n for n, (_, ts) in enumerate(index.open) if int(ts) <= imp.ts),
                  len(index.open))
        index.open.insert(at, [imp.request_id, imp.ts])
        self.wheel.schedule(partition, imp.close_at, [imp.user_id, imp.request_id])
        # Over the cap the oldest close now (at the next tick) rather than vanish unlabelled.
        for rid, _ in index.open[self.max_per_user:]:
            self.wheel.schedule(partition, result.received_ts, [imp.user_id, str(rid)])
        self._save_index(search.user_id, index)
        return True

    # -- the action side ----------------------------------------------------------------

    def attribute(self, action: ActionEvent, partition: int) -> str:
        """Label the impression `action` answers. Returns what happened, for counters:
        attributed, repeated (not stronger than the label already there), late (window
        closed), not_shown, pending (its search not seen yet), unmatched, or not_a_label."""
        kind = str(action.action)
        if kind not in LABELS:
            return "not_a_label"
        if action.request_id is None:
            return self._attribute_latest(action, kind)
        imp = self.load(action.user_id, action.request_id)
        if imp is None:
            index = self.index(action.user_id)
            if index.knows(action.request_id):
                return "late"
            forget_at = self._clock() + self.window_ms
            waiting: list[str | int] = [action.request_id, action.item_id, kind, forget_at]
            index.early = [*index.early, waiting][-MAX_EARLY:]
            self._ensure_gc(index, action.user_id, partition, forget_at)
            self._save_index(action.user_id, index)
            return "pending"
        return self._apply(imp, action.item_id, kind)

    def _attribute_latest(self, action: ActionEvent, kind: str) -> str:
        # The latest impression that showed the item, shown before the action and at most
        # one window before it (event time on both sides: the site's clock).
        for rid, ts in self.index(action.user_id).open:
            if int(ts) > action.ts:
                continue
            if action.ts - int(ts) > self.window_ms:
                break
            imp = self.load(action.user_id, str(rid))
            if imp is not None and imp.shows(action.item_id):
                return self._apply(imp, action.item_id, kind)
        return "unmatched"

    def _apply(self, imp: Impression, item_id: str, kind: str) -> str:
        if imp.closed:
            return "late"
        if not imp.shows(item_id):
            return "not_shown"
        if not imp.label(item_id, kind):
            return "repeated"
        self._save(imp)
        return "attributed"

    # -- closing windows ----------------------------------------------------------------

    def checkpoint(self, partition: int) -> int | None:
        raw = self._kv.get(f"k/{partition}")
        return None if raw is None else int(raw)

    def close_due(self, partition: int, cutoff_ms: int) -> Closing:
        """Impressions of `partition` whose window closed by `cutoff_ms`, now frozen; at most
        about `max_samples` shown items' worth (one transaction must stay well inside Kafka's
        transaction timeout), the rest at the next call.

        Nothing is removed yet: that is `finish`, once their samples are committed.
        """
        due = self.wheel.take(partition, cutoff_ms, max_entries=self.max_samples)
        closing: dict[tuple[str, str], Impression] = {}
        samples = handled = 0
        for entry in due.entries:
            if samples >= self.max_samples:
                break
            handled += 1
            if len(entry) != 2 or (entry[0], entry[1]) in closing:
                continue  # a clean-up entry, or scheduled twice (cap overflow)
            imp = self.load(entry[0], entry[1])
            if imp is None:
                continue  # emitted already
            if not imp.closed:
                imp.closed = True
                self._save(imp)
            closing[(entry[0], entry[1])] = imp
            samples += len(imp.items)
        return Closing(list(closing.values()), due.first(handled), cutoff_ms)

    def finish(self, closing: Closing, checkpoint: int | None) -> None:
        """`closing`'s samples are committed up to `checkpoint`: retire, clean up, advance."""
        for imp in closing.impressions:
            self._retire(imp, closing.partition)
        for entry in closing.due.entries:
            if len(entry) == 1:
                self._gc(entry[0], closing.partition, closing.cutoff_ms)
        self.wheel.done(closing.due)
        # Last: a changelog holding this checkpoint holds every removal before it.
        if checkpoint is not None:
            self._kv[f"k/{closing.partition}"] = str(checkpoint).encode()

    def mark_emitted(
        self, partition: int, found: Iterable[tuple[str, str]], checkpoint: int | None
    ) -> int:
        """Samples found committed on the topic (user_id, request_id): retire their impressions.
        Returns how many were still here (emitted, but the crash lost the record of it)."""
        retired = 0
        for user_id, request_id in set(found):
            imp = self.load(user_id, request_id)
            if imp is not None:
                self._retire(imp, partition)
                retired += 1
        if checkpoint is not None:
            self._kv[f"k/{partition}"] = str(checkpoint).encode()
        return retired

    def _retire(self, imp: Impression, partition: int) -> None:
        self._kv.pop(self._imp_key(imp.user_id, imp.request_id), None)
        index = self.index(imp.user_id)
        index.open = [e for e in index.open if e[0] != imp.request_id]
        forget_at = imp.received_ts + self.ttl_ms
        marker: list[str | int] = [imp.request_id, forget_at]
        index.done = [*index.done, marker][-4 * self.max_per_user:]
        self._ensure_gc(index, imp.user_id, partition, forget_at)
        self._save_index(imp.user_id, index)

    def _gc(self, user_id: str, partition: int, now_ms: int) -> None:
        index = self.index(user_id)
        index.done = [e for e in index.done if int(e[1]) > now_ms]
        index.early = [e for e in index.early if int(e[3]) > now_ms]
        index.gc_at = 0
        remaining = [int(e[1]) for e in index.done] + [int(e[3]) for e in index.early]
        if remaining:
            self._ensure_gc(index, user_id, partition, max(remaining))
        self._save_index(user_id, index)
