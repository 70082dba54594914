"""What a search's behaviour features are built from, gathered from hand-made state: the user's
interaction columns, the candidates' statistics at the search's own time, catalog attributes,
and the site's retrieval scores and positions (which the worker used to drop)."""

from __future__ import annotations

import numpy as np

from contracts import ActionEvent, Candidate, Item, SearchEvent
from contracts.ids import item_hash
from state import MemoryKV
from state.interactions import InteractionStore
from state.item_stats import LAYOUT, ItemStatsReading
from streams.worker.behaviour_source import BehaviourSource, item_attributes, item_value

ITEMS = {
    "a": Item(item_id="a", title="Trail shoe", brand="Acme", category="Shoes|Running",
              price=80.0),
    "b": Item(item_id="b", title="Mug", category="Kitchen"),
}


class Stats:
    """Item statistics as a replica would hold them: vectors by item, read at a time."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.reads: list[int] = []

    def read(self, item_ids: list[str], now: int) -> ItemStatsReading:
        self.reads.append(now)
        return LAYOUT.read_many([self.vectors.get(i) for i in item_ids], now)


def test_attributes_split_multi_valued_categories_and_keep_the_brand() -> None:
    assert item_attributes(ITEMS["a"]) == {"category": ["Shoes", "Running"], "brand": "Acme"}
    assert item_attributes(ITEMS["b"]) == {"category": ["Kitchen"], "brand": None}
    assert item_attributes(None) is None
    assert (item_value(ITEMS["a"]), item_value(ITEMS["b"]), item_value(None)) == (80.0, None, None)


def test_inputs_carry_state_and_the_sites_own_signals() -> None:
    interactions = InteractionStore(MemoryKV(), retained=10)
    interactions.apply(ActionEvent(event_id="x", user_id="ann", ts=500, item_id="a",
                                   action="purchase"), item_attributes(ITEMS["a"]))
    stats = Stats()
    stats.vectors["b"] = LAYOUT.apply(None, "click", 100)
    source = BehaviourSource(interactions, stats)
    search = SearchEvent(event_id="s", request_id="r", user_id="ann", ts=9_000, query="shoes",
                         candidates=[Candidate(item_id="b", retrieval_score=2.5),
                                     Candidate(item_id="a"), Candidate(item_id="zz")])
    items = [ITEMS["b"], ITEMS["a"], None]
    inputs = source.inputs(search, search.candidates, items)
    assert inputs.now == 9_000 and stats.reads == [9_000]  # the event's time, not the clock
    assert list(inputs.item_ids) == ["b", "a", "zz"] and list(inputs.positions) == [0, 1, 2]
    assert list(inputs.retrieval_scores) == [2.5, None, None]
    assert inputs.attributes[2] is None and list(inputs.values or []) == [None, 80.0, None]
    assert inputs.item_stats is not None and inputs.item_stats.known.tolist() == [
        True, False, False]
    user = inputs.user
    assert user is not None and user.events == 1
    found, _ = interactions.columns("ann").lookup([item_hash("a"), item_hash("b")])
    assert found.tolist() == [True, False]
    # A user the worker has never seen: empty columns, not an error.
    stranger = source.inputs(search.model_copy(update={"user_id": "nobody"}),
                             search.candidates, items)
    assert stranger.user is not None and stranger.user.events == 0
