"""Torch eager scorers with the serving `Scorer` contract: the benchmark's baseline.

Same models (weights from a version folder), same features (scoring.features), same caching
policy as the ONNX Runtime scorers, so a benchmark compares runtimes and not shortcuts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from scoring.base import (
    TOKENIZER_FILE,
    ItemText,
    ScoreRequest,
    ScoreResult,
    VariantBasis,
    VariantDecision,
    load_verified,
)
from scoring.features import FeatureSpec, Featurizer
from scoring.training.data import TrainingList
from scoring.training.fit import load_cross, load_embed
from scoring.training.layout import Layout, encode

MAX_PAIRS = 64
TORCH_VARIANT = VariantDecision(
    "fp32", VariantBasis.ONLY, "torch eager in fp32: the benchmark's baseline"
)


def _featurizer(version_dir: Path) -> Featurizer:
    manifest = load_verified(version_dir)
    return Featurizer.from_file(version_dir / TOKENIZER_FILE,
                                FeatureSpec.from_dict(manifest.features))


def _as_list(req: ScoreRequest) -> TrainingList:
    return TrainingList(req.query, tuple(req.history), tuple(req.candidates),
                        tuple(0.0 for _ in req.candidates))


class TorchCross:
    name = "cross"
    caches_items = False
    variant_decision = TORCH_VARIANT

    def __init__(self, version_dir: Path, device: str = "cpu") -> None:
        self.version = load_verified(version_dir).version + "+torch"
        self.device = torch.device(device)
        self.provider = f"torch-eager-{self.device.type}"
        self.model = load_cross(version_dir).eval().to(self.device)
        self.featurizer = _featurizer(version_dir)

    def warm_items(self, items: Sequence[ItemText]) -> int:
        return 0

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        triples = [(r.query, r.history, text) for r in requests for _, text in r.candidates]
        # Like the ORT scorer: sort by length, chunk, so padding is comparable.
        order = sorted(range(len(triples)), key=lambda i: len(self.featurizer.ids(triples[i][2])))
        out = np.zeros(len(triples), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), MAX_PAIRS):
                idx = order[start : start + MAX_PAIRS]
                pb = self.featurizer.pair_batch([triples[i] for i in idx])
                feed = (pb.input_ids, pb.attention_mask, pb.token_type_ids)
                logits = self.model(*(torch.from_numpy(a).to(self.device) for a in feed))
                out[idx] = logits.float().cpu().numpy()
        rows, k = [], 0
        for r in requests:
            rows.append(out[k : k + len(r.candidates)].tolist())
            k += len(r.candidates)
        return ScoreResult(rows)


class TorchEmbed:
    name = "embed"
    caches_items = True
    variant_decision = TORCH_VARIANT

    def __init__(self, version_dir: Path, device: str = "cpu") -> None:
        self.version = load_verified(version_dir).version + "+torch"
        self.device = torch.device(device)
        self.provider = f"torch-eager-{self.device.type}"
        encoder, head = load_embed(version_dir)
        self.encoder, self.head = encoder.eval().to(self.device), head.eval().to(self.device)
        self.featurizer = _featurizer(version_dir)
        self.cache: dict[str, torch.Tensor] = {}

    def warm_items(self, items: Sequence[ItemText]) -> int:
        texts = [t for _, t in items if t and t not in self.cache]
        with torch.inference_mode():
            self._encode(texts)
        return len(texts)

    def _encode(self, texts: list[str]) -> None:
        if texts:
            self.cache.update(zip(texts, encode(self.encoder, self.featurizer, texts),
                                  strict=True))

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        lists = [_as_list(r) for r in requests]
        with torch.inference_mode():
            lay = Layout.of(lists, self.featurizer.spec)
            self._encode(list(dict.fromkeys(t for t in lay.texts if t not in self.cache)))
            table = torch.stack([self.cache[t] for t in lay.texts])
            scores = self.head(**lay.gather(table)).float().cpu().numpy()
        return ScoreResult([scores[i, : len(r.candidates)].astype(np.float64).tolist()
                            for i, r in enumerate(requests)])


class TorchCascade:
    name = "cascade"
    caches_items = True
    variant_decision = TORCH_VARIANT

    def __init__(self, version_dir: Path, device: str = "cpu", k: int | None = None) -> None:
        manifest = load_verified(version_dir)
        self.version = manifest.version + "+torch"
        self.embed = TorchEmbed(version_dir / manifest.components["embed"], device)
        self.cross = TorchCross(version_dir / manifest.components["cross"], device)
        self.provider = self.embed.provider
        self.k = int(manifest.features.get("cascade_k", 10)) if k is None else k

    def warm_items(self, items: Sequence[ItemText]) -> int:
        return self.embed.warm_items(items)

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        first = self.embed.score(requests).scores
        tops = [sorted(range(len(s)), key=lambda i: -s[i])[: self.k] for s in first]
        sub = [ScoreRequest(r.query, r.history, [r.candidates[i] for i in top])
               for r, top in zip(requests, tops, strict=True)]
        second = self.cross.score(sub).scores if self.k else [[] for _ in requests]
        out = []
        for s, top, rescored in zip(first, tops, second, strict=True):
            row = list(s)
            lift = (max(s) - min(rescored, default=0.0) + 1.0) if rescored else 0.0
            for i, score in zip(top, rescored, strict=True):
                row[i] = score + lift  # re-scored ones rank above the rest
            out.append(row)
        return ScoreResult(out)
