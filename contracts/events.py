"""The events on streamrank's topics, as validated pydantic models.

Models are strict (no silent coercion of "12" into 12) because anything a producer gets wrong
should land in the deadletter topic with a precise reason rather than be half-understood.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Id = Annotated[str, Field(min_length=1, max_length=256)]
EpochMs = Annotated[int, Field(ge=0, description="milliseconds since the Unix epoch")]
ShortText = Annotated[str, Field(max_length=2048)]
MAX_CANDIDATES = 1000
# A Literal rather than an Enum: strict mode would refuse the JSON string for an enum member.
Action = Literal["view", "click", "add_to_cart", "purchase"]


class Contract(BaseModel):
    """Common configuration: strict types, unknown fields ignored (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    schema_version: Literal[1] = Field(
        default=1,
        description="version of this contract; producers may omit it while it is 1",
    )


class Candidate(BaseModel):
    """One product the site's first-stage search proposes for a query."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    item_id: Id
    retrieval_score: float | None = Field(
        default=None, description="first-stage score, if the site has one"
    )


class SearchEvent(Contract):
    """A user searched; streamrank re-ranks `candidates` for them. Key: user_id."""

    event_id: Id
    request_id: Id = Field(description="echoed in the RankedResult; actions may cite it")
    user_id: Id
    session_id: Id | None = None
    ts: EpochMs
    query: ShortText
    candidates: list[Candidate] = Field(min_length=1, max_length=MAX_CANDIDATES)


class ActionEvent(Contract):
    """A user did something with an item. Key: user_id."""

    event_id: Id
    user_id: Id
    ts: EpochMs
    item_id: Id
    action: Action
    request_id: Id | None = Field(default=None, description="the search this action answers")
    position: int | None = Field(default=None, ge=0, description="0-based rank it was shown at")
    query: ShortText | None = Field(default=None, description="the query, when the site knows it")


class Item(Contract):
    """A catalog product. Key: item_id. The topic is compacted; `deleted` tombstones it."""

    item_id: Id
    title: ShortText
    brand: ShortText | None = None
    category: ShortText | None = None
    price: float | None = Field(default=None, ge=0)
    description: Annotated[str, Field(max_length=20_000)] | None = None
    deleted: bool = False

    def text(self) -> str:
        """The text a model reads for this item: title first, it carries the most signal."""
        parts = [self.title]
        parts += [p for p in (self.brand, self.category) if p]
        if self.description:
            parts.append(self.description[:500])
        return " | ".join(parts)


class RankedItem(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    item_id: Id
    score: float
    rank: int = Field(ge=1, description="1 = best")


class RankedResult(Contract):
    """streamrank's answer to a SearchEvent. Key: user_id."""

    request_id: Id
    user_id: Id
    items: list[RankedItem] = Field(description="every candidate exactly once, best first")
    model_version: str
    degraded: bool = Field(
        default=False, description="true when the list is the original order, not a ranking"
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


class TrainingSample(Contract):
    """One shown candidate of one published ranking, labelled by what the user then did.
    Key: user_id. Exactly one per (request_id, item_id), after the attribution window."""

    sample_id: Id = Field(description="request_id and item_id joined: the dedup key")
    request_id: Id
    user_id: Id
    ts: EpochMs = Field(description="when the search was received")
    query: ShortText
    history: list[ShortText] = Field(
        default_factory=list, description="the user's recent texts at search time, newest first"
    )
    item_id: Id
    item_text: ShortText = Field(default="", description="the text the model read for the item")
    label: float = Field(ge=0, description="0 skipped, 1 click, 2 add_to_cart, 3 purchase")
    action: Literal["skipped", "click", "add_to_cart", "purchase"] = "skipped"
    position: int = Field(ge=0, description="0-based rank it was shown at")
    shown_score: float
    model_version: str
    candidates: int = Field(ge=1, description="how many items the ranking showed")


CONTRACTS: dict[str, type[Contract]] = {
    "SearchEvent": SearchEvent,
    "ActionEvent": ActionEvent,
    "Item": Item,
    "RankedResult": RankedResult,
    "ModelUpdate": ModelUpdate,
    "TrainingSample": TrainingSample,
}
