"""From per-search scores to the report's tables: metrics, intervals, the paired comparison.

All quality figures come from `scoring.quality` (the one definition of NDCG@10, MRR, hit@10
and the bootstrap). Per segment, the reference is the best non-personalized system by mean
NDCG@10; every other system gets the paired-bootstrap interval of its difference to it
(resampling searches, pairs kept), so "beats" means the interval lies above 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluation.protocol import Search
from scoring.quality import Interval, bootstrap, paired_bootstrap, per_list

Floats = npt.NDArray[np.float64]
K = 10
NDCG, MRR, HIT = f"ndcg@{K}", "mrr", f"hit@{K}"
ROUNDS = 1000


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

    @classmethod
    def of(
        cls, system: Any, searches: Sequence[Search], scores: Sequence[Floats], seconds: float
    ) -> Scored:
        labels = [s.labels for s in searches]
        return cls(
            name=system.name,
            personalized=system.personalized,
            learned=system.learned,
            version=system.version,
            metrics=per_list(scores, labels, K),
            seconds=seconds,
            diagnostic=system.diagnostic,
        )

    def take(self, index: npt.NDArray[np.intp]) -> Scored:
        return Scored(self.name, self.personalized, self.learned, self.version,
                      {k: v[index] for k, v in self.metrics.items()}, self.seconds,
                      self.diagnostic)


@dataclass
class Row:
    system: str
    personalized: bool
    learned: bool
    version: str
    ndcg: Interval
    mrr: Interval
    hit: float
    delta: Interval | None  # NDCG@10 minus the reference's, paired; None for the reference
    relative: float  # delta / reference mean NDCG@10
    diagnostic: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system, "personalized": self.personalized, "learned": self.learned,
            "version": self.version, NDCG: self.ndcg.as_dict(), MRR: self.mrr.as_dict(),
            HIT: self.hit, "delta_ndcg": None if self.delta is None else self.delta.as_dict(),
            "relative_ndcg": self.relative, "diagnostic": self.diagnostic,
        }


@dataclass
class Table:
    population: str
    segment: str
    searches: int
    recall: float  # the retriever's recall@k over the segment's test searches
    reference: str  # best non-personalized system
    rows: list[Row] = field(default_factory=list)

    def row(self, system: str) -> Row:
        return next(r for r in self.rows if r.system == system)

    def best(self, *, personalized: bool | None = None, learned: bool | None = None) -> Row:
        """The best servable (non-diagnostic) row matching the filters."""
        rows = [r for r in self.rows if not r.diagnostic
                and (personalized is None or r.personalized == personalized)
                and (learned is None or r.learned == learned)]
        return max(rows, key=lambda r: r.ndcg.mean)

    def as_dict(self) -> dict[str, Any]:
        return {"population": self.population, "segment": self.segment,
                "searches": self.searches, "recall": self.recall, "reference": self.reference,
                "rows": [r.as_dict() for r in self.rows]}


def table(
    population: str, segment: str, scored: Sequence[Scored], recall: float, *, seed: int = 0
) -> Table | None:
    """The comparison on one segment; None when it has no searches."""
    if not scored or not len(scored[0].metrics[NDCG]):
        return None
    plain = [s for s in scored if not s.personalized and not s.diagnostic]
    if not plain:
        raise ValueError("no non-personalized system to compare with")
    ref = max(plain, key=lambda s: float(s.metrics[NDCG].mean()))
    ref_mean = float(ref.metrics[NDCG].mean())
    out = Table(population, segment, len(ref.metrics[NDCG]), recall, ref.name)
    for s in scored:
        delta = None if s is ref else paired_bootstrap(
            s.metrics[NDCG], ref.metrics[NDCG], rounds=ROUNDS, seed=seed)
        out.rows.append(Row(
            system=s.name, personalized=s.personalized, learned=s.learned, version=s.version,
            ndcg=bootstrap(s.metrics[NDCG], rounds=ROUNDS, seed=seed),
            mrr=bootstrap(s.metrics[MRR], rounds=ROUNDS, seed=seed),
            hit=float(s.metrics[HIT].mean()),
            delta=delta,
            relative=(float(s.metrics[NDCG].mean()) - ref_mean) / ref_mean if ref_mean else 0.0,
            diagnostic=s.diagnostic,
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
) -> list[Table]:
    out = []
    for segment, index in segment_index(searches, warm_min).items():
        t = table(population, segment, [s.take(index) for s in scored], recall[segment])
        if t is not None:
            out.append(t)
    return out


def goal(t: Table, target: float = 0.25) -> dict[str, Any]:
    """The product goal on one table: the best learned personalized system against the
    reference, by >= `target` relative NDCG@10 with non-overlapping intervals."""
    learned = [r for r in t.rows if r.learned and r.personalized and not r.diagnostic]
    if not learned:
        return {"met": False, "reason": "no learned personalized system in this table"}
    best = max(learned, key=lambda r: r.ndcg.mean)
    ref = t.row(t.reference)
    apart = not best.ndcg.overlaps(ref.ndcg)
    return {
        "system": best.system, "reference": ref.system, "relative": best.relative,
        "intervals_apart": apart, "met": best.relative >= target and apart,
        "target": target,
    }


__all__ = ["HIT", "MRR", "NDCG", "Row", "Scored", "Table", "goal", "segment_index", "table",
           "tables"]
