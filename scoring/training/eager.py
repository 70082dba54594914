"""Torch eager scores of one training list, and their offline evaluation.

The reference the export's parity gates compare the ONNX graphs with, and how a challenger is
scored before it is exported (scoring/training/finetune.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch

from scoring.features import Featurizer
from scoring.quality import ndcg_at, reciprocal_rank
from scoring.training.data import TrainingList
from scoring.training.layout import Layout, encode
from scoring.training.models import CrossRanker, EmbedHead
from scoring.training.reference import SentenceEmbedder

ScoreFn = Callable[[TrainingList], Sequence[float] | npt.NDArray[np.float32]]
Floats = npt.NDArray[np.float32]


def cross_scorer(model: CrossRanker, featurizer: Featurizer) -> ScoreFn:
    """Torch eager scores of one list (the model must be in eval mode)."""
    dev = next(model.parameters()).device

    def score(lst: TrainingList) -> Floats:
        pb = featurizer.pairs(lst.query, lst.history, lst.texts)
        feed = (pb.input_ids, pb.attention_mask, pb.token_type_ids)
        with torch.no_grad():
            out = model(*(torch.from_numpy(a).to(dev) for a in feed))
        return np.asarray(out.cpu().numpy(), dtype=np.float32)

    return score


def embed_scorer(
    encoder: SentenceEmbedder,
    head: EmbedHead,
    featurizer: Featurizer,
    cache: dict[str, torch.Tensor] | None = None,
) -> ScoreFn:
    """Torch eager scores of one list; text embeddings are cached across calls (pass the
    same `cache` to scorers sharing a frozen encoder)."""
    cache = {} if cache is None else cache

    def score(lst: TrainingList) -> Floats:
        lay = Layout.of([lst], featurizer.spec)
        missing = [t for t in lay.texts if t not in cache]
        with torch.no_grad():
            if missing:
                cache.update(zip(missing, encode(encoder, featurizer, missing), strict=True))
            out = head(**lay.gather(torch.stack([cache[t] for t in lay.texts])))
        return np.asarray(out[0].cpu().numpy(), dtype=np.float32)

    return score


def evaluate(score_fn: ScoreFn, lists: Sequence[TrainingList], k: int = 10) -> dict[str, float]:
    """Mean graded NDCG@k and MRR (scoring/quality.py) over the lists with a positive label;
    lists without one are skipped (nothing to find). Ties keep the candidates' order."""
    ndcgs: list[float] = []
    rrs: list[float] = []
    for lst in lists:
        if lst.positives == 0:
            continue
        scores = np.asarray(score_fn(lst), dtype=np.float64)
        ndcgs.append(ndcg_at(scores, lst.labels, k))
        rrs.append(reciprocal_rank(scores, lst.labels))
    if not ndcgs:
        raise ValueError("no list with a positive label to evaluate on")
    return {f"ndcg@{k}": float(np.mean(ndcgs)), "mrr": float(np.mean(rrs))}


__all__ = ["ScoreFn", "cross_scorer", "embed_scorer", "evaluate"]
