"""The records of an impression: what one user was shown, and that user's index of them.

Plain data with their JSON encodings (orjson serializes the dataclasses directly); the logic
that keeps, labels and closes them is state/impressions.py. An impression keeps the feature
matrix the model scored the shown items with (float32, rows in shown order, base64 in the
record), so the training sample carries exactly what serving saw.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from contracts import LABELS, TrainingSample
from contracts.samples import ShownItem

Features = npt.NDArray[np.float32]


def pack_features(features: npt.ArrayLike | None, rows: int) -> str:
    """A [rows, F] feature matrix as the record keeps it: base64 of little-endian float32."""
    if features is None:
        return ""
    matrix = np.ascontiguousarray(features, dtype="<f4")
    if matrix.ndim != 2 or matrix.shape[0] != rows:
        raise ValueError(f"features of shape {matrix.shape}, expected ({rows}, F)")
    if not np.isfinite(matrix).all():
        raise ValueError("features must be finite")
    return base64.b64encode(matrix.tobytes()).decode("ascii")


def unpack_features(packed: str, rows: int) -> Features | None:
    if not packed or rows == 0:
        return None
    flat = np.frombuffer(base64.b64decode(packed), dtype="<f4")
    return flat.reshape(rows, -1).astype(np.float32)


@dataclass
class Impression:
    request_id: str
    user_id: str
    ts: int  # the search's own time (site clock): what an action's ts is compared with
    received_ts: int  # worker clock, like close_at
    close_at: int
    query: str
    history: list[str]
    model_version: str
    items: list[tuple[str, float]]  # shown order: (item_id, published score)
    labels: dict[str, str] = field(default_factory=dict)  # item_id -> strongest action
    closed: bool = False  # window closed: labels frozen, samples being emitted
    feature_spec: str = ""  # version of the behaviour feature spec ("" when none)
    features: str = ""  # pack_features of the shown items' features ("" when none)

    def shows(self, item_id: str) -> bool:
        return any(i == item_id for i, _ in self.items)

    def label(self, item_id: str, action: str) -> bool:
        """Record `action` on a shown item; True if it is stronger than what was there."""
        if LABELS[action] <= LABELS[self.labels.get(item_id, "skipped")]:
            return False
        self.labels[item_id] = action
        return True

    def feature_matrix(self) -> Features | None:
        """The logged features, one row per shown item in shown order; None when none."""
        return unpack_features(self.features, len(self.items))

    def sample(self) -> TrainingSample:
        """The impression as its one training sample (labels as they are now)."""
        matrix = self.feature_matrix()
        # orjson writes float32 in their shortest form; read back as floats they convert to
        # the same float32 exactly, and the record stays about half the size of float64 text.
        rows: list[list[float]] = (
            orjson.loads(orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY))
            if matrix is not None else [[] for _ in self.items]
        )
        items = []
        for position, ((item_id, score), row) in enumerate(zip(self.items, rows, strict=True)):
            action = self.labels.get(item_id, "skipped")
            items.append(ShownItem.model_construct(
                item_id=item_id, position=position, shown_score=score, label=LABELS[action],
                action=action, features=row,
            ))
        # Built from state this worker validated when it kept it: not validated again.
        return TrainingSample.model_construct(
            request_id=self.request_id, user_id=self.user_id, ts=self.ts, query=self.query,
            history=list(self.history), model_version=self.model_version,
            feature_spec=self.feature_spec or None, items=items,
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # orjson serializes dataclasses natively (asdict is slow)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Impression:
        data = orjson.loads(raw)
        data["items"] = [(i, s) for i, s in data["items"]]
        return cls(**data)


@dataclass
class UserIndex:
    open: list[list[str | int]] = field(default_factory=list)  # [request_id, ts], newest first
    done: list[list[str | int]] = field(default_factory=list)  # [request_id, forget_at]
    early: list[list[str | int]] = field(default_factory=list)  # [rid, item, action, forget_at]
    gc_at: int = 0  # when a clean-up of this index is scheduled (0: none)

    def knows(self, request_id: str) -> bool:
        return any(e[0] == request_id for e in (*self.open, *self.done))

    def empty(self) -> bool:
        return not (self.open or self.done or self.early)
