"""Every topic the worker reads or writes through Faust, declared in one place.

(Samples are written by streams/worker/sample_log.py's transactional producers, not through Faust.)

Values travel as raw bytes: the agents decode them with contracts.decode so that anything
malformed reaches the deadletter topic intact instead of failing inside Faust's serializer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from contracts import TopicNames


@dataclass(frozen=True)
class Topics:
    search: Any
    action: Any
    catalog: Any
    recommendations: Any
    deadletter: Any
    ticks: Any  # internal: when to close attribution windows, per partition
    item_actions: Any  # internal: actions re-keyed by item_id (streams/worker/item_stats_table.py)
    item_stats: Any  # compacted: every item's statistics, replicated by every worker
    names: TopicNames

    @classmethod
    def declare(
        cls, app: faust.App, names: TopicNames, partitions: int, catalog_partitions: int,
        ticks: str,
    ) -> Topics:
        def topic(name: str, **extra: Any) -> Any:
            return app.topic(
                name,
                key_type=str,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                **{"partitions": partitions, **extra},
            )

        return cls(
            search=topic(names.search),
            action=topic(names.action),
            # Compacted: the latest version of each item is the catalog.
            catalog=topic(names.catalog, compacting=True, partitions=catalog_partitions),
            recommendations=topic(names.recommendations),
            deadletter=topic(names.deadletter),
            ticks=topic(ticks),
            item_actions=topic(names.item_actions),
            item_stats=topic(names.item_stats, compacting=True),
            names=names,
        )
