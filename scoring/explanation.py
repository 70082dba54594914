"""Why a hybrid model gave each candidate its score: exact, additive parts.

The hybrid graph (scoring/hybrid.py) scores a candidate as
    score = sum_f contributions[f] + deep
where contributions[f] is the wide (linear) part's exact term of behaviour feature f, and
`deep` is everything else (text embeddings, attention over the history, the deep tower over
the features, the biases) reported as one term: the parts add up to the score exactly,
which gradient x input attributions do not. `attention` says which history texts the model
looked at for each candidate.

API:
    Explanation(names, contributions [C, F], deep [C], attention [C, H], history)
        .score(c) -> float        contributions[c].sum() + deep[c]
        .top(c, k=5) -> [(name, contribution)]   the largest |contribution| first
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Explanation:
    names: tuple[str, ...]  # behaviour feature names (the model's BehaviourSpec.names)
    contributions: npt.NDArray[np.float32]  # [C, F] wide part, exact per feature
    deep: npt.NDArray[np.float32]  # [C] text + deep tower + biases, one term
    attention: npt.NDArray[np.float32]  # [C, H] over `history` (zeros past its length)
    history: Sequence[str]  # the history texts attended, newest first

    def score(self, candidate: int) -> float:
        return float(self.contributions[candidate].astype(np.float64).sum()
                     + float(self.deep[candidate]))

    def top(self, candidate: int, k: int = 5) -> list[tuple[str, float]]:
        row = self.contributions[candidate]
        order = np.argsort(-np.abs(row), kind="stable")[:k]
        return [(self.names[i], float(row[i])) for i in order]


__all__ = ["Explanation"]
