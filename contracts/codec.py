"""JSON wire format (orjson) with errors precise enough for a deadletter record."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

# Kafka's default max.message.bytes is ~1 MiB; anything near it is not a real search.
MAX_PAYLOAD_BYTES = 512 * 1024


class DecodeError(ValueError):
    """A message that cannot become a contract. `reason` is a short stable code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(raw: bytes | None, model: type[T], max_bytes: int = MAX_PAYLOAD_BYTES) -> T:
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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DecodeError("invalid", _summarize(exc)) from None


def encode(event: BaseModel) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def _summarize(exc: ValidationError) -> str:
    # One line per problem, field path first: readable in a deadletter header or a log line.
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - 5
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)
