"""Training the hybrid ranker: graded listwise loss over ALL training lists, a time-based
validation split with early stopping, then (budget permitting) the encoder's top layer
fine-tuned end to end with the head (scoring/training/hybrid_tune.py).

API:
    HybridConfig(...)                   the budget and switches (stated in reports)
    fit_hybrid(lists, n_features=F, config=..., encoder=None, table=None) -> HybridFit
        lists: HybridList (query, history texts, candidate texts, features [C, F], graded
        labels, ts). The learning loop (captured TrainingSamples) and the evaluation both call
        this. `encoder` defaults to base MiniLM; `table` lets several fits share one set of
        text embeddings (it must come from the same encoder).
    HybridFit.model / .encoder / .report;  HybridFit.scores(lists) -> per-list scores (torch,
        eval mode: the evaluation's ablations are scored this way)

Loss: ListNet top-1 with graded targets (scoring/training/loop.listnet_loss: gain 2^label - 1).
Validation: the lists with the latest `ts`, a `validation` share of them; after each epoch
NDCG@10 (scoring.quality) on them; training stops after `patience` epochs without a better
one and the best epoch's weights are kept. Lists without a positive teach nothing: skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from scoring.base import TOKENIZER_FILE
from scoring.features import FeatureSpec, Featurizer
from scoring.quality import ndcg_at
from scoring.training.hybrid_data import HybridList, TextTable
from scoring.training.hybrid_model import HybridRanker
from scoring.training.loop import listnet_loss
from scoring.training.models import base_encoder, base_model_path
from scoring.training.reference import SentenceEmbedder

log = logging.getLogger(__name__)

EpochHook = Callable[[int, float], None]  # (epoch, validation NDCG@10)


@dataclass(frozen=True)
class HybridConfig:
    text: bool = True
    history: bool = True
    features: bool = True
    epochs: int = 8  # at most
    patience: int = 2
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    validation: float = 0.1  # the latest share of lists (by ts)
    history_items: int = 10
    # Encoder fine-tuning after the head converged (0 steps: the encoder stays frozen):
    # "top" trains the top layer over cached lower-layer states (the CPU budget), "all" every
    # layer through the whole encoder on `device` (scripts/train_hybrid_gpu.py).
    finetune_steps: int = 0
    finetune_lists: int = 16
    finetune_lr: float = 2e-5
    finetune_layers: str = "top"
    device: str = "cpu"  # where "all" fine-tunes
    seed: int = 0
    threads: int = 2

    def describe(self) -> str:
        parts = [f"at most {self.epochs} epochs of {self.batch} lists, lr {self.lr:g}, "
                 f"early stopping after {self.patience} epochs without a better validation "
                 f"NDCG@10 (latest {self.validation:.0%} of lists by time)"]
        if self.finetune_steps and self.text:
            layers = "top layer" if self.finetune_layers == "top" else "every layer"
            parts.append(f"then the encoder's {layers} + head for {self.finetune_steps} steps "
                         f"of {self.finetune_lists} lists at lr {self.finetune_lr:g} "
                         "(kept only if validation improves)")
        return "; ".join(parts)


@dataclass
class Packed:
    """Index form of lists over a TextTable (padding: index 0, mask 0)."""

    x: npt.NDArray[np.float32]  # [N, C, F]
    item_mask: npt.NDArray[np.float32]  # [N, C]
    labels: npt.NDArray[np.float32]  # [N, C]
    query: npt.NDArray[np.int64]  # [N]
    history: npt.NDArray[np.int64]  # [N, H]
    history_mask: npt.NDArray[np.float32]  # [N, H]
    items: npt.NDArray[np.int64]  # [N, C]

    @classmethod
    def of(cls, lists: Sequence[HybridList], table: TextTable, h: int) -> Packed:
        n, c = len(lists), max(len(x.items) for x in lists)
        f = lists[0].features.shape[1]
        out = cls(np.zeros((n, c, f), np.float32), np.zeros((n, c), np.float32),
                  np.zeros((n, c), np.float32), np.zeros(n, np.int64), np.zeros((n, h), np.int64),
                  np.zeros((n, h), np.float32), np.zeros((n, c), np.int64))
        for r, lst in enumerate(lists):
            k = len(lst.items)
            out.x[r, :k] = lst.features
            out.item_mask[r, :k] = 1.0
            out.labels[r, :k] = lst.labels
            out.query[r] = table.index[lst.query]
            hist = [t for t in lst.history if t][:h]
            out.history[r, : len(hist)] = table.rows(hist)
            out.history_mask[r, : len(hist)] = 1.0
            out.items[r, :k] = table.rows([t for _, t in lst.items])
        return out

    def batch(self, ids: npt.NDArray[np.intp], vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model inputs of lists `ids`, on the device of `vectors` (a [texts, D] table)."""
        dev = vectors.device

        def t(a: npt.NDArray[np.generic]) -> torch.Tensor:
            return torch.from_numpy(a).to(dev)

        hm, im = t(self.history_mask[ids]), t(self.item_mask[ids])
        return {
            "features": t(self.x[ids]), "item_mask": im,
            "query": vectors[t(self.query[ids])],
            "history": vectors[t(self.history[ids])] * hm.unsqueeze(-1),
            "history_mask": hm,
            "items": vectors[t(self.items[ids])] * im.unsqueeze(-1),
        }


@dataclass
class HybridFit:
    model: HybridRanker
    encoder: SentenceEmbedder
    table: TextTable
    config: HybridConfig
    report: dict[str, Any] = field(default_factory=dict)
    # After a kept fine-tune: the frozen-encoder model it started from (the ablation).
    frozen: HybridFit | None = None

    def scores(self, lists: Sequence[HybridList]) -> list[npt.NDArray[np.float64]]:
        """The model's scores (torch, eval mode) for lists whose texts are in the table."""
        packed = Packed.of(lists, self.table, self.config.history_items)
        raw = predict(self.model, packed, torch.from_numpy(self.table.vectors))
        return [raw[i, : len(x.items)].astype(np.float64) for i, x in enumerate(lists)]


def predict(model: HybridRanker, packed: Packed, vectors: torch.Tensor,
            ids: npt.NDArray[np.intp] | None = None, step: int = 256) -> npt.NDArray[np.float32]:
    ids = np.arange(len(packed.query)) if ids is None else ids
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), step):
            out.append(model(**packed.batch(ids[start : start + step], vectors))[0].numpy())
    return np.concatenate(out) if out else np.zeros((0, packed.x.shape[1]), np.float32)


def validation_ndcg(model: HybridRanker, packed: Packed, vectors: torch.Tensor,
                    ids: npt.NDArray[np.intp]) -> float:
    if not len(ids):
        return float("nan")
    scores = predict(model, packed, vectors, ids)
    sizes = packed.item_mask[ids].sum(1).astype(int)
    return float(np.mean([ndcg_at(scores[i, :k], packed.labels[r, :k], 10)
                          for i, (r, k) in enumerate(zip(ids, sizes, strict=True))]))


def split_by_time(lists: Sequence[HybridList], share: float
                  ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(train, validation) indexes: validation = the latest `share` (none under 20 lists)."""
    order = np.argsort(np.array([x.ts for x in lists], np.int64), kind="stable")
    n_val = int(len(lists) * share) if len(lists) >= 20 else 0
    return np.sort(order[: len(order) - n_val]), np.sort(order[len(order) - n_val :])


def fit_hybrid(
    lists: Sequence[HybridList],
    *,
    n_features: int,
    config: HybridConfig | None = None,
    encoder: SentenceEmbedder | None = None,
    table: TextTable | None = None,
    on_epoch: EpochHook | None = None,
) -> HybridFit:
    cfg = config or HybridConfig()
    started = time.perf_counter()
    data = [x for x in lists if x.positives > 0]
    if not data:
        raise ValueError("no list with a positive label to train on")
    if any(x.features.shape[1] != n_features for x in data):
        raise ValueError(f"every list needs {n_features} feature columns")
    torch.set_num_threads(max(1, min(cfg.threads, torch.get_num_threads())))
    # Adam's moment estimates decay into subnormal floats over epochs, and x86 handles those
    # in microcode: epochs of the full MovieLens run slowed from 37 s to 180 s. Flushing them
    # to zero changes no result that matters (they are below 1e-38); the flag is the CPU's,
    # for the whole process, so it is set back once training is done.
    torch.set_flush_denormal(True)
    try:
        return _fit(data, n_features, cfg, encoder, table, on_epoch, started)
    finally:
        torch.set_flush_denormal(False)


def _fit(data: list[HybridList], n_features: int, cfg: HybridConfig,
         encoder: SentenceEmbedder | None, table: TextTable | None,
         on_epoch: EpochHook | None, started: float) -> HybridFit:
    enc = (encoder if encoder is not None else base_encoder()).eval()
    if table is None:
        featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE,
                                          FeatureSpec(history_items=cfg.history_items))
        texts = [t for x in data for t in (x.query, *x.history, *(i[1] for i in x.items))]
        table = TextTable.embed(texts, enc, featurizer, keep_states=cfg.finetune_steps > 0
                                and cfg.finetune_layers == "top")
    packed = Packed.of(data, table, cfg.history_items)
    train, val = split_by_time(data, cfg.validation)
    real = packed.item_mask[train].astype(bool)
    rows = packed.x[train][real]
    torch.manual_seed(cfg.seed)
    model = HybridRanker(n_features, dim=table.vectors.shape[1], text=cfg.text,
                         history=cfg.history, features=cfg.features, seed=cfg.seed)
    model.set_standardization(rows.mean(0).tolist(), (rows.std(0) + 1e-6).tolist())
    vectors = torch.from_numpy(table.vectors)
    curve, best_epoch = _epochs(model, packed, vectors, train, val, cfg, on_epoch)
    report: dict[str, Any] = {
        "lists": len(data), "train_lists": len(train), "validation_lists": len(val),
        "validation_ndcg": curve, "best_epoch": best_epoch,
        "best_validation_ndcg": max(curve) if curve and not np.isnan(curve[0]) else None,
        "config": asdict(cfg),
    }
    fit = HybridFit(model.eval(), enc, table, cfg, report)
    if cfg.finetune_steps and cfg.text:
        from scoring.training.hybrid_tune import finetune_encoder

        fit = finetune_encoder(fit, packed, train, val)
    fit.report["seconds"] = round(time.perf_counter() - started, 1)
    return fit


def _epochs(model: HybridRanker, packed: Packed, vectors: torch.Tensor,
            train: npt.NDArray[np.intp], val: npt.NDArray[np.intp], cfg: HybridConfig,
            on_epoch: EpochHook | None) -> tuple[list[float], int]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    best, best_state, bad, curve, best_epoch = -1.0, None, 0, [], 0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(train)
        for start in range(0, max(1, len(order) - cfg.batch + 1), cfg.batch):
            ids = order[start : start + cfg.batch]
            feed = packed.batch(ids, vectors)
            scores = model(**feed)[0]
            loss = listnet_loss(scores, torch.from_numpy(packed.labels[ids]), feed["item_mask"])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        score = validation_ndcg(model, packed, vectors, val)
        curve.append(round(score, 5))
        log.info("hybrid seed %d epoch %d: validation NDCG@10 %.4f", cfg.seed, epoch, score)
        if on_epoch is not None:
            on_epoch(epoch, score)
        if np.isnan(score):  # no validation lists: train the stated epochs
            continue
        if score > best:
            best, bad, best_epoch = score, 0, epoch
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return curve, best_epoch


__all__ = ["HybridConfig", "HybridFit", "Packed", "fit_hybrid", "predict", "split_by_time",
           "validation_ndcg"]
