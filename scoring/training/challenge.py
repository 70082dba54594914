"""Champion vs challenger on the held-out lists, and whether the challenger is promoted.

Both models score the same held-out lists; per-list NDCG@10 and MRR come from scoring.quality,
on the plain labels and position-aware: IPS NDCG@10 weighs each positive within its list by
1/propensity of where it was shown (samples.ips_labels) and each list by how many searches it
stands for (samples.list_weight). The
promotion rule (docs/training.md): the paired bootstrap interval of the per-list difference
challenger - champion in the decision metric (IPS NDCG@10 unless told otherwise) must lie
above `min_delta` (0 by default). Pairing matters: both models see the very same lists, so
the list-to-list spread, which dwarfs the models' difference, cancels out.
numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from scoring.quality import Interval, bootstrap, paired_bootstrap, per_list
from scoring.training.samples import CapturedList, ips_labels, list_weight

Floats = npt.NDArray[np.float64]
ListScores = Callable[[Sequence[CapturedList]], list[Sequence[float]]]
Rule = Literal["significant", "always"]
K = 10
METRICS = (f"ndcg@{K}", "mrr")
# The figures reported: name -> (metric, IPS-weighted). MRR has no weighted form here: it
# reads only where the first positive lands, which a per-item weight does not change.
FIGURES: dict[str, tuple[str, bool]] = {
    f"ndcg@{K}": (f"ndcg@{K}", False),
    f"ips_ndcg@{K}": (f"ndcg@{K}", True),
    "mrr": ("mrr", False),
}


@dataclass(frozen=True)
class ModelEval:
    """One model's per-list metrics on the held-out lists, plain and IPS-weighted."""

    version: str
    plain: dict[str, Floats]
    ips: dict[str, Floats]
    rounds: int = 1000
    seed: int = 0

    def values(self, metric: str, *, weighted: bool) -> Floats:
        return (self.ips if weighted else self.plain)[metric]

    def interval(self, metric: str, *, weighted: bool) -> Interval:
        return bootstrap(self.values(metric, weighted=weighted), rounds=self.rounds,
                         seed=self.seed)

    def summary(self) -> dict[str, dict[str, float]]:
        """Every figure of FIGURES as {mean, low, high, n} (95% bootstrap interval)."""
        return {
            name: self.interval(metric, weighted=w).as_dict()
            for name, (metric, w) in FIGURES.items()
        }


def evaluate_scores(
    version: str,
    lists: Sequence[CapturedList],
    scores: Sequence[Sequence[float] | npt.NDArray[np.floating]],
    propensity: Floats,
    *,
    rounds: int = 1000,
    seed: int = 0,
) -> ModelEval:
    """Per-list metrics of `scores` (one row per list, in the lists' item order)."""
    plain = [np.asarray(c.ranked.labels, dtype=np.float64) for c in lists]
    rows = [np.asarray(s, dtype=np.float64) for s in scores]
    ips = per_list(rows, [ips_labels(c, propensity) for c in lists], K)
    # Weighted mean over lists as a plain mean of rescaled values, so the bootstraps of
    # scoring.quality apply (they hold the total weight fixed: a small approximation).
    weights = np.array([list_weight(c, propensity) for c in lists])
    scale = weights / weights.mean() if len(weights) else weights
    return ModelEval(
        version=version,
        plain=per_list(rows, plain, K),
        ips={name: values * scale for name, values in ips.items()},
        rounds=rounds,
        seed=seed,
    )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str  # e.g. "ips_ndcg@10"
    delta: Interval  # challenger - champion, paired over the held-out lists
    deltas: dict[str, dict[str, float]] = field(default_factory=dict)  # every metric's

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "metric": self.metric,
            "delta": self.delta.as_dict(),
            "deltas": self.deltas,
        }


def decide(
    champion: ModelEval,
    challenger: ModelEval,
    *,
    weighted: bool = True,
    rule: Rule = "significant",
    min_delta: float = 0.0,
) -> Decision:
    """Promote when the paired interval of the decision metric's gain lies above `min_delta`
    (rule "significant"), or whatever the figures say (rule "always": a forced rollout, e.g.
    to seed the first learned model; the figures are still recorded)."""
    deltas = {
        name: paired_bootstrap(
            challenger.values(metric, weighted=w), champion.values(metric, weighted=w),
            rounds=champion.rounds, seed=champion.seed,
        ).as_dict()
        for name, (metric, w) in FIGURES.items()
    }
    name = f"ips_ndcg@{K}" if weighted else f"ndcg@{K}"
    d = deltas[name]
    delta = Interval(d["mean"], d["low"], d["high"], int(d["n"]))
    if rule == "always":
        return Decision(True, f"promoted by rule 'always' ({name} gain {delta})", name, delta,
                        deltas)
    if delta.low > min_delta:
        reason = f"{name} gain {delta} lies above {min_delta:g}"
        return Decision(True, reason, name, delta, deltas)
    if delta.high < min_delta:
        reason = f"challenger is worse: {name} gain {delta}"
    else:
        reason = (f"not a clear win: the {name} gain {delta} includes {min_delta:g} "
                  f"({delta.n} held-out lists; more samples narrow it)")
    return Decision(False, reason, name, delta, deltas)


__all__ = ["FIGURES", "METRICS", "Decision", "ModelEval", "Rule", "decide", "evaluate_scores"]
