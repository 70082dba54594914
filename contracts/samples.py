"""The training sample: one closed impression, everything the trainer needs from it once.

A worker writes one TrainingSample when a published ranking's attribution window closes: the
request, the user, the query and the history texts the model read (once), the model version
and the version of the behaviour feature spec it scored with, and the shown list in shown
order, each item with its published score, its graded label and the feature vector the model
scored it with. Item texts are not repeated here: the trainer reads them from the catalog.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events import LABELS, MAX_CANDIDATES, Contract, EpochMs, Id, ShortText

# Longest feature vector a sample carries (a spec has a few dozen).
MAX_FEATURES = 1024
Label = Literal["skipped", "click", "add_to_cart", "purchase"]
Feature = Annotated[float, Field(allow_inf_nan=False)]


class ShownItem(BaseModel):
    """One item of the shown list, where it was shown and what the user did with it."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    item_id: Id
    position: int = Field(ge=0, lt=MAX_CANDIDATES, description="0-based rank it was shown at")
    shown_score: float = Field(description="the score published with the ranking")
    label: float = Field(ge=0, description="0 skipped, 1 click, 2 add_to_cart, 3 purchase")
    action: Label = Field(default="skipped", description="the strongest action taken on it")
    features: list[Feature] = Field(
        default_factory=list, max_length=MAX_FEATURES,
        description="the behaviour features the model scored this item with, in the order of "
        "the record's feature_spec (float32 values); empty when the model used none",
    )


class TrainingSample(Contract):
    """One published ranking, labelled by what the user then did. Key: user_id. Exactly one
    per (user_id, request_id), after the ranking's attribution window closed."""

    key_field: ClassVar[str | None] = "user_id"

    request_id: Id
    user_id: Id
    ts: EpochMs = Field(description="the search's own time (the site's clock)")
    query: ShortText
    history: list[ShortText] = Field(
        default_factory=list,
        description="the user's recent texts the model read, newest first",
    )
    model_version: str
    feature_spec: str | None = Field(
        default=None,
        description="version of the behaviour feature spec the items' features follow (its "
        "names are in the model's manifest); null when the model used none",
    )
    items: list[ShownItem] = Field(
        min_length=1, max_length=MAX_CANDIDATES,
        description="the shown list in shown order: positions 0, 1, 2, ...",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSample:
        if any(item.position != n for n, item in enumerate(self.items)):
            raise ValueError("items must be in shown order with positions 0, 1, 2, ...")
        if len({item.item_id for item in self.items}) != len(self.items):
            raise ValueError("an item_id is listed twice")
        widths = {len(item.features) for item in self.items}
        if len(widths) > 1:
            raise ValueError(f"feature vectors of different lengths: {sorted(widths)}")
        if widths != {0} and self.feature_spec is None:
            raise ValueError("features without a feature_spec")
        for item in self.items:
            if LABELS[item.action] != item.label:
                raise ValueError(f"{item.item_id}: label {item.label} is not {item.action!r}")
        return self

    @property
    def positives(self) -> int:
        return sum(1 for item in self.items if item.label > 0)


__all__ = ["MAX_FEATURES", "ShownItem", "TrainingSample"]
