"""Index form of training lists over a table of unique texts, and text embeddings.

Training, the torch eager scorers and the export's parity runs build the embed head's inputs
the same way serving does (scoring/embed.py): newest-first history of at most H texts,
zero-padded history and candidates with masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from scoring.features import FeatureSpec, Featurizer
from scoring.training.data import TrainingList
from scoring.training.reference import SentenceEmbedder

Floats = npt.NDArray[np.float32]


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


__all__ = ["Layout", "encode", "history_texts"]
