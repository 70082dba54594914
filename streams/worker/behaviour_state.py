"""The worker's behaviour state: what the behaviour features of a search are built from.

- Per user (co-partitioned with searches and actions, like the sequence): the retained
  interaction set, one binary record per user in the user-interactions table
  (state/interactions.py), updated by the actions agent with the item's catalog attributes.
- Per item, across all users: actions are keyed by user, so the actions agent forwards each
  valid action to the item-actions topic keyed by item_id; the item-actions agent here (one
  writer per item: the owner of its partition) applies it to the item-keyed item-stats table
  (streams/worker/item_stats_table.py) and publishes the item's new statistics on the
  compacted item-stats topic, which every worker replicates whole
  (streams/worker/item_stats_replica.py). docs/architecture.md, "Item statistics", says why
  this holds with several workers.
- `source` gathers one search's inputs from both (streams/worker/behaviour_source.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.web import Request, Response, View

from contracts import ActionEvent, DecodeError, decode, encode
from contracts.item_stats import ItemStatsRecord
from state import CatalogStore
from state.interactions import InteractionStore
from state.tables import INTERACTION_TABLE, ITEM_STATS_TABLE
from streams.kafka.connection import KafkaClients
from streams.settings import Settings
from streams.worker.behaviour_source import BehaviourSource, item_attributes
from streams.worker.channels import Topics
from streams.worker.item_stats_replica import ItemStatsReplica
from streams.worker.item_stats_table import ItemStatsTable, source_headers, source_of
from streams.worker.replica import local_stores
from streams.worker.search import now_ms

log = logging.getLogger(__name__)


class BehaviourState:
    def __init__(
        self, app: faust.App, settings: Settings, topics: Topics, catalog: CatalogStore,
        clients: KafkaClients, *, store: str,
    ) -> None:
        self.topics = topics
        self.catalog = catalog
        self.interaction_table = app.Table(
            INTERACTION_TABLE,
            key_type=str,
            value_type=bytes,  # raw: state/interactions.py owns the encoding
            partitions=settings.partitions,
            help="per-user retained interaction set (bounded), read by the behaviour features",
        )
        self.item_stats_table = app.Table(
            ITEM_STATS_TABLE,
            key_type=str,
            value_type=bytes,
            partitions=settings.partitions,  # co-partitioned with the item-actions topic
            help="per-item statistics across all users; one writer per item",
        )
        self.interactions = InteractionStore(self.interaction_table,
                                             retained=settings.interactions_retained)
        self.items = ItemStatsTable(self.item_stats_table)
        stats_kv, offsets_kv = local_stores(settings.state_dir, settings.app_id, "item-stats",
                                            store)
        self.replica = ItemStatsReplica(stats_kv, offsets_kv, clients=clients,
                                        topic=settings.topics.item_stats,
                                        max_bytes=settings.max_payload_bytes)
        app.service(cast(Any, self.replica))
        self.source = BehaviourSource(self.interactions, self.replica)
        self.counts: Counter[str] = Counter()
        self.agent = app.agent(topics.item_actions, name="item-actions")(self._item_actions)
        self._add_views(app)

    async def on_action(self, action: ActionEvent, raw: bytes, partition: int,
                        offset: int) -> None:
        """A valid action read at (partition, offset) of the action topic: into the user's
        interaction set, and forwarded by item_id for the item statistics. The forward is
        flushed before the action's offset is committed (Faust flushes its producer first):
        at least once, and the item side applies a source record once."""
        if self.interactions.apply(action, item_attributes(self.catalog.get(action.item_id))):
            self.counts["interactions_applied"] += 1
        else:
            self.counts["interactions_repeated"] += 1
        await self.topics.item_actions.send(key=action.item_id, value=raw,
                                             headers=source_headers(partition, offset))

    async def _item_actions(self, stream: Any) -> AsyncIterator[ItemStatsRecord | None]:
        async for event in stream.events():
            try:
                # Validated by the actions agent already; refused here only if corrupted.
                action = decode(event.value, ActionEvent)
            except DecodeError as exc:
                self.counts["item_actions_invalid"] += 1
                log.warning("item-actions record that is not an action: %s", exc)
                yield None
                continue
            record = self.items.apply(action, source_of(event.message.headers))
            if record is None:
                self.counts["item_actions_repeated"] += 1
            else:
                self.counts["item_actions_applied"] += 1
                await self.topics.item_stats.send(key=record.item_id, value=encode(record))
            yield record

    def item_view(self, item_id: str, now: int) -> dict[str, Any]:
        """An item's statistics as this worker's replica holds them, read at `now`."""
        reading = self.replica.read([item_id], now)
        return {
            "item_id": item_id, "seq": self.replica.seq(item_id), "now": now,
            "known": bool(reading.known[0]),
            "counts": dict(zip(reading.actions, reading.counts[0].tolist(), strict=True)),
            "first_ts": int(reading.first_ts[0]), "last_ts": int(reading.last_ts[0]),
        }

    def _add_views(self, app: faust.App) -> None:
        outer = self

        @app.page("/items/{item_id}/stats/")
        class ItemStatsView(View):
            # Any worker answers: every worker replicates every item's statistics.
            async def get(self, request: Request, item_id: str) -> Response:
                return self.json(outer.item_view(item_id, now_ms()))

        @app.page("/users/{user_id}/interactions/")
        class UserInteractionsView(View):
            # Local read: with several workers, ask the one that owns the user's partition.
            async def get(self, request: Request, user_id: str) -> Response:
                cols = outer.interactions.columns(user_id)
                return self.json({"user_id": user_id, "events": cols.events,
                                  "retained": len(cols), "last_ts": cols.last_ts})


__all__ = ["BehaviourState"]
