"""Listwise fine-tuning of the learned rankers from a served version or the base model.

The loop itself (ListNet loss, AdamW schedule, reproducible steps) is scoring/training/loop.py;
inputs come from `scoring.features.Featurizer`, exactly as serving builds them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from scoring.base import HEAD_STATE_FILE, TOKENIZER_FILE, load_verified
from scoring.features import FeatureSpec, Featurizer
from scoring.training.data import TrainingList, useful_lists
from scoring.training.layout import Layout, encode
from scoring.training.loop import (
    StepHook,
    TrainReport,
    deterministic,
    listnet_loss,
    optimizer,
    run_steps,
)
from scoring.training.models import (
    CrossRanker,
    EmbedHead,
    base_encoder,
    base_model_path,
    hidden_size,
)
from scoring.training.models import load_bert as _load_bert
from scoring.training.reference import SentenceEmbedder

log = logging.getLogger(__name__)



def _start(init: Path | None, kind: str, spec: FeatureSpec | None) -> tuple[Path, FeatureSpec]:
    """Folder holding the tokenizer and the spec to train with (init's unless given)."""
    if init is None:
        return base_model_path(), spec or FeatureSpec()
    manifest = load_verified(Path(init))
    if manifest.kind != kind:
        raise ValueError(f"{init}: a {manifest.kind!r} model cannot initialise {kind!r}")
    recorded = FeatureSpec.from_dict(manifest.features)
    if spec is not None and spec != recorded:
        log.warning("training with %s although %s was trained with %s", spec, init, recorded)
    return Path(init), spec or recorded


def load_cross(init: Path | None, *, seed: int = 0) -> CrossRanker:
    """Base MiniLM with a fresh seeded head, or the weights saved in a cross version."""
    model = CrossRanker(_load_bert(), seed=seed)
    if init is not None:
        model.load_state_dict(torch.load(Path(init) / "cross.pt", weights_only=True))
    return model


def load_embed(init: Path | None, *, seed: int = 0) -> tuple[SentenceEmbedder, EmbedHead]:
    encoder = base_encoder()
    if init is None:
        return encoder, EmbedHead(hidden_size(encoder.bert), seed=seed)
    if (Path(init) / "encoder.pt").is_file():
        encoder.load_state_dict(torch.load(Path(init) / "encoder.pt", weights_only=True))
    head = EmbedHead.from_state_dict(torch.load(Path(init) / HEAD_STATE_FILE, weights_only=True))
    return encoder, head


def train_cross(
    lists: Sequence[TrainingList],
    *,
    init: Path | None = None,
    steps: int = 200,
    lists_per_step: int = 2,
    lr: float = 3e-5,
    head_lr: float = 1e-3,
    warmup: int | None = None,
    weight_decay: float = 0.01,
    seed: int = 0,
    device: str = "cpu",
    spec: FeatureSpec | None = None,
    progress: bool = False,
    on_step: StepHook | None = None,
) -> tuple[CrossRanker, TrainReport]:
    """Fine-tune a cross-encoder from `init` (a cross version folder) or from base MiniLM.

    `spec` defaults to the one `init` was trained with (else FeatureSpec()). The fresh linear
    head learns at `head_lr`, the encoder at `lr`. Returns the model in eval mode.
    """
    data = useful_lists(lists)
    if not data:
        raise ValueError("no list with a positive label to train on")
    folder, spec = _start(init, "cross", spec)
    featurizer = Featurizer.from_file(folder / TOKENIZER_FILE, spec)
    with deterministic(seed):
        model = load_cross(init, seed=seed).to(device).train()
        head = list(model.score.parameters())
        body = [p for n, p in model.named_parameters() if not n.startswith("score.")]
        opt, sched = optimizer(
            [{"params": body, "lr": lr}, {"params": head, "lr": head_lr}],
            steps,
            warmup,
            weight_decay,
        )

        def step_loss(batch: list[TrainingList]) -> tuple[torch.Tensor, int]:
            pb = featurizer.pair_batch([(x.query, x.history, t) for x in batch for t in x.texts])
            feed = (pb.input_ids, pb.attention_mask, pb.token_type_ids)
            logits = model(*(torch.from_numpy(a).to(device) for a in feed))
            sizes = [len(x.items) for x in batch]
            scores = torch.nn.utils.rnn.pad_sequence(list(logits.split(sizes)), batch_first=True)
            lay_labels = torch.zeros_like(scores)
            mask = torch.zeros_like(scores)
            for r, x in enumerate(batch):
                lay_labels[r, : sizes[r]] = torch.tensor(x.labels)
                mask[r, : sizes[r]] = 1.0
            return listnet_loss(scores, lay_labels, mask), len(pb)

        report = run_steps(
            step_loss,
            [*body, *head],
            opt,
            sched,
            data,
            steps=steps,
            per_step=lists_per_step,
            seed=seed,
            device=device,
            progress=progress,
            on_step=on_step,
        )
    return model.eval(), report


def train_embed(
    lists: Sequence[TrainingList],
    *,
    init: Path | None = None,
    steps: int = 500,
    lists_per_step: int = 16,
    lr: float = 1e-3,
    encoder_lr: float = 2e-5,
    warmup: int | None = None,
    weight_decay: float = 0.01,
    seed: int = 0,
    device: str = "cpu",
    spec: FeatureSpec | None = None,
    train_encoder: bool = False,
    progress: bool = False,
    on_step: StepHook | None = None,
) -> tuple[SentenceEmbedder, EmbedHead, TrainReport]:
    """Train the embed head (at `lr`), and the text encoder too (at `encoder_lr`) if asked.

    With a frozen encoder every text is embedded once up front, so a step costs only the head.
    Returns both modules in eval mode.
    """
    data = useful_lists(lists)
    if not data:
        raise ValueError("no list with a positive label to train on")
    folder, spec = _start(init, "embed", spec)
    featurizer = Featurizer.from_file(folder / TOKENIZER_FILE, spec)
    with deterministic(seed):
        encoder, head = load_embed(init, seed=seed)
        encoder, head = encoder.to(device), head.to(device).train()
        groups: list[dict[str, Any]] = [{"params": list(head.parameters()), "lr": lr}]
        index: dict[str, int] = {}
        if train_encoder:
            encoder.train()
            groups.append({"params": list(encoder.parameters()), "lr": encoder_lr})
        else:
            encoder.eval().requires_grad_(False)
            texts = Layout.of(data, spec, index).texts
            with torch.no_grad():
                table = encode(encoder, featurizer, texts)
        opt, sched = optimizer(groups, steps, warmup, weight_decay)

        def step_loss(batch: list[TrainingList]) -> tuple[torch.Tensor, int]:
            if train_encoder:
                lay = Layout.of(batch, spec)
                step_table = encode(encoder, featurizer, lay.texts)
            else:
                lay, step_table = Layout.of(batch, spec, index), table
            scores = head(**lay.gather(step_table))
            labels = torch.from_numpy(lay.labels).to(device)
            mask = torch.from_numpy(lay.item_mask).to(device)
            return listnet_loss(scores, labels, mask), int(lay.item_mask.sum())

        params = [p for g in groups for p in g["params"]]
        report = run_steps(
            step_loss,
            params,
            opt,
            sched,
            data,
            steps=steps,
            per_step=lists_per_step,
            seed=seed,
            device=device,
            progress=progress,
            on_step=on_step,
        )
    encoder.requires_grad_(True)
    return encoder.eval(), head.eval(), report


__all__ = ["load_cross", "load_embed", "train_cross", "train_embed"]
