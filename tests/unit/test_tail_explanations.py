"""streamrank tail shows why: each explained item's score parts and weighed history entries,
and a degraded result's reason."""

from __future__ import annotations

import orjson

from contracts import TopicNames
from streams.tools.tail import TailOptions, TailView

T = TopicNames("t.")


def test_explained_items_show_their_parts_and_history() -> None:
    why = {"parts": {"query": 0.41, "history": 0.12},
           "history": [{"text": "Trail running shoe", "position": 0, "weight": 0.09}]}
    items = [{"item_id": "i0", "score": 0.53, "rank": 1, "explanation": why},
             {"item_id": "i1", "score": 0.2, "rank": 2}]
    view = TailView(T, TailOptions(top=2))
    block = view.feed(T.recommendations, orjson.dumps({
        "request_id": "r1", "user_id": "u1", "items": items, "model_version": "m",
        "received_ts": 1, "published_ts": 2}))
    assert block is not None
    lines = block.splitlines()
    first = lines.index(next(line for line in lines if line.strip().startswith("1.")))
    assert lines[first + 1].split() == ["why:", "query", "+0.4100,", "history", "+0.1200"]
    assert "'Trail running shoe' +0.0900" in lines[first + 2]
    assert lines[first + 3].strip().startswith("2.")  # an item without one: nothing added


def test_a_degraded_result_says_why() -> None:
    view = TailView(T)
    block = view.feed(T.recommendations, orjson.dumps({
        "request_id": "r1", "user_id": "u1", "items": [{"item_id": "i0", "score": 0, "rank": 1}],
        "model_version": "m", "degraded": True, "degraded_reason": "stale",
        "received_ts": 1, "published_ts": 2}))
    assert block is not None and "DEGRADED (stale: original order)" in block.splitlines()[0]
