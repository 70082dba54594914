"""From per-search scores to the report's tables: metrics, intervals, the paired comparisons.

All quality figures come from `scoring.quality` (the one definition of NDCG@10, MRR, hit@10
and the bootstraps). Intervals resample USERS (`user_bootstrap`): a few heavy users account
for most test searches, and one user's searches are not independent draws. Per segment the
references are the best non-learned system (by mean NDCG@10; diagnostics excluded) and
"popularity, seen demoted"; every other system gets the paired user-resampled interval of its
difference to each, so "beats" means that interval lies above 0. NDCG@10 is also given over
ALL test searches with the retriever's misses counted as 0 (no system can rank a movie that is
not among the candidates), which is what a user of the whole pipeline would see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluation.protocol import Search
from scoring.quality import Interval, paired_user_bootstrap, per_list, user_bootstrap

Floats = npt.NDArray[np.float64]
K = 10
NDCG, MRR, HIT = f"ndcg@{K}", "mrr", f"hit@{K}"
ROUNDS = 1000
BEST_RULE = "best non-learned"
POPULARITY_SEEN = "popularity, seen demoted"


@dataclass
class Scored:
    """One system's per-search metrics on one population (aligned with its searches)."""

    name: str
    personalized: bool
    learned: bool
    version: str
    metrics: dict[str, Floats]
    seconds: float  # scoring time
    diagnostic: bool = False
    users: npt.NDArray[np.str_] = field(default_factory=lambda: np.zeros(0, dtype=str))

    @classmethod
    def of(
        cls, system: Any, searches: Sequence[Search], scores: Sequence[Floats], seconds: float
    ) -> Scored:
        labels = [s.labels for s in searches]
        return cls(
            name=system.name, personalized=system.personalized, learned=system.learned,
            version=system.version, metrics=per_list(scores, labels, K), seconds=seconds,
            diagnostic=system.diagnostic, users=np.array([s.user_id for s in searches]),
        )

    def take(self, index: npt.NDArray[np.intp]) -> Scored:
        users = self.users[index] if len(self.users) else self.users
        return Scored(self.name, self.personalized, self.learned, self.version,
                      {k: v[index] for k, v in self.metrics.items()}, self.seconds,
                      self.diagnostic, users)

    def groups(self) -> npt.NDArray[np.str_]:
        """The user of each list (each list its own group when users are unknown)."""
        n = len(self.metrics[NDCG])
        return self.users if len(self.users) == n else np.arange(n).astype(str)


@dataclass
class Row:
    system: str
    personalized: bool
    learned: bool
    version: str
    ndcg: Interval
    mrr: Interval
    hit: float
    ndcg_all: float  # NDCG@10 over every test search of the segment, misses counted as 0
    deltas: dict[str, Interval | None]  # reference label -> paired NDCG@10 difference
    relative: dict[str, float]  # reference label -> difference / reference mean
    diagnostic: bool = False

    @property
    def delta(self) -> Interval | None:
        return self.deltas.get(BEST_RULE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system, "personalized": self.personalized, "learned": self.learned,
            "version": self.version, NDCG: self.ndcg.as_dict(), MRR: self.mrr.as_dict(),
            HIT: self.hit, "ndcg_all_searches": self.ndcg_all,
            "deltas": {k: None if v is None else v.as_dict() for k, v in self.deltas.items()},
            "relative": self.relative, "diagnostic": self.diagnostic,
        }


@dataclass
class Table:
    population: str
    segment: str
    searches: int
    all_searches: int  # including the retriever's misses
    recall: float  # the retriever's recall@k over the segment's test searches
    references: dict[str, str]  # label -> system
    rows: list[Row] = field(default_factory=list)
    scored: dict[str, Scored] = field(default_factory=dict, repr=False)

    @property
    def reference(self) -> str:
        return self.references[BEST_RULE]

    def row(self, system: str) -> Row:
        return next(r for r in self.rows if r.system == system)

    def best(self, *, personalized: bool | None = None, learned: bool | None = None) -> Row:
        """The best servable (non-diagnostic) row matching the filters."""
        rows = [r for r in self.rows if not r.diagnostic
                and (personalized is None or r.personalized == personalized)
                and (learned is None or r.learned == learned)]
        return max(rows, key=lambda r: r.ndcg.mean)

    def pair(self, a: str, b: str) -> Interval:
        """Paired, user-resampled NDCG@10 difference a - b on this segment."""
        x, y = self.scored[a], self.scored[b]
        return paired_user_bootstrap(x.metrics[NDCG], y.metrics[NDCG], x.groups(),
                                     rounds=ROUNDS)

    def as_dict(self) -> dict[str, Any]:
        return {"population": self.population, "segment": self.segment,
                "searches": self.searches, "all_searches": self.all_searches,
                "recall": self.recall, "references": self.references,
                "rows": [r.as_dict() for r in self.rows]}


def table(
    population: str, segment: str, scored: Sequence[Scored], recall: float, *,
    all_searches: int | None = None, seed: int = 0,
) -> Table | None:
    """The comparison on one segment; None when it has no searches."""
    if not scored or not len(scored[0].metrics[NDCG]):
        return None
    rules = [s for s in scored if not s.learned and not s.diagnostic]
    if not rules:
        raise ValueError("no non-learned system to compare with")
    best = max(rules, key=lambda s: float(s.metrics[NDCG].mean()))
    refs = {BEST_RULE: best}
    pop = next((s for s in scored if s.name == POPULARITY_SEEN), None)
    if pop is not None:
        refs[POPULARITY_SEEN] = pop
    n = len(best.metrics[NDCG])
    total = all_searches if all_searches is not None else n
    out = Table(population, segment, n, total, recall, {k: v.name for k, v in refs.items()},
                scored={s.name: s for s in scored})
    for s in scored:
        groups = s.groups()
        deltas: dict[str, Interval | None] = {}
        relative: dict[str, float] = {}
        for label, ref in refs.items():
            mean = float(ref.metrics[NDCG].mean())
            deltas[label] = None if s is ref else paired_user_bootstrap(
                s.metrics[NDCG], ref.metrics[NDCG], groups, rounds=ROUNDS, seed=seed)
            relative[label] = (float(s.metrics[NDCG].mean()) - mean) / mean if mean else 0.0
        out.rows.append(Row(
            system=s.name, personalized=s.personalized, learned=s.learned, version=s.version,
            ndcg=user_bootstrap(s.metrics[NDCG], groups, rounds=ROUNDS, seed=seed),
            mrr=user_bootstrap(s.metrics[MRR], groups, rounds=ROUNDS, seed=seed),
            hit=float(s.metrics[HIT].mean()),
            ndcg_all=float(s.metrics[NDCG].sum()) / total if total else 0.0,
            deltas=deltas, relative=relative, diagnostic=s.diagnostic,
        ))
    return out


def segment_index(searches: Sequence[Search], warm_min: int) -> dict[str, npt.NDArray[np.intp]]:
    prior = np.array([s.prior_events for s in searches], dtype=np.int64)
    return {
        "all": np.arange(len(searches)),
        "warm": np.flatnonzero(prior >= warm_min),
        "cold": np.flatnonzero(prior < warm_min),
    }


def tables(
    population: str,
    searches: Sequence[Search],
    scored: Sequence[Scored],
    recall: Mapping[str, float],
    warm_min: int,
    totals: Mapping[str, int] | None = None,
) -> list[Table]:
    """One table per segment; `totals`: the segment's test searches including misses."""
    out = []
    for segment, index in segment_index(searches, warm_min).items():
        t = table(population, segment, [s.take(index) for s in scored], recall[segment],
                  all_searches=None if totals is None else totals.get(segment))
        if t is not None:
            out.append(t)
    return out


PRODUCT = "hybrid"  # the product's ranker: the verdict is about it when it is in the table


def goal(t: Table, target: float = 0.25) -> dict[str, Any]:
    """The product goal on one table: the learned ranker (the hybrid when present, else the
    best learned servable system) against the best non-learned one, by >= `target` relative
    NDCG@10 with the paired interval above 0."""
    learned = [r for r in t.rows if r.learned and not r.diagnostic]
    if not learned:
        return {"met": False, "reason": "no learned system in this table"}
    product = [r for r in learned if r.system == PRODUCT]
    best = product[0] if product else max(learned, key=lambda r: r.ndcg.mean)
    delta = best.deltas.get(BEST_RULE)
    above = delta is not None and delta.low > 0
    rel = best.relative[BEST_RULE]
    return {
        "system": best.system, "reference": t.reference, "relative": rel,
        "interval_above_zero": above, "met": rel >= target and above, "target": target,
    }


__all__ = ["BEST_RULE", "HIT", "MRR", "NDCG", "POPULARITY_SEEN", "Row", "Scored", "Table",
           "goal", "segment_index", "table", "tables"]
