"""The events on streamrank's topics, as validated pydantic models.

Models are strict (no silent coercion of "12" into 12) because anything a producer gets wrong
should land in the deadletter topic with a precise reason rather than be half-understood.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
)

SCHEMA_VERSION = 1

# Limits a producer can hit, in one place: the JSON Schemas and docs/events.md show them.
MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 20_000
MAX_CANDIDATES = 1000
# 9999-12-31T23:59:59.999Z: beyond it microseconds or nanoseconds were sent, not milliseconds.
MAX_EPOCH_MS = 253_402_300_799_999
# Scores and prices beyond this are a unit or overflow bug, not data.
MAX_MAGNITUDE = 1e12
# Printable, no whitespace or control characters: ids are keys, headers and log fields.
ID_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"


def _ts_window(ts: int, info: ValidationInfo) -> int:
    """The worker passes {"ts_min": ms, "ts_max": ms} as validation context (its clock plus
    the allowed skew, streams/settings.py); without context only the static bounds apply."""
    context = info.context if isinstance(info.context, dict) else {}
    low, high = context.get("ts_min"), context.get("ts_max")
    if low is not None and ts < low:
        raise ValueError(f"{ts} is before the earliest accepted time {low} (ms since epoch)")
    if high is not None and ts > high:
        raise ValueError(f"{ts} is more than the allowed clock skew in the future (> {high})")
    return ts


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    return text


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
EpochMs = Annotated[
    int,
    Field(ge=0, le=MAX_EPOCH_MS, description="milliseconds since the Unix epoch"),
]
# Event times a producer sets: also bounded by the worker's clock (its allowed skew).
EventTs = Annotated[
    int,
    Field(ge=0, le=MAX_EPOCH_MS, description="milliseconds since the Unix epoch; at most "
          "STREAMRANK_MAX_CLOCK_SKEW_S ahead of the worker's clock"),
    AfterValidator(_ts_window),
]
ShortText = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
Title = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH,
                             description="not blank"), AfterValidator(_not_blank)]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
# A Literal rather than an Enum: strict mode would refuse the JSON string for an enum member.
Action = Literal["view", "click", "add_to_cart", "purchase"]


class Contract(BaseModel):
    """Common configuration: strict types, unknown fields ignored (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    # The field the record's Kafka key must equal (None: the key is not checked).
    key_field: ClassVar[str | None] = None

    schema_version: Literal[1] = Field(
        default=1,
        description="version of this contract; producers may omit it while it is 1",
    )


class Candidate(BaseModel):
    """One product the site's first-stage search proposes for a query."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    item_id: Id
    retrieval_score: Finite | None = Field(
        default=None, description="first-stage score, if the site has one"
    )


class SearchEvent(Contract):
    """A user searched; streamrank re-ranks `candidates` for them. Key: user_id."""

    key_field: ClassVar[str | None] = "user_id"

    event_id: Id
    request_id: Id = Field(description="echoed in the RankedResult; actions may cite it")
    user_id: Id
    session_id: Id | None = None
    ts: EventTs
    query: ShortText
    candidates: list[Candidate] = Field(
        min_length=1, max_length=MAX_CANDIDATES,
        description="an item_id listed twice is ranked once (where it first appears)",
    )
    explain: bool = Field(
        default=False,
        description="true: each returned item carries an `explanation` (what moved its score)",
    )


class ActionEvent(Contract):
    """A user did something with an item. Key: user_id."""

    key_field: ClassVar[str | None] = "user_id"

    event_id: Id
    user_id: Id
    ts: EventTs
    item_id: Id
    action: Action
    request_id: Id | None = Field(default=None, description="the search this action answers")
    position: int | None = Field(
        default=None, ge=0, lt=MAX_CANDIDATES, description="0-based rank it was shown at"
    )
    query: ShortText | None = Field(default=None, description="the query, when the site knows it")


class Item(Contract):
    """A catalog product. Key: item_id. The topic is compacted; `deleted` tombstones it."""

    key_field: ClassVar[str | None] = "item_id"

    item_id: Id
    title: Title
    brand: ShortText | None = None
    category: ShortText | None = None
    price: Annotated[float, Field(ge=0, le=MAX_MAGNITUDE, allow_inf_nan=False)] | None = None
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION_LENGTH)] | None = None
    deleted: bool = False

    def text(self) -> str:
        """The text a model reads for this item: title first, it carries the most signal."""
        parts = [self.title]
        parts += [p for p in (self.brand, self.category) if p]
        if self.description:
            parts.append(self.description[:500])
        return " | ".join(parts)


class HistoryWeight(BaseModel):
    """One entry of the user's history (as the model read it) and how much it weighed."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    text: ShortText = Field(description="the history text: an item title or an earlier query")
    position: int = Field(ge=0, description="0 = the newest entry of the history")
    weight: float = Field(description="its share of the score (or its attention weight)")


class Explanation(BaseModel):
    """Why an item scored what it did, from what the model itself outputs."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    parts: dict[str, float] = Field(
        default_factory=dict,
        description="score parts or feature contributions by name, largest magnitude first "
        "(the zero-shot model: `query` + `history` = the score exactly)",
    )
    history: list[HistoryWeight] = Field(
        default_factory=list, description="the history entries that weighed most, most first"
    )


class RankedItem(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    item_id: Id
    score: float
    rank: int = Field(ge=1, description="1 = best")
    explanation: Explanation | None = Field(
        default=None, description="present when the search asked `explain: true`"
    )


class RankedResult(Contract):
    """streamrank's answer to a SearchEvent. Key: user_id."""

    request_id: Id
    user_id: Id
    items: list[RankedItem] = Field(description="every candidate exactly once, best first")
    model_version: str
    degraded: bool = Field(
        default=False, description="true when the list is the original order, not a ranking"
    )
    degraded_reason: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="why a degraded list is unranked: `stale` (read past its age limit), "
        "`queue_full` (no room to score it by its deadline), `timeout` (not scored by its "
        "deadline), `error`, `stopped`; a client's own fallback: `client_timeout`, "
        "`publish_failed`, `no_worker`",
    )
    received_ts: EpochMs = Field(description="when the worker read the search")
    published_ts: EpochMs = Field(description="when the worker published this result")


class ModelUpdate(Contract):
    """A model version to serve. Key: "current". The topic is compacted: its last record is
    what every worker should run, including one that starts later."""

    version: Id
    uri: ShortText = Field(description="the version's folder (a path the workers can read)")
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] = Field(
        description="sha256 of the version's manifest.json; a mismatch is refused"
    )
    metrics: dict[str, float] = Field(default_factory=dict)


# Graded labels of a shown candidate: the strongest action the user took on it.
LABELS: dict[str, float] = {"skipped": 0.0, "click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


# Defined in their own modules (contracts/item_stats.py, contracts/samples.py), which build
# on the types above.
from contracts.item_stats import ItemStatsRecord  # noqa: E402
from contracts.samples import TrainingSample  # noqa: E402

CONTRACTS: dict[str, type[Contract]] = {
    "SearchEvent": SearchEvent,
    "ActionEvent": ActionEvent,
    "Item": Item,
    "RankedResult": RankedResult,
    "ModelUpdate": ModelUpdate,
    "TrainingSample": TrainingSample,
    "ItemStatsRecord": ItemStatsRecord,
}
