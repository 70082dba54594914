"""Ranking quality of scored lists: graded NDCG@k, reciprocal rank, bootstrap intervals.

numpy only, so training (challenger vs champion), the MovieLens evaluation and the export
gates all measure quality the same way. Conventions: gain 2**label - 1; ties keep the
candidates' given order (stable sort), so a scorer that returns constants is "retriever order".

Two bootstraps: `bootstrap` resamples lists; `user_bootstrap` resamples GROUPS of lists (the
users who searched), for data where a few heavy users contribute most lists and lists of one
user are not independent. Their paired forms keep both systems' values of a list together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | npt.NDArray[np.floating]


def ranking(scores: ArrayLike) -> npt.NDArray[np.intp]:
    """Candidate indexes best first; ties keep the given order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def ndcg_at(scores: ArrayLike, labels: ArrayLike, k: int = 10) -> float:
    """Graded NDCG@k of one list; 0.0 when the list has no positive label (nothing to find)."""
    gains = 2.0 ** np.asarray(labels, dtype=np.float64) - 1.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(gains)[::-1][:k]
    best = float((ideal * discounts[: len(ideal)]).sum())
    if best <= 0:
        return 0.0
    got = gains[ranking(scores)][:k]
    return float((got * discounts[: len(got)]).sum()) / best


def reciprocal_rank(scores: ArrayLike, labels: ArrayLike) -> float:
    """1 / rank of the first positive; 0.0 when there is none."""
    hits = np.flatnonzero(np.asarray(labels, dtype=np.float64)[ranking(scores)] > 0)
    return 1.0 / (1 + int(hits[0])) if len(hits) else 0.0


def hit_at(scores: ArrayLike, labels: ArrayLike, k: int = 10) -> float:
    """1.0 if a positive is in the top k."""
    top = np.asarray(labels, dtype=np.float64)[ranking(scores)][:k]
    return float((top > 0).any())


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap percentile interval."""

    mean: float
    low: float
    high: float
    n: int

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": float(self.n)}

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _resample_means(values: Floats, rounds: int, seed: int) -> Floats:
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(rounds, dtype=np.float64)
    # Chunks bound memory for long lists (rounds x n indexes at once can be gigabytes).
    step = max(1, 2_000_000 // max(n, 1))
    for start in range(0, rounds, step):
        stop = min(rounds, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def bootstrap(
    values: ArrayLike, *, rounds: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of per-list `values` with a percentile bootstrap interval over lists."""
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0:
        raise ValueError("no values to bootstrap")
    means = _resample_means(arr, rounds, seed)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(arr.mean()), float(low), float(high), len(arr))


def paired_bootstrap(
    a: ArrayLike, b: ArrayLike, *, rounds: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of a - b over the same lists with its interval (resampling lists, pairs kept):
    an interval above 0 says a beats b on these lists."""
    arr_a, arr_b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if arr_a.shape != arr_b.shape:
        raise ValueError(f"paired values differ in shape: {arr_a.shape} vs {arr_b.shape}")
    return bootstrap(arr_a - arr_b, rounds=rounds, confidence=confidence, seed=seed)


def user_bootstrap(
    values: ArrayLike, groups: Sequence[str] | npt.NDArray[np.generic], *, rounds: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> Interval:
    """Mean of per-list `values` (over lists) with a percentile interval from resampling the
    groups (users) with replacement, each drawn group bringing all its lists."""
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0:
        raise ValueError("no values to bootstrap")
    keys = np.asarray(groups)
    if keys.shape != arr.shape:
        raise ValueError(f"{len(keys)} groups for {len(arr)} values")
    _, inverse = np.unique(keys, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    sums = np.bincount(inverse, weights=arr, minlength=n_groups)
    counts = np.bincount(inverse, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=rounds)
    means = (draws @ sums) / (draws @ counts)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(arr.mean()), float(low), float(high), len(arr))


def paired_user_bootstrap(
    a: ArrayLike, b: ArrayLike, groups: Sequence[str] | npt.NDArray[np.generic], *,
    rounds: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> Interval:
    """Mean of a - b over the same lists, resampling groups (users): above 0 says a beats b
    on these users."""
    arr_a, arr_b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if arr_a.shape != arr_b.shape:
        raise ValueError(f"paired values differ in shape: {arr_a.shape} vs {arr_b.shape}")
    return user_bootstrap(arr_a - arr_b, groups, rounds=rounds, confidence=confidence, seed=seed)


def per_list(
    scores: Sequence[ArrayLike], labels: Sequence[ArrayLike], k: int = 10
) -> dict[str, Floats]:
    """Per-list ndcg@k, mrr and hit@k (lists without a positive score 0 on all three)."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score lists for {len(labels)} label lists")
    return {
        f"ndcg@{k}": np.array([ndcg_at(s, y, k) for s, y in zip(scores, labels, strict=True)]),
        "mrr": np.array([reciprocal_rank(s, y) for s, y in zip(scores, labels, strict=True)]),
        f"hit@{k}": np.array([hit_at(s, y, k) for s, y in zip(scores, labels, strict=True)]),
    }
