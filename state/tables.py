"""Names of the worker's state tables, defined once.

The worker declares Faust tables with these names and the topic setup checks their changelog
topics (`<app_id>-<table>-changelog`) before Faust starts; both read them from here.
"""

from __future__ import annotations

SEQUENCE_TABLE = "user-sequences"  # user_id -> last N actions, newest first
IMPRESSION_TABLE = "impressions"  # user_id-scoped rankings awaiting attribution, due wheel
INTERACTION_TABLE = "user-interactions"  # user_id -> retained interaction set (columnar)
# Keyed by user_id, so co-partitioned with the input topics.
USER_TABLES = (SEQUENCE_TABLE, IMPRESSION_TABLE, INTERACTION_TABLE)

ITEM_STATS_TABLE = "item-stats"  # item_id -> statistics across all users (one writer per item)
# Keyed by item_id, co-partitioned with the item-actions topic (actions re-keyed by item).
ITEM_TABLES = (ITEM_STATS_TABLE,)


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic Faust keeps for `table` of the app `app_id`."""
    return f"{app_id}-{table}-changelog"


__all__ = [
    "IMPRESSION_TABLE",
    "INTERACTION_TABLE",
    "ITEM_STATS_TABLE",
    "ITEM_TABLES",
    "SEQUENCE_TABLE",
    "USER_TABLES",
    "changelog_topic",
]
