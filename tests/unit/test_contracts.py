import orjson
import pytest

from contracts import (
    ActionEvent,
    DecodeError,
    Item,
    RankedResult,
    SearchEvent,
    TopicNames,
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
        "acme.samples", "acme.models", "acme.deadletter",
    }
    assert TopicNames().search == "streamrank.events.search"
