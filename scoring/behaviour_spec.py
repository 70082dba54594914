"""The behaviour feature spec: which features a hybrid model reads, in which order.

Recorded in the model's manifest (`features["behaviour"]`), so the worker builds exactly the
features the version was trained on; serving refuses a version whose spec has an unknown
`version` or whose names differ from what this code builds for that version.

API:
    BehaviourSpec(version=1, windows_ms=(1d, 7d, 30d), actions=ACTIONS, neighbours=100,
                  recent_items=10, retained=1000, buckets=128)
        .names            ordered feature names (float32 columns of the builder's matrix)
        .to_dict() / BehaviourSpec.from_dict(data)   (ValueError on unknown version/mismatch)
    feature_names(windows_ms, actions) -> tuple[str, ...]   the names of version 1
    window_name(ms) -> "1d", "7d", "30d", "12h", ...

scoring/behaviour.py computes every feature; docs/models.md describes each one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.ids import ACTIONS

SPEC_VERSIONS = (1,)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# Groups of features, in matrix order (ablations and docs refer to them by group).
SEARCH = ("retr_score", "retr_has_score", "retr_position", "retr_score_gap")
SEEN = ("seen", "seen_action", "seen_hours_ago", "seen_count")
NEIGHBOURS = ("cooc_sum", "cooc_mean", "cooc_sum_recent", "cooc_max_recent", "cooc_sum_liked",
              "cooc_hits")
ATTRIBUTES = ("attr_affinity", "attr_affinity_recent", "attr_affinity_liked", "item_value",
              "item_value_known")
USER = ("user_events", "user_has_history", "user_retained", "user_mean_strength",
        "user_hours_since_last", "user_activity_1d")


def window_name(ms: int) -> str:
    if ms % DAY_MS == 0:
        return f"{ms // DAY_MS}d"
    if ms % HOUR_MS == 0:
        return f"{ms // HOUR_MS}h"
    return f"{ms}ms"


def item_feature_names(windows_ms: tuple[int, ...], actions: tuple[str, ...]) -> tuple[str, ...]:
    windows = [window_name(w) for w in windows_ms]
    return (
        "item_known", "item_count",
        *(f"item_count_{a}" for a in actions),
        *(f"item_decayed_{w}" for w in windows),
        *(f"item_decayed_{w}_{a}" for w in windows for a in actions),
        "item_mean_strength", "item_hours_since_last", "item_age_days", "item_popularity_rank",
    )


def feature_names(windows_ms: tuple[int, ...], actions: tuple[str, ...]) -> tuple[str, ...]:
    """Version 1's features, in matrix order."""
    return (*SEARCH, *item_feature_names(windows_ms, actions), *SEEN, *NEIGHBOURS, *ATTRIBUTES,
            *USER)


@dataclass(frozen=True)
class BehaviourSpec:
    version: int = 1
    windows_ms: tuple[int, ...] = (DAY_MS, 7 * DAY_MS, 30 * DAY_MS)
    actions: tuple[str, ...] = ACTIONS
    neighbours: int = 100  # K co-occurrence neighbours kept per item
    recent_items: int = 10  # the user's most recently touched items ("recent" features)
    retained: int = 1000  # retained interaction set the model was trained with
    buckets: int = 128  # attribute buckets (state.interactions)
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.version not in SPEC_VERSIONS:
            raise ValueError(f"unknown behaviour spec version {self.version}; this code builds "
                             f"{', '.join(map(str, SPEC_VERSIONS))}")
        if set(self.actions) - set(ACTIONS) or not self.actions:
            raise ValueError(f"unknown actions in {self.actions}")
        if self.neighbours < 1 or self.recent_items < 1 or self.retained < 1:
            raise ValueError("neighbours, recent_items and retained must be >= 1")
        if self.buckets < 64 or self.buckets % 64:
            raise ValueError("buckets must be a multiple of 64")
        built = feature_names(self.windows_ms, self.actions)
        if not self.names:
            object.__setattr__(self, "names", built)
        elif tuple(self.names) != built:
            raise ValueError(
                f"feature names differ from what version {self.version} builds "
                f"(first difference at {_first_difference(tuple(self.names), built)})")

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def id(self) -> str:
        """The spec's name where features are logged (TrainingSample.feature_spec): its version
        and a digest of its feature names (specs of one version with other windows differ)."""
        digest = hashlib.sha256(",".join(self.names).encode()).hexdigest()[:8]
        return f"{self.version}:{digest}"

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "windows_ms": list(self.windows_ms),
                "actions": list(self.actions), "neighbours": self.neighbours,
                "recent_items": self.recent_items, "retained": self.retained,
                "buckets": self.buckets, "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BehaviourSpec:
        """The spec a manifest records; ValueError for an unknown version or other names."""
        try:
            return cls(
                version=int(data["version"]), windows_ms=tuple(int(w) for w in data["windows_ms"]),
                actions=tuple(str(a) for a in data["actions"]),
                neighbours=int(data["neighbours"]), recent_items=int(data["recent_items"]),
                retained=int(data["retained"]), buckets=int(data["buckets"]),
                names=tuple(str(n) for n in data["names"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed behaviour spec ({exc!r})") from exc


def _first_difference(a: tuple[str, ...], b: tuple[str, ...]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"{i}: {x!r} vs {y!r}"
    return f"length {len(a)} vs {len(b)}"


__all__ = ["ATTRIBUTES", "NEIGHBOURS", "SEARCH", "SEEN", "USER", "BehaviourSpec",
           "feature_names", "item_feature_names", "window_name"]
