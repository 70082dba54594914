"""LambdaMART (LightGBM's lambdarank) over the hybrid's behaviour feature vector.

What a feature-based learning-to-rank engine (Metarank and the like) does with the same
features: gradient-boosted trees, LambdaRank gradients on graded labels (gain 2^label - 1),
early stopping on NDCG@10 of the time-based validation lists. Inputs: the raw feature matrix
and its within-list standardization (each column minus its list mean, over its list spread),
the relative view the hybrid's graph also computes. LightGBM is the `eval` extra.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": 0.05,
    "num_leaves": 31, "min_data_in_leaf": 100, "feature_fraction": 0.8,
    "bagging_fraction": 0.8, "bagging_freq": 1, "lambdarank_truncation_level": 20,
    "verbose": -1,
}


def list_inputs(x: Matrix) -> Matrix:
    """[C, 2F]: the features and their within-list standardization."""
    mean = x.mean(0, keepdims=True)
    spread = x.std(0, keepdims=True)
    return np.concatenate([x, (x - mean) / (spread + 1e-3)], 1).astype(np.float32)


@dataclass
class LambdaMart:
    booster: Any
    seed: int
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, lists: Sequence[Matrix]) -> list[npt.NDArray[np.float64]]:
        if not lists:
            return []
        sizes = [len(x) for x in lists]
        flat = self.booster.predict(np.concatenate([list_inputs(x) for x in lists]),
                                    num_threads=self.info.get("threads", 1))
        return [np.asarray(p, np.float64) for p in np.split(flat, np.cumsum(sizes)[:-1])]


def _dataset(lgb: Any, xs: Sequence[Matrix], ys: Sequence[Sequence[float]], names: list[str],
             reference: Any = None) -> Any:
    x = np.concatenate([list_inputs(m) for m in xs])
    y = np.concatenate([np.asarray(v, np.float64) for v in ys]).astype(np.int32)
    return lgb.Dataset(x, y, group=[len(m) for m in xs], feature_name=names,
                       reference=reference, free_raw_data=False)


def fit_lambdamart(
    train_x: Sequence[Matrix], train_y: Sequence[Sequence[float]],
    val_x: Sequence[Matrix], val_y: Sequence[Sequence[float]], names: Sequence[str], *,
    seed: int = 0, threads: int = 2, rounds: int = 1000, patience: int = 50,
) -> LambdaMart:
    import lightgbm as lgb  # the eval extra: imported only when the baseline runs

    started = time.perf_counter()
    cols = [*names, *(f"list_{n}" for n in names)]
    train = _dataset(lgb, train_x, train_y, cols)
    valid = _dataset(lgb, val_x, val_y, cols, reference=train)
    params = {**PARAMS, "seed": seed, "num_threads": threads}
    booster = lgb.train(params, train, num_boost_round=rounds, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(patience, verbose=False)])
    gain = booster.feature_importance("gain")
    top = np.argsort(-gain)[:10]
    info = {"seed": seed, "best_iteration": int(booster.best_iteration), "threads": threads,
            "validation_ndcg": round(float(booster.best_score["valid_0"]["ndcg@10"]), 5),
            "seconds": round(time.perf_counter() - started, 1),
            "top_gain": {cols[i]: round(float(gain[i] / gain.sum()), 3) for i in top}}
    log.info("LambdaMART seed %d: %s", seed, info)
    return LambdaMart(booster, seed, info)


__all__ = ["PARAMS", "LambdaMart", "fit_lambdamart", "list_inputs"]
