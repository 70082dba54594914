"""The non-learned baselines a ranking engineer tries first, over the behaviour features.

Each reads one column the behaviour replay built (evaluation/behaviour_replay.py: the worker's
state at search time) and demotes what the user already rated below everything else (the
protocol's exact "seen", as "popularity, seen demoted" does):
  - retriever, seen demoted: the site's order;
  - recent popularity (window), seen demoted: decayed action counts (1d, 7d or 30d time
    constant), ties broken by all-time popularity;
  - co-occurrence (variant), seen demoted: the summed weights of the candidate's neighbours
    among the user's retained set, last items or liked items, ties broken by popularity.
Where a rule has variants (window, history set), the one with the best NDCG@10 on the
validation searches (the latest 10% of the training period) is chosen: the test period is
never looked at to pick it. `pick` returns the others' validation figures for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.behaviour_replay import BehaviourData
from evaluation.protocol import Search
from evaluation.systems import Floats
from scoring.behaviour_spec import window_name
from scoring.quality import ndcg_at

Column = Callable[[BehaviourData, Search], Floats]


def demote_seen(scores: Floats, seen: Sequence[bool]) -> Floats:
    """`scores` with the seen candidates moved below every other one (order kept)."""
    span = float(scores.max() - scores.min()) if len(scores) else 0.0
    return scores - (span + 1.0) * np.asarray(seen, dtype=np.float64)


def _col(name: str, raw: bool = True) -> Column:
    def get(b: BehaviourData, s: Search) -> Floats:
        x = b.of(s)[:, b.spec.index(name)].astype(np.float64)
        return np.expm1(x) if raw else x

    return get


def _with_popularity(column: Column) -> Column:
    def get(b: BehaviourData, s: Search) -> Floats:
        popularity = np.expm1(b.of(s)[:, b.spec.index("item_count")].astype(np.float64))
        return column(b, s) + 1e-9 * popularity

    return get


def _position(b: BehaviourData, s: Search) -> Floats:
    return -b.of(s)[:, b.spec.index("retr_position")].astype(np.float64)


@dataclass
class FeatureRule:
    """A rule over one behaviour column, seen demoted."""

    name: str
    behaviour: BehaviourData
    column: Column
    personalized: bool = True
    learned: bool = False
    diagnostic: bool = False
    version: str = ""

    def score(self, searches: Sequence[Search]) -> list[Floats]:
        return [demote_seen(self.column(self.behaviour, s), s.seen) for s in searches]


def variants(behaviour: BehaviourData) -> dict[str, dict[str, Column]]:
    """Rule family -> {system name: column}."""
    recent = {
        f"recent popularity ({window_name(w)}), seen demoted":
            _with_popularity(_col(f"item_decayed_{window_name(w)}"))
        for w in behaviour.spec.windows_ms
    }
    cooc = {
        f"co-occurrence ({label}), seen demoted": _with_popularity(_col(name, raw=False))
        for label, name in (("retained set", "cooc_sum"), ("recent items", "cooc_sum_recent"),
                            ("liked items", "cooc_sum_liked"))
    }
    return {"retriever": {"retriever, seen demoted": _position}, "recent popularity": recent,
            "co-occurrence": cooc}


def pick(behaviour: BehaviourData, validation: Sequence[Search]
         ) -> tuple[list[FeatureRule], dict[str, float]]:
    """The chosen rule of each family (by validation NDCG@10) and every variant's figure."""
    chosen: list[FeatureRule] = []
    figures: dict[str, float] = {}
    for family in variants(behaviour).values():
        best_name, best = "", -1.0
        for name, column in family.items():
            rule = FeatureRule(name, behaviour, column)
            scores = rule.score(validation)
            value = float(np.mean([ndcg_at(x, s.labels, 10)
                                   for x, s in zip(scores, validation, strict=True)])) \
                if validation else 0.0
            figures[name] = round(value, 5)
            if value > best:
                best_name, best = name, value
        chosen.append(FeatureRule(best_name, behaviour, family[best_name]))
    return chosen, figures


__all__ = ["FeatureRule", "demote_seen", "pick", "variants"]
