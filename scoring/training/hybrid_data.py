"""Training lists of the hybrid ranker, and the table of their text embeddings.

API:
    HybridList(query, history, items, features [C, F], labels, ts)   one search as served:
        the texts the model read, the behaviour feature matrix the serving scorer built (or
        the evaluation replay, with the same builder), graded labels (purchase 3 > cart 2 >
        click 1 > skipped 0) and the search's time (the validation split is by time)
    TextTable.embed(texts, encoder, featurizer, keep_states=False) -> TextTable
        unique texts -> L2-normalized embeddings [N, D] with the (possibly fine-tuned) encoder,
        tokenized as serving does; keep_states also keeps each text's hidden states below the
        encoder's top layer (fp16), so the top layer can be fine-tuned without re-running the
        lower ones (TopLayer)
    TopLayer(encoder, table)   the encoder's top layer + pooling over the cached states
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from scoring.features import Featurizer
from scoring.training.models import hidden_size
from scoring.training.reference import SentenceEmbedder

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class HybridList:
    query: str
    history: tuple[str, ...]  # newest first
    items: tuple[tuple[str, str], ...]  # (item_id, text)
    features: Floats  # [C, F], the behaviour spec's columns
    labels: tuple[float, ...]
    ts: int = 0

    def __post_init__(self) -> None:
        c = len(self.items)
        if not c or len(self.labels) != c or self.features.ndim != 2 \
                or self.features.shape[0] != c:
            raise ValueError(f"{c} items, {len(self.labels)} labels, features "
                             f"{self.features.shape}: they must agree")
        if not all(math.isfinite(x) and x >= 0 for x in self.labels):
            raise ValueError("labels must be finite and >= 0")

    @property
    def positives(self) -> int:
        return sum(1 for x in self.labels if x > 0)


def _layers(encoder: SentenceEmbedder) -> nn.ModuleList:
    layers = getattr(getattr(encoder.bert, "encoder"), "layer")  # noqa: B009 (HF attributes)
    assert isinstance(layers, nn.ModuleList)
    return layers


def _pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, p=2.0, dim=1)


class TextTable:
    """Unique texts with their embeddings (row i of `vectors` is texts[i])."""

    def __init__(self, texts: list[str], vectors: Floats,
                 states: npt.NDArray[np.float16] | None = None,
                 offsets: npt.NDArray[np.int64] | None = None) -> None:
        self.texts = texts
        self.index = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors
        self.states = states  # [sum of token counts, D] fp16, below the top layer
        self.offsets = offsets  # [N + 1] into states

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, texts: Sequence[str]) -> npt.NDArray[np.int64]:
        return np.fromiter((self.index[t] for t in texts), np.int64, len(texts))

    @classmethod
    def embed(cls, texts: Sequence[str], encoder: SentenceEmbedder, featurizer: Featurizer,
              *, keep_states: bool = False, batch: int = 64) -> TextTable:
        unique = list(dict.fromkeys(texts))
        lengths = [len(featurizer.ids(t)) for t in unique]
        order = np.argsort(lengths, kind="stable")
        dim = hidden_size(encoder.bert)
        vectors = np.zeros((len(unique), dim), np.float32)
        kept: list[tuple[int, npt.NDArray[np.float16]]] = []
        enc = encoder.eval()
        with torch.no_grad():
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                ids, mask = featurizer.texts([unique[i] for i in idx])
                t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
                out = enc.bert(input_ids=t_ids, attention_mask=t_mask,
                               token_type_ids=torch.zeros_like(t_ids),
                               output_hidden_states=keep_states)
                vectors[idx] = _pool(out.last_hidden_state, t_mask).numpy()
                if keep_states:
                    below = out.hidden_states[-2].to(torch.float16).numpy()
                    for row, i in enumerate(idx):
                        kept.append((int(i), below[row, : int(mask[row].sum())]))
        if not keep_states:
            return cls(unique, vectors)
        kept.sort(key=lambda p: p[0])
        offsets = np.zeros(len(unique) + 1, np.int64)
        offsets[1:] = np.cumsum([len(s) for _, s in kept])
        states = np.concatenate([s for _, s in kept]).astype(np.float16) if kept \
            else np.zeros((0, dim), np.float16)
        return cls(unique, vectors, states, offsets)


class TopLayer(nn.Module):
    """A trainable copy of the encoder's top layer over cached lower-layer states."""

    def __init__(self, encoder: SentenceEmbedder, table: TextTable) -> None:
        super().__init__()
        if table.states is None or table.offsets is None:
            raise ValueError("the text table was embedded without keep_states")
        self.layer = copy.deepcopy(_layers(encoder)[-1])
        self.table = table

    def forward(self, rows: Sequence[int]) -> torch.Tensor:
        """Embeddings [len(rows), D] of table rows, with grad through the top layer."""
        assert self.table.states is not None and self.table.offsets is not None
        off = self.table.offsets
        lengths = [int(off[r + 1] - off[r]) for r in rows]
        width, dim = max(lengths), self.table.states.shape[1]
        hidden = np.zeros((len(rows), width, dim), np.float32)
        mask = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            hidden[i, : lengths[i]] = self.table.states[off[r] : off[r + 1]]
            mask[i, : lengths[i]] = 1
        t_mask = torch.from_numpy(mask)
        out = self.layer(torch.from_numpy(hidden), t_mask[:, None, None, :].bool())
        hidden_out = out[0] if isinstance(out, tuple) else out
        return _pool(hidden_out, t_mask)

    def install(self, encoder: SentenceEmbedder) -> SentenceEmbedder:
        """A copy of `encoder` with this (trained) top layer."""
        tuned = copy.deepcopy(encoder)
        _layers(tuned)[-1].load_state_dict(self.layer.state_dict())
        return tuned


__all__ = ["HybridList", "TextTable", "TopLayer"]
