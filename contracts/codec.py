"""JSON wire format (orjson) with errors precise enough for a deadletter record.

`decode` turns a record's bytes into a contract or raises DecodeError with a short reason
(the metric label and deadletter header) and a detail (what exactly is wrong). `check_key`
holds the rule that a record's Kafka key is the field its contract names (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

# Kafka's default max.message.bytes is ~1 MiB; anything near it is not a real search.
MAX_PAYLOAD_BYTES = 512 * 1024
# Nesting of JSON containers in a record. The contracts' own fields are at most 3 deep
# (search → candidates → candidate); ignored extra fields may add structure up to this.
MAX_DEPTH = 16

# Every reason a record can be refused for: the `reason` label of streamrank_deadletters and
# the deadletter header. docs/events.md lists them with what each means.
REASONS: dict[str, str] = {
    "empty": "no value (a tombstone or an empty record) where an event is expected",
    "too_large": "value larger than STREAMRANK_MAX_PAYLOAD_BYTES (checked before parsing)",
    "not_json": "not JSON: invalid UTF-8 or a lone UTF-16 surrogate escape, a syntax error, "
    "NaN/Infinity literals, a number that overflows a double",
    "not_object": "JSON, but not an object (an array, string, number, null)",
    "too_deep": f"containers nested more than {MAX_DEPTH} levels",
    "invalid": "an object that breaks its contract (missing field, wrong type, out of range, "
    "blank title, duplicate candidate, time outside the accepted window, ...)",
    "key_missing": "the record has no key; searches and actions are keyed by user_id, "
    "catalog items by item_id",
    "key_mismatch": "the record's key is not the event's user_id (item_id for catalog items)",
}


class DecodeError(ValueError):
    """A message that cannot become a contract. `reason` is a short stable code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(
    raw: bytes | None, model: type[T], max_bytes: int = MAX_PAYLOAD_BYTES,
    *, context: Mapping[str, Any] | None = None,
) -> T:
    """The contract in `raw`, or DecodeError. `context` is passed to the validators (the
    worker's time window for event timestamps: {"ts_min": ms, "ts_max": ms})."""
    if raw is None or len(raw) == 0:
        raise DecodeError("empty", "message has no value")
    if len(raw) > max_bytes:
        raise DecodeError("too_large", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("not_json", str(exc)) from None
    if not isinstance(data, dict):
        raise DecodeError("not_object", f"expected a JSON object, got {type(data).__name__}")
    _check_depth(data, model)
    try:
        return model.model_validate(data, context=dict(context) if context else None)
    except ValidationError as exc:
        raise DecodeError("invalid", _summarize(exc)) from None


def check_key(event: BaseModel, key: bytes | str | None) -> None:
    """DecodeError unless `key` is the value of the field the contract is keyed by
    (`key_field`, e.g. user_id): a record on the wrong partition would split a user's state
    between workers, so it is refused rather than processed where it landed."""
    field: str | None = getattr(type(event), "key_field", None)
    if field is None:
        return
    expected = getattr(event, field)
    if key is None or len(key) == 0:
        raise DecodeError("key_missing", f"record has no key; expected {field} {expected!r}")
    text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    if text != expected:
        shown = text if len(text) <= 100 else text[:100] + "..."
        raise DecodeError("key_mismatch", f"key {shown!r} is not {field} {expected!r}")


def _check_depth(data: dict[str, Any], model: type[BaseModel]) -> None:
    # The known fields' types bound their own depth (a wrong shape fails validation); only
    # the fields the contract ignores are walked, so normal events cost nothing here.
    for name, value in data.items():
        if name not in model.model_fields and isinstance(value, dict | list):
            depth = _depth(value, MAX_DEPTH - 1)
            if depth >= MAX_DEPTH:
                raise DecodeError("too_deep", f"field {name[:100]!r} nests deeper than "
                                  f"{MAX_DEPTH} levels")


def _depth(value: Any, limit: int) -> int:
    """Container depth of `value` (1 for a flat list or dict), counted no further than
    `limit` + 1; iterative, so a hostile record cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > limit:
            return level
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def encode(event: BaseModel) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def _summarize(exc: ValidationError) -> str:
    # One line per problem, field path first: readable in a deadletter header or a log line.
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}")
    more = exc.error_count() - 5
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)
