"""Turning scores into the published order: every candidate exactly once, best first."""

from __future__ import annotations

import math
from collections.abc import Sequence

from contracts import Candidate, RankedItem


def unique_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates with repeated item_ids dropped (first wins): a list shows an item once."""
    seen: set[str] = set()
    out = []
    for cand in candidates:
        if cand.item_id not in seen:
            seen.add(cand.item_id)
            out.append(cand)
    return out


def rank(candidates: Sequence[Candidate], scores: Sequence[float]) -> list[RankedItem]:
    """Best first; ties keep the site's original order, so a flat scorer changes nothing."""
    if len(candidates) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(candidates)} candidates")
    # A NaN would make the sort order undefined: rank it last.
    safe = [s if math.isfinite(s) else -math.inf for s in scores]
    order = sorted(range(len(candidates)), key=lambda i: (-safe[i], i))
    return [
        RankedItem(item_id=candidates[i].item_id, score=_finite(safe[i]), rank=r)
        for r, i in enumerate(order, start=1)
    ]


def original_order(candidates: Sequence[Candidate]) -> list[RankedItem]:
    """The degraded answer: the site's own order, scored by retrieval score when it sent one."""
    return [
        RankedItem(item_id=c.item_id, score=float(c.retrieval_score or 0.0), rank=r)
        for r, c in enumerate(candidates, start=1)
    ]


def _finite(score: float) -> float:
    # JSON has no infinity; the rank carries the order.
    return score if math.isfinite(score) else -1e9
