"""Names of the worker's per-user state tables, defined once.

The worker declares Faust tables with these names and the topic setup checks their changelog
topics (`<app_id>-<table>-changelog`) before Faust starts; both read them from here.
"""

from __future__ import annotations

SEQUENCE_TABLE = "user-sequences"  # user_id -> last N actions, newest first
IMPRESSION_TABLE = "impressions"  # user_id-scoped rankings awaiting attribution, due wheel
# Keyed by user_id, so co-partitioned with the input topics.
USER_TABLES = (SEQUENCE_TABLE, IMPRESSION_TABLE)


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic Faust keeps for `table` of the app `app_id`."""
    return f"{app_id}-{table}-changelog"


__all__ = ["IMPRESSION_TABLE", "SEQUENCE_TABLE", "USER_TABLES", "changelog_topic"]
