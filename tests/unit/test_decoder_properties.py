"""Property-based tests of everything that turns a producer's bytes into a contract: whatever
arrives, the outcome is a contract (whose key rule holds) or a DecodeError with a documented
reason, never another exception; and a deadletter record always fits its budget and says
what it cut."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import REASONS, ActionEvent, DecodeError, Item, SearchEvent, decode, encode
from streams.kafka.deadletter import MAX_KEY_BYTES, OVERHEAD_BYTES, fit
from streams.settings import Settings
from streams.worker.intake import Intake

MODELS = [SearchEvent, ActionEvent, Item]
NOW_MS = 1_700_000_000_000

ids = st.text(min_size=0, max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), ids)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(ids, inner, max_size=4), max_leaves=30)


def _json(value: Any) -> bytes:
    # orjson refuses ints beyond 64 bits; the stdlib writes them (a producer in another
    # language may too).
    return json.dumps(value).encode()


# Objects shaped like the contracts, with every field free to be wrong.
fields = {
    "event_id": ids, "request_id": ids, "user_id": ids, "item_id": ids, "session_id": ids,
    "ts": st.one_of(st.integers(min_value=-(2**65), max_value=2**65), scalars),
    "query": st.one_of(ids, scalars), "title": st.one_of(st.text(max_size=5), scalars),
    "action": st.sampled_from(["view", "click", "purchase", "teleport", ""]),
    "position": st.one_of(st.integers(min_value=-5, max_value=2000), scalars),
    "price": st.one_of(st.floats(), scalars),
    "candidates": st.one_of(st.lists(st.fixed_dictionaries(
        {"item_id": ids}, optional={"retrieval_score": st.one_of(st.floats(), scalars)}),
        max_size=5), json_values),
}
contract_like = st.fixed_dictionaries({}, optional=fields)


def _outcome(model: type[Any], raw: bytes | None, key: bytes | None) -> str:
    intake = Intake(Settings(), clock_ms=lambda: NOW_MS)
    try:
        event = intake.record(model, key, raw)
    except DecodeError as exc:
        assert exc.reason in REASONS, exc.reason
        return exc.reason
    field = model.key_field
    assert key is not None and key.decode() == getattr(event, field)
    assert decode(encode(event), model) == event  # what is accepted survives a round trip
    return "ok"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.none(), st.binary(max_size=200)), key=st.one_of(st.none(), st.binary()),
       model=st.sampled_from(MODELS))
def test_any_bytes_end_as_a_contract_or_a_reason(
    raw: bytes | None, key: bytes | None, model: type[Any]
) -> None:
    _outcome(model, raw, key)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, model=st.sampled_from(MODELS))
def test_any_json_ends_as_a_contract_or_a_reason(value: Any, model: type[Any]) -> None:
    _outcome(model, _json(value), b"k")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(obj=contract_like, model=st.sampled_from(MODELS), same_key=st.booleans())
def test_contract_shaped_objects_and_their_keys(
    obj: dict[str, Any], model: type[Any], same_key: bool
) -> None:
    own = obj.get(model.key_field)
    key = own.encode() if same_key and isinstance(own, str) else b"someone-else"
    outcome = _outcome(model, _json(obj), key)
    if outcome == "ok":
        assert same_key


@given(key=st.one_of(st.none(), st.binary(max_size=3000)),
       value=st.one_of(st.none(), st.binary(max_size=50_000)),
       limit=st.integers(min_value=OVERHEAD_BYTES, max_value=OVERHEAD_BYTES + 60_000))
def test_deadletter_records_fit_and_identify_the_original(
    key: bytes | None, value: bytes | None, limit: int
) -> None:
    record = fit(key, value, limit)
    original = value or b""
    assert len(record.value) + len(record.key or b"") <= limit - OVERHEAD_BYTES + MAX_KEY_BYTES
    assert original.startswith(record.value)
    assert record.headers["original.size"] == str(len(original))
    assert record.headers["original.sha256"] == hashlib.sha256(original).hexdigest()
    assert record.truncated == (len(record.value) < len(original))
    if key is not None:
        assert record.key is not None and key.startswith(record.key)
        assert ("original.key.size" in record.headers) == (len(key) > MAX_KEY_BYTES)


def test_a_json_array_of_events_is_refused_not_split() -> None:
    event = {"event_id": "e", "user_id": "u", "ts": 1, "item_id": "i", "action": "click"}
    assert _outcome(ActionEvent, orjson.dumps([event, event]), b"u") == "not_object"
    assert _outcome(ActionEvent, orjson.dumps(event), b"u") == "ok"
