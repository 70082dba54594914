"""A ranked result's explanations: what the model output for each score, as the contract says.

The scorer returns one scoring.explanation.Explanation per search (arrays over its candidates,
in the order they were scored); the published result lists items best first. Each item gets
the parts of its score with the largest magnitude (features, or the zero-shot model's
query and history parts; the rest of the score as `deep`), and the history entries that
weighed most for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contracts import RankedResult
from contracts.events import Explanation, HistoryWeight
from scoring.explanation import Explanation as ModelExplanation

TOP_PARTS = 5
TOP_HISTORY = 3
MIN_PART = 1e-9  # parts smaller than this say nothing (and would read as noise)


def item_explanation(why: ModelExplanation, candidate: int) -> Explanation:
    """Candidate `candidate`'s explanation (its index in the scored order)."""
    parts = dict(why.top(candidate, TOP_PARTS))
    deep = float(why.deep[candidate])
    if abs(deep) > MIN_PART:
        parts["deep"] = deep
    ordered = sorted(parts.items(), key=lambda kv: -abs(kv[1]))
    history: list[HistoryWeight] = []
    if why.attention.size and candidate < why.attention.shape[0]:
        row = why.attention[candidate][: len(why.history)]
        for position in np.argsort(-np.abs(row), kind="stable")[:TOP_HISTORY]:
            weight = float(row[position])
            if abs(weight) > MIN_PART:
                history.append(HistoryWeight(text=str(why.history[position])[:2048],
                                             position=int(position), weight=weight))
    return Explanation(parts={k: float(v) for k, v in ordered if abs(v) > MIN_PART},
                       history=history)


def explain(result: RankedResult, scored: Sequence[str], why: ModelExplanation) -> RankedResult:
    """`result` with every item's explanation; `scored` are the item_ids in the order the
    scorer saw them (the explanation's rows)."""
    row = {item_id: k for k, item_id in enumerate(scored)}
    items = [
        item.model_copy(update={"explanation": item_explanation(why, row[item.item_id])})
        if item.item_id in row else item
        for item in result.items
    ]
    return result.model_copy(update={"items": items})


__all__ = ["explain", "item_explanation"]
