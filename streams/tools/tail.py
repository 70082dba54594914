"""`streamrank tail`: a readable live view of the recommendations and deadletter topics.

A RankedResult carries ids only, so the view joins, on its own, what a person wants beside it:
the search's query (events.search, by request_id), the user's last actions (events.action) and
item titles (catalog). A result of a search that asked `explain: true` shows, under each item,
the parts of its score and the history entries that weighed most. Everything is read with a
group-less consumer, so tailing never moves a worker's offsets. `TailView` is the join and the
formatting (no Kafka, unit-tested); `tail` is the consumer loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from aiokafka import TopicPartition

from contracts import (
    ActionEvent,
    DecodeError,
    Item,
    RankedItem,
    RankedResult,
    SearchEvent,
    TopicNames,
    decode,
)
from streams.kafka.connection import KafkaClients
from streams.kafka.deadletter import HEADER_PREFIX
from streams.kafka.topology import partition_counts
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer

log = logging.getLogger(__name__)

REMEMBERED_SEARCHES = 50_000  # request_id -> query, oldest forgotten first
ACTIONS_PER_USER = 5
USERS_REMEMBERED = 50_000


@dataclass(frozen=True)
class TailOptions:
    top: int = 10  # ranked items shown per result
    deadletter: bool = True
    user: str | None = None  # only this user's results
    width: int = 60  # title characters


class TailView:
    """Joins the topics' records into readable blocks of text."""

    def __init__(self, topics: TopicNames, options: TailOptions | None = None) -> None:
        self.topics = topics
        self.options = options or TailOptions()
        self.queries: OrderedDict[str, str] = OrderedDict()
        self.actions: OrderedDict[str, deque[str]] = OrderedDict()
        self.titles: dict[str, str] = {}

    def feed(
        self, topic: str, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> str | None:
        """Remember what the record tells; return a block to print for results/deadletters."""
        names = self.topics
        if topic == names.deadletter:
            return self._deadletter(value, headers) if self.options.deadletter else None
        if value is None:  # a compacted tombstone
            return None
        try:
            if topic == names.catalog:
                item = decode(value, Item)
                if item.deleted:
                    self.titles.pop(item.item_id, None)
                else:
                    self.titles[item.item_id] = item.title
            elif topic == names.search:
                search = decode(value, SearchEvent)
                self._remember(self.queries, search.request_id, search.query, REMEMBERED_SEARCHES)
            elif topic == names.action:
                self._action(decode(value, ActionEvent))
            elif topic == names.recommendations:
                return self._result(decode(value, RankedResult))
        except DecodeError:
            # Bad input is the deadletter's business; the view shows that topic instead.
            return None
        return None

    @staticmethod
    def _remember(table: OrderedDict[str, Any], key: str, value: Any, cap: int) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > cap:
            table.popitem(last=False)

    def _action(self, event: ActionEvent) -> None:
        seen = self.actions.get(event.user_id) or deque(maxlen=ACTIONS_PER_USER)
        seen.appendleft(f"{event.action} {self._title(event.item_id)}")
        self._remember(self.actions, event.user_id, seen, USERS_REMEMBERED)

    def _title(self, item_id: str) -> str:
        title = self.titles.get(item_id)
        if title is None:
            return item_id
        width = self.options.width
        return title if len(title) <= width else title[: width - 1] + "…"

    def _result(self, result: RankedResult) -> str | None:
        if self.options.user is not None and result.user_id != self.options.user:
            return None
        query = self.queries.get(result.request_id)
        latency = result.published_ts - result.received_ts
        flags = (f" DEGRADED ({result.degraded_reason or 'unranked'}: original order)"
                 if result.degraded else "")
        lines = [
            f"▶ {result.request_id}  user {result.user_id}  model {result.model_version}  "
            f"{latency} ms{flags}",
            f"  query: {query!r}" if query is not None else "  query: (search not seen)",
        ]
        recent = self.actions.get(result.user_id)
        lines.append("  last actions: " + ("; ".join(recent) if recent else "none seen"))
        shown = result.items[: self.options.top]
        for r in shown:
            lines.append(f"  {r.rank:>3}. {r.score:>9.4f}  {self._title(r.item_id)}")
            lines += self._why(r)
        if len(result.items) > len(shown):
            lines.append(f"       … {len(result.items) - len(shown)} more")
        return "\n".join(lines)

    def _why(self, item: RankedItem) -> list[str]:
        """An explained item's score parts and most weighed history entries, one line each."""
        why = item.explanation
        if why is None:
            return []
        lines = []
        if why.parts:
            lines.append("         why: " + ", ".join(f"{name} {value:+.4f}"
                                                      for name, value in why.parts.items()))
        if why.history:
            width = max(10, self.options.width // 2)
            lines.append("         history: " + "; ".join(
                f"{h.text[:width]!r} {h.weight:+.4f}" for h in why.history))
        return lines

    def _deadletter(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> str:
        meta = {
            k[len(HEADER_PREFIX) :]: v.decode("utf-8", "replace")
            for k, v in headers
            if k.startswith(HEADER_PREFIX)
        }
        raw = value or b""
        preview = raw[:120].decode("utf-8", "replace")
        where = f"{meta.get('source.topic', '?')}[{meta.get('source.partition', '?')}]" \
                f"@{meta.get('source.offset', '?')}"
        return "\n".join([
            f"✖ deadletter {meta.get('reason', '?')} from {where} ({len(raw)} bytes)",
            f"  error: {meta.get('error', '')[:200]}",
            f"  value: {preview!r}",
        ])


async def tail(
    clients: KafkaClients,
    topics: TopicNames,
    *,
    options: TailOptions | None = None,
    lookback_s: float = 600.0,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_exit_s: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print results (and deadletters) as they arrive; returns how many blocks were printed.

    Results and deadletters start at the end (or the beginning with `from_beginning`); the
    joined topics start `lookback_s` earlier so recent queries and actions are known; the
    compacted catalog is read whole."""
    view = TailView(topics, options)
    consumer = clients.consumer(enable_auto_commit=False, group_id=None)
    await consumer.start()
    printed = 0
    try:
        await _assign(consumer, clients, topics, lookback_s, from_beginning)
        last = time.monotonic()
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            records = sorted((r for rs in batch.values() for r in rs), key=_order)
            if records:
                last = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - last > idle_exit_s:
                break
            for record in records:
                block = view.feed(record.topic, record.value, list(record.headers or ()))
                if block is not None:
                    print(block, file=out, flush=True)
                    printed += 1
                    if limit is not None and printed >= limit:
                        break
    finally:
        await consumer.stop()
    return printed


def _order(record: Any) -> tuple[int, int]:
    # Within one poll, context (catalog, searches, actions) before what refers to it.
    return (int(record.timestamp), 0 if "recommendations" not in record.topic else 1)


async def _assign(
    consumer: Consumer,
    clients: KafkaClients,
    topics: TopicNames,
    lookback_s: float,
    from_beginning: bool,
) -> None:
    names = [topics.catalog, topics.search, topics.action, topics.recommendations,
             topics.deadletter]
    parts = [TopicPartition(name, p) for name, count in
             (await partition_counts(clients, names)).items()
             for p in range(count)]
    if not parts:
        raise RuntimeError(f"none of the topics {names} exist yet")
    consumer.assign(parts)
    since_ms = int((time.time() - lookback_s) * 1000)
    joined = [tp for tp in parts if tp.topic in (topics.search, topics.action)]
    shown = [tp for tp in parts if tp.topic in (topics.recommendations, topics.deadletter)]
    await consumer.seek_to_beginning(*(tp for tp in parts if tp.topic == topics.catalog))
    if from_beginning:
        await consumer.seek_to_beginning(*joined, *shown)
        return
    await consumer.seek_to_end(*shown)
    found_offsets = await consumer.offsets_for_times(dict.fromkeys(joined, since_ms))
    for tp in joined:
        at = found_offsets.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)


def run_tail(settings: Settings, args: argparse.Namespace) -> int:
    options = TailOptions(top=args.top, deadletter=not args.no_deadletter, user=args.user)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a live view ends
        asyncio.run(tail(
            KafkaClients(settings), settings.topics, options=options,
            lookback_s=args.lookback_s, from_beginning=args.from_beginning, limit=args.limit,
            idle_exit_s=args.idle_exit_s,
        ))
    return 0
