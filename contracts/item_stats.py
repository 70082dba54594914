"""An item's behaviour statistics across all users, as every worker replicates them.

Actions are keyed by user; the worker that owns an item's partition of the internal
item-actions topic (actions re-keyed by item_id) is the only writer of that item's statistics,
and publishes each new state as an ItemStatsRecord on a compacted topic that every worker
reads whole (docs/architecture.md, "Item statistics"). The values are a vector whose layout
(state/item_stats.py: all-time counts, decayed counts as of `ts`, first and last action
times) is named by `layout`, so a reader never guesses what a position means.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from contracts.events import Contract, EpochMs, Id

MAX_STATS = 256


class ItemStatsRecord(Contract):
    """One item's statistics after its latest applied action. Key: item_id. Compacted."""

    key_field: ClassVar[str | None] = "item_id"

    item_id: Id
    seq: int = Field(
        ge=1, description="actions applied to the item so far: a replica keeps the highest, so "
        "a late or repeated record never replaces a newer one",
    )
    ts: EpochMs = Field(description="event time of the latest action applied: decayed values "
                        "are as of this time")
    layout: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="version of the values' layout (state/item_stats.py)"
    )
    values: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        max_length=MAX_STATS, description="the statistics vector in `layout`'s order"
    )


__all__ = ["MAX_STATS", "ItemStatsRecord"]
