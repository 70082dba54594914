"""streamrank tail's view: joins queries, actions and titles onto each ranked result."""

from __future__ import annotations

import orjson

from contracts import TopicNames
from streams.kafka.deadletter import HEADER_PREFIX
from streams.tools.tail import TailOptions, TailView

T = TopicNames("t.")


def _j(**fields: object) -> bytes:
    return orjson.dumps(fields)


def _result(request_id: str = "r1", user: str = "u1", degraded: bool = False) -> bytes:
    items = [{"item_id": f"i{k}", "score": 1.0 - k / 10, "rank": k + 1} for k in range(12)]
    return _j(request_id=request_id, user_id=user, items=items, model_version="embed-1",
              degraded=degraded, received_ts=1000, published_ts=1012)


def test_result_shows_query_last_actions_and_titles() -> None:
    view = TailView(T, TailOptions(top=3))
    assert view.feed(T.catalog, _j(item_id="i0", title="Trail running shoe")) is None
    view.feed(T.catalog, _j(item_id="i1", title="Espresso grinder " + "x" * 80))
    view.feed(T.search, _j(event_id="e1", request_id="r1", user_id="u1", ts=1, query="shoes",
                           candidates=[{"item_id": "i0"}]))
    view.feed(T.action, _j(event_id="a1", user_id="u1", ts=2, item_id="i0", action="click"))
    view.feed(T.action, _j(event_id="a2", user_id="u1", ts=3, item_id="i9", action="purchase"))
    block = view.feed(T.recommendations, _result())
    assert block is not None
    lines = block.splitlines()
    assert "r1" in lines[0] and "embed-1" in lines[0] and "12 ms" in lines[0]
    assert lines[1] == "  query: 'shoes'"
    # Newest action first; unknown items keep their id.
    assert lines[2] == "  last actions: purchase i9; click Trail running shoe"
    assert "Trail running shoe" in lines[3] and lines[3].strip().startswith("1.")
    assert lines[4].endswith("…") and len(lines[4].split("  ")[-1]) == 60
    assert lines[-1].strip() == "… 9 more"


def test_unknown_search_degraded_flag_user_filter_and_bad_records() -> None:
    view = TailView(T, TailOptions(user="u2"))
    assert view.feed(T.recommendations, _result(user="u1")) is None
    block = view.feed(T.recommendations, _result("r9", "u2", degraded=True))
    assert block is not None and "DEGRADED" in block and "(search not seen)" in block
    assert view.feed(T.search, b"{not json") is None  # garbage is the deadletter's business
    assert view.feed(T.catalog, None) is None  # tombstone


def test_deleted_item_forgets_its_title() -> None:
    view = TailView(T)
    view.feed(T.catalog, _j(item_id="i0", title="Lamp"))
    view.feed(T.catalog, _j(item_id="i0", title="Lamp", deleted=True))
    block = view.feed(T.recommendations, _result())
    assert block is not None and "Lamp" not in block


def test_deadletter_block_reads_the_headers() -> None:
    headers = [(HEADER_PREFIX + "reason", b"not_json"), (HEADER_PREFIX + "source.topic", b"x"),
               (HEADER_PREFIX + "source.partition", b"2"), (HEADER_PREFIX + "source.offset", b"7"),
               (HEADER_PREFIX + "error", b"unexpected character")]
    block = TailView(T).feed(T.deadletter, b"{oops", headers)
    assert block is not None
    assert block.splitlines()[0] == "✖ deadletter not_json from x[2]@7 (5 bytes)"
    assert "unexpected character" in block and "'{oops'" in block
    assert TailView(T, TailOptions(deadletter=False)).feed(T.deadletter, b"x", headers) is None
