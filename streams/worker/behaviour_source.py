"""What a search's behaviour features are built from, gathered from the worker's state.

The hybrid scorer builds the features itself (scoring/behaviour.py, with the spec and
neighbours of the version that scores) from the `BehaviourInputs` the worker gathers here:
the user's retained interaction columns (state/interactions.py, the user-interactions table),
every candidate's item statistics from the item-stats replica, read at the search's event time
(state/item_stats.py), the candidates' catalog attributes, and the site's retrieval score and
position of each candidate (the SearchEvent's own, in the order scored). Reads only: gathering
writes nothing, so it costs the same on every worker and can be measured alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts import Candidate, Item, SearchEvent
from contracts.ids import Attributes
from contracts.ids import item_attributes as attributes_of
from scoring.behaviour import BehaviourInputs
from state.interactions import InteractionStore
from state.item_stats import ItemStatsReading


class StatsSource(Protocol):
    def read(self, item_ids: Sequence[str], now: int) -> ItemStatsReading: ...


def item_attributes(item: Item | None) -> Attributes | None:
    """An item's attributes for the behaviour features (contracts.ids.item_attributes: the
    evaluation derives them the same way); None for an item the catalog does not know."""
    return None if item is None else attributes_of(item)


def item_value(item: Item | None) -> float | None:
    """The numeric attribute the features read (price); None when unknown."""
    return None if item is None else item.price


class BehaviourSource:
    def __init__(self, interactions: InteractionStore, stats: StatsSource) -> None:
        self.interactions = interactions
        self.stats = stats

    def inputs(
        self, search: SearchEvent, candidates: Sequence[Candidate], items: Sequence[Item | None]
    ) -> BehaviourInputs:
        """The inputs of one search; `candidates` as scored (repeats removed), `items` their
        catalog entries (None: unknown to the catalog)."""
        ids = [c.item_id for c in candidates]
        now = search.ts  # event time: the same features offline and live, whatever the lag
        return BehaviourInputs(
            now=now,
            query=search.query,
            item_ids=ids,
            positions=list(range(len(ids))),
            retrieval_scores=[c.retrieval_score for c in candidates],
            attributes=[item_attributes(item) for item in items],
            user=self.interactions.columns(search.user_id),
            item_stats=self.stats.read(ids, now),
            values=[item_value(item) for item in items],
        )


__all__ = ["BehaviourSource", "StatsSource", "item_attributes", "item_value"]
