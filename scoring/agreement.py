"""How far two scorings of the same lists agree, and the ranking gate of reduced precision.

The gate judges the ranking a user would see, not exact order: Kendall tau ignores pairs the
reference scores within TIE_FRACTION of the list's score range (dynamic int8 noise flips such
near-ties among irrelevant candidates), the top 10 must mostly stay, and NDCG@10 on labelled
lists may barely move. Export (scoring/training, against torch on the exporting machine) and
serving (scoring/variants, against the stored fp32 reference on the serving machine) apply the
same gate. numpy only: serving imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.quality import ndcg_at

Floats = npt.NDArray[np.floating[Any]]
TOP_K = 10
TIE_FRACTION = 0.02


def kendall_tau(a: Floats, b: Floats) -> float:
    """Kendall's tau-b of two score vectors (1.0 for fewer than two items)."""
    if len(a) < 2:
        return 1.0
    iu = np.triu_indices(len(a), k=1)
    da = np.sign(a[:, None] - a[None, :])[iu]
    db = np.sign(b[:, None] - b[None, :])[iu]
    denom = np.sqrt(float(np.count_nonzero(da)) * float(np.count_nonzero(db)))
    return float((da * db).sum() / denom) if denom else 1.0


def kendall_tau_clear(a: Floats, b: Floats, tie_fraction: float = TIE_FRACTION) -> float:
    """Kendall's tau over the pairs `a` (the reference) tells apart by more than
    `tie_fraction` of its score range; 1.0 when no pair is that clear."""
    if len(a) < 2:
        return 1.0
    iu = np.triu_indices(len(a), k=1)
    dw = (a[:, None] - a[None, :])[iu]
    dg = (b[:, None] - b[None, :])[iu]
    clear = np.abs(dw) > tie_fraction * float(np.ptp(a))
    if not clear.any():
        return 1.0
    return float((np.sign(dw[clear]) * np.sign(dg[clear])).mean())


def top_overlap(a: Floats, b: Floats, k: int = TOP_K) -> float:
    """Share of `a`'s top k that `b` also ranks in its top k (1.0 for an empty list)."""
    n = min(k, len(a))
    if n == 0:
        return 1.0
    top_a = set(np.argsort(-a, kind="stable")[:n].tolist())
    return len(top_a & set(np.argsort(-b, kind="stable")[:n].tolist())) / n


def ndcg_drop(want: Floats, got: Floats, labels: Sequence[float], k: int = TOP_K) -> float | None:
    """NDCG@k the `got` scoring loses against `want`; None for a list without a positive
    label, which has no ranking to lose (the gate skips it rather than counting it as 0)."""
    if not any(x > 0 for x in labels):
        return None
    return ndcg_at(want, labels, k) - ndcg_at(got, labels, k)


def _same_order(want: Floats, got: Floats, tie: float) -> bool:
    dw = want[:, None] - want[None, :]
    dg = got[:, None] - got[None, :]
    clear = np.abs(dw) > tie
    return bool((np.sign(dw[clear]) == np.sign(dg[clear])).all())


@dataclass(frozen=True)
class Agreement:
    """How one scoring (`got`) compares with a reference (`want`) on the same lists."""

    max_abs_diff: float
    mean_abs_diff: float
    min_tau: float
    mean_tau: float
    min_top10: float
    # Pairs closer than `tie` in the reference count as ties.
    ranking_identical: bool
    lists: int
    # Tau over the pairs the reference clearly orders (see TIE_FRACTION), and NDCG@10 lost
    # against the reference on the labelled lists (lists without a positive are skipped).
    min_clear_tau: float = 1.0
    mean_clear_tau: float = 1.0
    max_ndcg_drop: float = 0.0
    mean_ndcg_drop: float = 0.0

    @classmethod
    def of(
        cls,
        want: Sequence[Floats],
        got: Mapping[int, Floats],
        tie: float,
        labels: Sequence[Sequence[float]] | None = None,
    ) -> Agreement:
        """`got` holds some (or all) of the lists `want` scores, by index; with the lists'
        `labels`, the NDCG@10 each scoring loses against the reference is measured too."""
        if not got:
            raise ValueError("no scored list to compare")
        pairs = [(np.asarray(want[i]), np.asarray(g)) for i, g in sorted(got.items())]
        if any(w.shape != g.shape for w, g in pairs):
            raise ValueError("a scored list has another length than its reference")
        diffs = np.concatenate([np.abs(w - g) for w, g in pairs])
        taus = [kendall_tau(w, g) for w, g in pairs]
        clear_taus = [kendall_tau_clear(w, g) for w, g in pairs]
        drops: list[float] = []
        if labels is not None:
            for (i, _), (w, g) in zip(sorted(got.items()), pairs, strict=True):
                drop = ndcg_drop(w, g, labels[i])
                if drop is not None:
                    drops.append(drop)
        return cls(
            max_abs_diff=float(diffs.max()) if len(diffs) else 0.0,
            mean_abs_diff=float(diffs.mean()) if len(diffs) else 0.0,
            min_tau=min(taus),
            mean_tau=float(np.mean(taus)),
            min_top10=min(top_overlap(w, g) for w, g in pairs),
            ranking_identical=all(_same_order(w, g, tie) for w, g in pairs),
            lists=len(pairs),
            min_clear_tau=min(clear_taus),
            mean_clear_tau=float(np.mean(clear_taus)),
            max_ndcg_drop=max(drops, default=0.0),
            mean_ndcg_drop=float(np.mean(drops)) if drops else 0.0,
        )

    @classmethod
    def worst(cls, *runs: Agreement) -> Agreement:
        """The per-field worst of several runs (e.g. per list and batched, as served)."""
        return cls(
            max_abs_diff=max(r.max_abs_diff for r in runs),
            mean_abs_diff=max(r.mean_abs_diff for r in runs),
            min_tau=min(r.min_tau for r in runs),
            mean_tau=min(r.mean_tau for r in runs),
            min_top10=min(r.min_top10 for r in runs),
            ranking_identical=all(r.ranking_identical for r in runs),
            lists=max(r.lists for r in runs),
            min_clear_tau=min(r.min_clear_tau for r in runs),
            mean_clear_tau=min(r.mean_clear_tau for r in runs),
            max_ndcg_drop=max(r.max_ndcg_drop for r in runs),
            mean_ndcg_drop=max(r.mean_ndcg_drop for r in runs),
        )

    def passes_fp32(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance and self.ranking_identical

    def passes_ranking(self, gate: RankingGate | None = None) -> bool:
        return (gate or RANKING_GATE).passes(self)

    def summary(self) -> str:
        """The figures the ranking gate reads, in one line."""
        return (
            f"mean clear Kendall tau {self.mean_clear_tau:.4f}, min top-10 overlap "
            f"{self.min_top10:.2f}, NDCG@10 drop max {self.max_ndcg_drop:.4f} / mean "
            f"{self.mean_ndcg_drop:.4f} over {self.lists} lists"
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 7) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RankingGate:
    """Bounds a reduced-precision scoring must keep against its reference (docs/models.md)."""

    # Mean, not min: on the 2- and 4-item edge lists one flip moves tau by 0.5-1.
    min_mean_clear_tau: float = 0.85
    min_top10: float = 0.8
    max_ndcg_drop: float = 0.05
    max_mean_ndcg_drop: float = 0.01

    def failures(self, a: Agreement) -> list[str]:
        """One line per bound `a` breaks; empty when it passes."""
        out = []
        if a.mean_clear_tau < self.min_mean_clear_tau:
            out.append(
                f"mean clear Kendall tau {a.mean_clear_tau:.4f} < {self.min_mean_clear_tau}"
            )
        if a.min_top10 < self.min_top10:
            out.append(f"min top-10 overlap {a.min_top10:.2f} < {self.min_top10}")
        if a.max_ndcg_drop > self.max_ndcg_drop:
            out.append(f"max NDCG@10 drop {a.max_ndcg_drop:.4f} > {self.max_ndcg_drop}")
        if a.mean_ndcg_drop > self.max_mean_ndcg_drop:
            out.append(f"mean NDCG@10 drop {a.mean_ndcg_drop:.4f} > {self.max_mean_ndcg_drop}")
        return out

    def passes(self, a: Agreement) -> bool:
        return not self.failures(a)


RANKING_GATE = RankingGate()

__all__ = [
    "RANKING_GATE",
    "TIE_FRACTION",
    "TOP_K",
    "Agreement",
    "RankingGate",
    "kendall_tau",
    "kendall_tau_clear",
    "ndcg_drop",
    "top_overlap",
]
