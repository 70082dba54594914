"""Event contracts: what travels on streamrank's topics.

The lowest layer: state, scoring and streams depend on it; it depends on nothing of theirs.
"""

from contracts.codec import (
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    REASONS,
    DecodeError,
    check_key,
    decode,
    encode,
)
from contracts.events import (
    LABELS,
    SCHEMA_VERSION,
    Action,
    ActionEvent,
    Candidate,
    Item,
    ModelUpdate,
    RankedItem,
    RankedResult,
    SearchEvent,
)
from contracts.samples import ShownItem, TrainingSample
from contracts.topics import TopicNames

__all__ = [
    "LABELS",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "REASONS",
    "SCHEMA_VERSION",
    "Action",
    "ActionEvent",
    "Candidate",
    "DecodeError",
    "Item",
    "ModelUpdate",
    "RankedItem",
    "RankedResult",
    "SearchEvent",
    "ShownItem",
    "TopicNames",
    "TrainingSample",
    "check_key",
    "decode",
    "encode",
]
