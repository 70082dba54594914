"""Fine-tuning the hybrid's text encoder end to end with its head, after the head converged.

Two budgets (HybridConfig.finetune_layers):
  "top"  the encoder's top layer over the cached states of the layers below
         (scoring/training/hybrid_data.TopLayer): what a 2-core CPU affords, a few dozen steps;
  "all"  every layer, texts through the whole encoder on `device` (a GPU):
         scripts/train_hybrid_gpu.py.
Each step takes `finetune_lists` training lists, embeds their unique texts with gradients,
and trains encoder (at `finetune_lr`) and head (at a tenth of the head's rate) on the same
graded listwise loss. Afterwards every text is re-embedded with the tuned encoder and
validation NDCG@10 decides: the tuned encoder and head are kept only when they beat the
frozen-encoder model; the report says which happened and keeps the frozen model (`frozen`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from scoring.base import TOKENIZER_FILE
from scoring.features import FeatureSpec, Featurizer
from scoring.training.hybrid_data import TextTable, TopLayer
from scoring.training.hybrid_fit import HybridFit, Packed, validation_ndcg
from scoring.training.layout import encode
from scoring.training.loop import listnet_loss
from scoring.training.models import base_model_path

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[int]], torch.Tensor]  # table rows -> [n, D] with gradients


def _embed_all(embed: Embed, n: int, dim: int, step: int = 256) -> npt.NDArray[np.float32]:
    out = np.zeros((n, dim), np.float32)
    with torch.no_grad():
        for start in range(0, n, step):
            rows = list(range(start, min(n, start + step)))
            out[start : start + len(rows)] = embed(rows).float().cpu().numpy()
    return out


def finetune_encoder(fit: HybridFit, packed: Packed, train: npt.NDArray[np.intp],
                     val: npt.NDArray[np.intp]) -> HybridFit:
    cfg = fit.config
    started = time.perf_counter()
    device = torch.device(cfg.device if cfg.finetune_layers == "all" else "cpu")
    head = copy.deepcopy(fit.model).to(device)
    body: nn.Module
    embed: Embed
    if cfg.finetune_layers == "top":
        top = TopLayer(fit.encoder, fit.table)
        body, embed = top, top
    else:
        encoder = copy.deepcopy(fit.encoder).to(device)
        featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE, FeatureSpec())
        texts = fit.table.texts
        body = encoder

        def embed(rows: Sequence[int]) -> torch.Tensor:
            return encode(encoder, featurizer, [texts[r] for r in rows])

    frozen_val = validation_ndcg(fit.model, packed, torch.from_numpy(fit.table.vectors), val)
    opt = torch.optim.Adam([
        {"params": list(body.parameters()), "lr": cfg.finetune_lr},
        {"params": [p for p in head.parameters() if p.requires_grad], "lr": cfg.lr / 10},
    ])
    rng = np.random.default_rng(cfg.seed + 1)
    dim = fit.table.vectors.shape[1]
    losses = []
    for step in range(cfg.finetune_steps):
        body.train()
        head.train()
        ids = rng.choice(train, size=min(cfg.finetune_lists, len(train)), replace=False)
        used = np.unique(np.concatenate([
            packed.query[ids], packed.history[ids][packed.history_mask[ids] > 0],
            packed.items[ids][packed.item_mask[ids] > 0]]))
        vectors = torch.zeros(len(fit.table), dim, device=device)
        vectors = vectors.index_put((torch.from_numpy(used).to(device),), embed(used.tolist()))
        feed = packed.batch(ids, vectors)
        scores = head(**feed)[0]
        labels = torch.from_numpy(packed.labels[ids]).to(device)
        loss = listnet_loss(scores, labels, feed["item_mask"])
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(list(body.parameters()) + list(head.parameters()), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0:
            log.info("encoder fine-tune (%s) step %d/%d: loss %.4f", cfg.finetune_layers, step,
                     cfg.finetune_steps, float(np.mean(losses[-25:])))
    body.eval()
    tuned = _embed_all(embed, len(fit.table), dim)
    head = head.cpu().eval()
    tuned_val = validation_ndcg(head, packed, torch.from_numpy(tuned), val)
    kept = bool(np.isnan(frozen_val) or tuned_val > frozen_val)
    fit.report["finetune"] = {
        "layers": cfg.finetune_layers, "steps": cfg.finetune_steps,
        "lists_per_step": cfg.finetune_lists, "lr": cfg.finetune_lr, "device": str(device),
        "seconds": round(time.perf_counter() - started, 1),
        "validation_ndcg_frozen": round(frozen_val, 5),
        "validation_ndcg_tuned": round(tuned_val, 5), "kept": kept,
        "final_loss": round(float(np.mean(losses[-25:])), 5) if losses else None,
    }
    log.info("encoder fine-tune: validation %.4f (frozen %.4f): %s", tuned_val, frozen_val,
             "kept" if kept else "discarded")
    if not kept:
        return fit
    encoder_out = body.install(fit.encoder) if isinstance(body, TopLayer) \
        else copy.deepcopy(fit.encoder).cpu()
    if not isinstance(body, TopLayer):
        encoder_out.load_state_dict({k: v.cpu() for k, v in body.state_dict().items()})
    table = TextTable(fit.table.texts, tuned, fit.table.states, fit.table.offsets)
    return HybridFit(head, encoder_out.eval(), table, cfg, fit.report, frozen=fit)


__all__ = ["finetune_encoder"]
