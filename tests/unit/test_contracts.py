import orjson
import pytest

from contracts import (
    MAX_DEPTH,
    REASONS,
    ActionEvent,
    DecodeError,
    Item,
    RankedResult,
    SearchEvent,
    TopicNames,
    check_key,
    decode,
    encode,
)

SEARCH = {
    "event_id": "e1",
    "request_id": "r1",
    "user_id": "u1",
    "ts": 1_700_000_000_000,
    "query": "running shoes",
    "candidates": [{"item_id": "a"}, {"item_id": "b", "retrieval_score": 0.5}],
}


def raw(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_search_round_trip() -> None:
    event = decode(raw(SEARCH), SearchEvent)
    assert event.candidates[1].retrieval_score == 0.5
    assert event.schema_version == 1
    assert decode(encode(event), SearchEvent) == event


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = decode(raw({**SEARCH, "experiment": "b"}), SearchEvent)
    assert event.request_id == "r1"


@pytest.mark.parametrize(
    ("payload", "reason", "mentions"),
    [
        (b"not json at all", "not_json", ""),
        (b"", "empty", ""),
        (raw([1, 2, 3]), "not_object", "list"),
        (raw({**SEARCH, "ts": "yesterday"}), "invalid", "ts"),
        (raw({**SEARCH, "ts": "1700000000000"}), "invalid", "ts"),  # strict: no coercion
        (raw({k: v for k, v in SEARCH.items() if k != "user_id"}), "invalid", "user_id"),
        (raw({**SEARCH, "candidates": []}), "invalid", "candidates"),
        (raw({**SEARCH, "candidates": [{"id": "x"}]}), "invalid", "candidates.0.item_id"),
        (raw({**SEARCH, "user_id": ""}), "invalid", "user_id"),
        (raw({**SEARCH, "schema_version": 99}), "invalid", "schema_version"),
        (raw({**SEARCH, "candidates": [{"item_id": str(i)} for i in range(1001)]}), "invalid",
         "candidates"),
    ],
)
def test_bad_search_payloads_give_precise_reasons(
    payload: bytes, reason: str, mentions: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(payload, SearchEvent)
    assert info.value.reason == reason
    assert mentions in info.value.detail


def test_payload_over_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError) as info:
        decode(b"{" + b" " * 2000 + b"}", SearchEvent, max_bytes=1024)
    assert info.value.reason == "too_large"


def test_action_values_are_checked() -> None:
    ok = {"event_id": "a", "user_id": "u", "ts": 1, "item_id": "i", "action": "purchase"}
    assert decode(raw(ok), ActionEvent).action == "purchase"
    with pytest.raises(DecodeError, match="action"):
        decode(raw({**ok, "action": "teleport"}), ActionEvent)
    with pytest.raises(DecodeError, match="position"):
        decode(raw({**ok, "position": -1}), ActionEvent)


def test_item_text_puts_title_first_and_skips_missing_parts() -> None:
    item = Item(item_id="x", title="Trail shoe", brand="Stride", description="grippy")
    assert item.text() == "Trail shoe | Stride | grippy"
    assert Item(item_id="y", title="Mug").text() == "Mug"


def test_ranked_result_requires_ranks_from_one() -> None:
    with pytest.raises(ValueError):
        RankedResult.model_validate(
            {"request_id": "r", "user_id": "u", "model_version": "m", "received_ts": 1,
             "published_ts": 2, "items": [{"item_id": "a", "score": 1.0, "rank": 0}]}
        )


def test_topic_names_share_one_prefix() -> None:
    names = TopicNames("acme.").all()
    assert set(names.values()) == {
        "acme.events.search", "acme.events.action", "acme.catalog", "acme.recommendations",
        "acme.samples", "acme.models", "acme.deadletter", "acme.item-actions",
        "acme.item-stats",
    }
    assert TopicNames().search == "streamrank.events.search"


# --- what a producer can get wrong (issue #13): each refused with a stable reason -------------

ACTION = {"event_id": "a", "user_id": "u1", "ts": 1_700_000_000_000, "item_id": "i",
          "action": "click"}
ITEM = {"item_id": "sku-1", "title": "Trail shoe"}


@pytest.mark.parametrize(
    ("payload", "model", "reason", "mentions"),
    [
        (raw({**SEARCH, "ts": 2**64 - 1}), SearchEvent, "invalid", "ts"),
        (raw({**SEARCH, "ts": -1}), SearchEvent, "invalid", "ts"),
        (raw({**SEARCH, "ts": 1.5e12}), SearchEvent, "invalid", "ts"),  # strict: no floats
        (b'{"ts": 18446744073709551616}', SearchEvent, "invalid", "ts"),  # > 64 bits: a float
        (raw({**SEARCH, "user_id": "has space"}), SearchEvent, "invalid", "user_id"),
        (raw({**SEARCH, "user_id": "tab\there"}), SearchEvent, "invalid", "user_id"),
        (raw({**SEARCH, "user_id": "x" * 257}), SearchEvent, "invalid", "user_id"),
        (raw({**SEARCH, "query": "q" * 2049}), SearchEvent, "invalid", "query"),
        (raw({**SEARCH, "candidates": [{"item_id": "a", "retrieval_score": 1e300}]}),
         SearchEvent, "invalid", "retrieval_score"),
        (raw({**SEARCH, "candidates": "a,b"}), SearchEvent, "invalid", "candidates"),
        (b'{"event_id": "e", "ts": NaN}', SearchEvent, "not_json", ""),
        (b'{"event_id": "e", "ts": Infinity}', SearchEvent, "not_json", ""),
        (b'{"event_id": "e", "ts": 1e400}', SearchEvent, "not_json", "infinity"),
        (b'{"event_id": "\xff\xfe"}', SearchEvent, "not_json", "UTF-8"),
        (b'{"event_id": "\\ud800"}', SearchEvent, "not_json", "surrogate"),
        (b"null", SearchEvent, "not_object", "NoneType"),
        (b'"a string"', SearchEvent, "not_object", "str"),
        (raw({**SEARCH, "extra": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}), SearchEvent,
         "too_deep", "extra"),
        (raw({**ACTION, "position": 1000}), ActionEvent, "invalid", "position"),
        (raw({**ACTION, "ts": 10**17}), ActionEvent, "invalid", "ts"),
        (raw({**ITEM, "title": ""}), Item, "invalid", "title"),
        (raw({**ITEM, "title": "   \t"}), Item, "invalid", "title"),
        (raw({**ITEM, "price": -1.0}), Item, "invalid", "price"),
        (raw({**ITEM, "price": 1e15}), Item, "invalid", "price"),
        (raw({**ITEM, "description": "d" * 20_001}), Item, "invalid", "description"),
    ],
)
def test_what_a_producer_gets_wrong_is_refused_with_a_reason(
    payload: bytes, model: type[SearchEvent | ActionEvent | Item], reason: str, mentions: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(payload, model)
    assert info.value.reason == reason
    assert reason in REASONS
    assert mentions in info.value.detail


def test_nesting_within_the_limit_is_ignored_like_any_unknown_field() -> None:
    nested: object = 1
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert decode(raw({**SEARCH, "extra": nested}), SearchEvent).request_id == "r1"
    with pytest.raises(DecodeError, match="too_deep"):
        decode(raw({**SEARCH, "extra": [nested]}), SearchEvent)


def test_ts_window_comes_from_the_worker_context() -> None:
    window = {"ts_min": 1_000, "ts_max": 2_000_000_000_000}
    assert decode(raw(SEARCH), SearchEvent, context=window).ts == SEARCH["ts"]
    with pytest.raises(DecodeError, match="clock skew"):
        decode(raw(SEARCH), SearchEvent, context={"ts_max": SEARCH["ts"] - 1})
    with pytest.raises(DecodeError, match="earliest"):
        decode(raw({**SEARCH, "ts": 999}), SearchEvent, context=window)
    # Outputs are not bounded by the clock: their times are the worker's own.
    assert decode(raw({**SEARCH, "ts": 5}), SearchEvent).ts == 5


def test_duplicate_json_keys_keep_the_last_value() -> None:
    assert decode(b'{"a": 1, "item_id": "x", "item_id": "y", "title": "t"}', Item).item_id == "y"


def test_keys_must_be_the_events_own_id() -> None:
    search = decode(raw(SEARCH), SearchEvent)
    check_key(search, b"u1")
    check_key(search, "u1")
    with pytest.raises(DecodeError) as info:
        check_key(search, None)
    assert info.value.reason == "key_missing"
    with pytest.raises(DecodeError) as info:
        check_key(search, b"")
    assert info.value.reason == "key_missing"
    with pytest.raises(DecodeError) as info:
        check_key(search, b"u2")
    assert info.value.reason == "key_mismatch" and "u2" in info.value.detail
    item = decode(raw(ITEM), Item)
    check_key(item, b"sku-1")
    with pytest.raises(DecodeError, match="key_mismatch"):
        check_key(item, b"u1")  # keyed like a search: wrong partition for the catalog
    # Outputs carry no key rule.
    result = RankedResult(request_id="r", user_id="u", items=[], model_version="v",
                          received_ts=1, published_ts=2)
    check_key(result, None)
