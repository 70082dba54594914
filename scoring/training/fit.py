"""Listwise fine-tuning of the learned rankers, and their offline evaluation.

Loss: ListNet top-1, the softmax cross-entropy between a list's scores and the target
distribution gain/sum(gain), gain = 2**label - 1. AdamW with linear warmup then linear decay.
Inputs come from `scoring.features.Featurizer`, exactly as serving builds them. A run is
reproducible: same data, seed and budget give the same weights (on the same device).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from scoring.base import load_verified
from scoring.features import FeatureSpec, Featurizer
from scoring.training.data import TrainingList, useful_lists
from scoring.training.models import (
    MASKED,
    CrossRanker,
    EmbedHead,
    base_encoder,
    base_model_path,
    hidden_size,
)
from scoring.training.models import load_bert as _load_bert
from scoring.training.reference import SentenceEmbedder

log = logging.getLogger(__name__)

ScoreFn = Callable[[TrainingList], Sequence[float] | npt.NDArray[np.float32]]
StepHook = Callable[[int, float], None]  # (step, loss) after each optimizer step: progress bars
Floats = npt.NDArray[np.float32]
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class TrainReport:
    steps: int
    seconds: float
    final_loss: float  # mean of the last 10% of steps (one step is noisy)
    loss_curve: list[float] = field(repr=False)
    device: str
    examples_seen: int  # lists
    pairs_seen: int  # scored candidates

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["loss_curve"]
        return data


def listnet_loss(
    scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over lists of the ListNet top-1 loss; `mask` (1 = real candidate) hides padding."""
    gains = torch.pow(2.0, labels) - 1.0
    if mask is not None:
        gains = gains * mask
        scores = scores + (1.0 - mask) * MASKED
    target = gains / gains.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(target * torch.log_softmax(scores, dim=-1)).sum(-1).mean()


def evaluate(score_fn: ScoreFn, lists: Sequence[TrainingList], k: int = 10) -> dict[str, float]:
    """Mean graded NDCG@k (gain 2**label - 1) and MRR of the first positive, over lists with a
    positive. Ties keep the candidates' order."""
    ndcgs: list[float] = []
    rrs: list[float] = []
    for lst in lists:
        labels = np.asarray(lst.labels, dtype=np.float64)
        if not (labels > 0).any():
            continue
        scores = np.asarray(score_fn(lst), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        gains = 2.0**labels - 1.0
        discounts = 1.0 / np.log2(np.arange(2, min(k, len(labels)) + 2))
        dcg = float((gains[order[:k]] * discounts).sum())
        ideal = float((np.sort(gains)[::-1][:k] * discounts).sum())
        ndcgs.append(dcg / ideal)
        rrs.append(1.0 / (1 + int(np.flatnonzero(labels[order] > 0)[0])))
    if not ndcgs:
        raise ValueError("no list with a positive label to evaluate on")
    return {f"ndcg@{k}": float(np.mean(ndcgs)), "mrr": float(np.mean(rrs))}


# --- inputs shared by training, evaluation and export parity ------------------------------


def history_texts(lst: TrainingList, spec: FeatureSpec) -> list[str]:
    """The history entries the embed head sees: non-empty, newest first, at most H."""
    return [t for t in lst.history if t][: spec.history_items]


@dataclass(frozen=True)
class Layout:
    """Index form of a batch of lists over a table of unique texts (padding: index 0, mask 0)."""

    texts: list[str]
    query: npt.NDArray[np.int64]  # [B]
    history: npt.NDArray[np.int64]  # [B, H]
    history_mask: Floats  # [B, H]
    items: npt.NDArray[np.int64]  # [B, C]
    item_mask: Floats  # [B, C]
    labels: Floats  # [B, C]

    @classmethod
    def of(
        cls, lists: Sequence[TrainingList], spec: FeatureSpec, index: dict[str, int] | None = None
    ) -> Layout:
        index = {} if index is None else index
        texts = [""] * len(index)
        for text, i in index.items():
            texts[i] = text

        def at(text: str) -> int:
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
            return index[text]

        b, c = len(lists), max(len(lst.items) for lst in lists)
        h = spec.history_items
        lay = cls(
            texts,
            np.zeros(b, np.int64),
            np.zeros((b, h), np.int64),
            np.zeros((b, h), np.float32),
            np.zeros((b, c), np.int64),
            np.zeros((b, c), np.float32),
            np.zeros((b, c), np.float32),
        )
        for r, lst in enumerate(lists):
            lay.query[r] = at(lst.query)
            for j, text in enumerate(history_texts(lst, spec)):
                lay.history[r, j], lay.history_mask[r, j] = at(text), 1.0
            for j, (_, text) in enumerate(lst.items):
                lay.items[r, j], lay.item_mask[r, j] = at(text), 1.0
            lay.labels[r, : len(lst.labels)] = lst.labels
        return lay

    def gather(self, table: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head inputs (zero-padded) from a [len(texts), D] embedding table."""
        dev = table.device
        hm = torch.from_numpy(self.history_mask).to(dev)
        im = torch.from_numpy(self.item_mask).to(dev)
        return {
            "query": table[torch.from_numpy(self.query).to(dev)],
            "history": table[torch.from_numpy(self.history).to(dev)] * hm.unsqueeze(-1),
            "history_mask": hm,
            "items": table[torch.from_numpy(self.items).to(dev)] * im.unsqueeze(-1),
        }


def encode(
    encoder: SentenceEmbedder, featurizer: Featurizer, texts: Sequence[str], batch: int = 64
) -> torch.Tensor:
    """Embeddings of `texts` (with grad when the encoder trains); similar lengths batched."""
    dev = next(encoder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(featurizer.ids(texts[i])))
    parts: list[torch.Tensor] = []
    for start in range(0, len(order), batch):
        ids, mask = featurizer.texts([texts[i] for i in order[start : start + batch]])
        parts.append(encoder(torch.from_numpy(ids).to(dev), torch.from_numpy(mask).to(dev)))
    out = torch.cat(parts) if parts else torch.zeros(0, 1)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return out[inverse.to(out.device)]


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


# --- loading a starting point -------------------------------------------------------------


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
    head = EmbedHead.from_state_dict(torch.load(Path(init) / "head.pt", weights_only=True))
    return encoder, head


# --- the loops ------------------------------------------------------------------------------


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    was = torch.are_deterministic_algorithms_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # dropout draws from the global generator
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def _batches(n: int, size: int, seed: int) -> Iterator[list[int]]:
    """Endless shuffled epochs of list indices."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - size + 1 if n >= size else 1, size):
            yield order[start : start + size]


def _optimizer(
    groups: list[dict[str, Any]], steps: int, warmup: int | None, weight_decay: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    warm = max(1, steps // 10 if warmup is None else warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _run(
    step_loss: Callable[[list[TrainingList]], tuple[torch.Tensor, int]],
    params: list[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR,
    lists: list[TrainingList],
    *,
    steps: int,
    per_step: int,
    seed: int,
    device: str,
    progress: bool,
    on_step: StepHook | None = None,
) -> TrainReport:
    started = time.perf_counter()
    curve: list[float] = []
    seen = pairs = 0
    every = max(1, steps // 10)
    for step, idx in zip(range(steps), _batches(len(lists), per_step, seed), strict=False):
        batch = [lists[i] for i in idx]
        loss, n_pairs = step_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
        seen, pairs = seen + len(batch), pairs + n_pairs
        if on_step is not None:
            on_step(step, curve[-1])
        if progress and (step + 1) % every == 0:
            log.info(
                "step %d/%d loss %.4f lr %.2e", step + 1, steps, curve[-1], sched.get_last_lr()[0]
            )
    tail = curve[-max(1, steps // 10) :]
    return TrainReport(
        steps=steps,
        seconds=round(time.perf_counter() - started, 2),
        final_loss=float(np.mean(tail)) if tail else float("nan"),
        loss_curve=curve,
        device=device,
        examples_seen=seen,
        pairs_seen=pairs,
    )


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
    featurizer = Featurizer.from_file(folder / TOKENIZER, spec)
    with _deterministic(seed):
        model = load_cross(init, seed=seed).to(device).train()
        head = list(model.score.parameters())
        body = [p for n, p in model.named_parameters() if not n.startswith("score.")]
        opt, sched = _optimizer(
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

        report = _run(
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
    featurizer = Featurizer.from_file(folder / TOKENIZER, spec)
    with _deterministic(seed):
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
        opt, sched = _optimizer(groups, steps, warmup, weight_decay)

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
        report = _run(
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


__all__ = [
    "Layout",
    "ScoreFn",
    "StepHook",
    "TrainReport",
    "cross_scorer",
    "embed_scorer",
    "encode",
    "evaluate",
    "history_texts",
    "listnet_loss",
    "load_cross",
    "load_embed",
    "train_cross",
    "train_embed",
]
