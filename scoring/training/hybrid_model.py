"""The hybrid ranker's torch module: behaviour features (wide & deep) + MiniLM text with
attention over the user's history, in one graph that also explains its scores.

Inputs (one batch of B searches, C candidates, H history entries, F features, D = 384):
    features [B, C, F]  raw behaviour features (scoring/behaviour.py), standardized inside the
                        graph with the training set's mean and spread, plus a within-list
                        standardized copy (masked), so the model sees relative values too
    item_mask [B, C]    1 = a real candidate (padding is scored MASKED)
    query [B, D], history [B, H, D], history_mask [B, H], items [B, C, D]   text embeddings
Outputs:
    scores [B, C]; attention [B, C, H] over the history per candidate;
    contributions [B, C, F]: the wide part's exact term per feature (both copies of a feature
    summed onto it); deep [B, C]: everything else (text, attention, the deep tower over the
    features, biases) as one term. scores = contributions.sum(-1) + deep, by construction.

Text part (as the embed kind's EmbedHead): q.c, attention a_j = MLP([Pc, Ph_j, Pc*Ph_j])
softmaxed over the real history, u_c = sum a_j h_j, u_c.c, max_j h_j.c, Pq*Pc, Pu_c*Pc; they
feed the deep tower with the features; `text_scale * q.c` is added as a residual (1 in the
base model, so an untrained hybrid ranks like zero-shot cosine; learned when trained).

Switches (the evaluation's ablations): text=False (no text inputs used), history=False (no
attention), features=False (no wide part, no features in the deep tower).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

MASKED = -1.0e4
CLIP = 10.0
LIST_EPS = 1e-3


class HybridRanker(nn.Module):
    mean: torch.Tensor  # buffers: the training set's feature mean and spread
    scale: torch.Tensor

    def __init__(
        self,
        n_features: int,
        *,
        dim: int = 384,
        text: bool = True,
        history: bool = True,
        features: bool = True,
        attention_dim: int = 64,
        hidden: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not (text or features):
            raise ValueError("a ranker needs text or features")
        self.n_features, self.dim = n_features, dim
        self.use_text, self.use_history, self.use_features = text, history and text, features
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.wide = nn.Linear(2 * n_features, 1)
            self.project = nn.Linear(dim, attention_dim, bias=False)
            self.attention = nn.Sequential(
                nn.Linear(3 * attention_dim, 64), nn.ReLU(), nn.Linear(64, 1))
            deep_in = (2 * n_features if features else 0) + (
                (1 + attention_dim + (2 + attention_dim if self.use_history else 0))
                if text else 0)
            self.deep = nn.Sequential(
                nn.Linear(deep_in, hidden), nn.ReLU(), nn.Dropout(0.1),
                nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, 1))
        self.text_scale = nn.Parameter(torch.tensor(1.0 if text else 0.0),
                                       requires_grad=text)

    def set_standardization(self, mean: Sequence[float], scale: Sequence[float]) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32).clamp_min(1e-6))

    def inputs(self, features: torch.Tensor, item_mask: torch.Tensor) -> torch.Tensor:
        """[B, C, 2F]: standardized features and their masked within-list standardization."""
        m = item_mask.unsqueeze(-1)
        xs = torch.clamp((features - self.mean) / self.scale, -CLIP, CLIP) * m
        n = m.sum(1, keepdim=True).clamp_min(1.0)
        mu = xs.sum(1, keepdim=True) / n
        sd = torch.sqrt((((xs - mu) * m) ** 2).sum(1, keepdim=True) / n)
        return torch.cat([xs, (xs - mu) / (sd + LIST_EPS) * m], -1)

    def forward(
        self,
        features: torch.Tensor,
        item_mask: torch.Tensor,
        query: torch.Tensor,
        history: torch.Tensor,
        history_mask: torch.Tensor,
        items: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b, c, f = features.shape
        x = self.inputs(features, item_mask)
        parts: list[torch.Tensor] = []
        deep_extra = torch.zeros(b, c, dtype=x.dtype, device=x.device)
        if self.use_features:
            parts.append(x)
            w = self.wide.weight[0]
            contributions = (x[..., :f] * w[:f] + x[..., f:] * w[f:]) * item_mask.unsqueeze(-1)
            deep_extra = deep_extra + self.wide.bias[0]
        else:
            contributions = torch.zeros_like(features)
        attention = torch.zeros(b, c, history.shape[1], dtype=x.dtype, device=x.device)
        if self.use_text:
            pc = self.project(items)
            qc = torch.einsum("bd,bcd->bc", query, items)
            parts += [qc.unsqueeze(-1), self.project(query).unsqueeze(1) * pc]
            deep_extra = deep_extra + self.text_scale * qc
            if self.use_history:
                attention, u = self._attend(pc, history, history_mask)
                uc = (u * items).sum(-1)
                hc = torch.einsum("bhd,bcd->bch", history, items)
                hm = history_mask.unsqueeze(1)
                has = (history_mask.sum(-1, keepdim=True) > 0).to(x.dtype)
                mx = (hc + (1.0 - hm) * MASKED).amax(-1) * has
                parts += [uc.unsqueeze(-1), mx.unsqueeze(-1), self.project(u) * pc]
        deep = self.deep(torch.cat(parts, -1)).squeeze(-1) + deep_extra
        scores = contributions.sum(-1) + deep
        scores = scores * item_mask + (1.0 - item_mask) * MASKED
        return scores, attention, contributions, deep * item_mask

    def _attend(self, pc: torch.Tensor, history: torch.Tensor,
                history_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ph = self.project(history)
        a = pc.shape[-1]
        first = self.attention[0]
        assert isinstance(first, nn.Linear)
        wc, wh, wx = first.weight[:, :a], first.weight[:, a:2 * a], first.weight[:, 2 * a:]
        # = attention[0](cat([pc, ph, pc*ph])), split by block so the pc and ph terms are
        # computed once per candidate / history entry rather than once per pair.
        z = ((pc @ wc.T).unsqueeze(2) + (ph @ wh.T).unsqueeze(1)
             + (pc.unsqueeze(2) * ph.unsqueeze(1)) @ wx.T + first.bias)
        logits = self.attention[2](torch.relu(z)).squeeze(-1)  # [B, C, H]
        hm = history_mask.unsqueeze(1)
        weights = torch.softmax(logits + (1.0 - hm) * MASKED, -1) * hm
        return weights, torch.einsum("bch,bhd->bcd", weights, history)

    def config(self) -> dict[str, object]:
        """What `from_state` needs besides the weights."""
        first = self.deep[0]
        assert isinstance(first, nn.Linear)
        return {"n_features": self.n_features, "dim": self.dim, "text": self.use_text,
                "history": self.use_history, "features": self.use_features,
                "attention_dim": self.project.out_features, "hidden": first.out_features}

    @classmethod
    def from_state(cls, config: dict[str, object], state: dict[str, torch.Tensor]
                   ) -> HybridRanker:
        model = cls(**config)  # type: ignore[arg-type]
        model.load_state_dict(state)
        return model


def base_hybrid(names: Sequence[str], dim: int = 384) -> HybridRanker:
    """The untrained hybrid a fresh deployment starts with (docs/models.md): zero-shot cosine
    (text_scale 1, the deep tower's output layer at 0) plus a few fixed priors on raw feature
    values in the wide part: popularity (+0.03 per log-count), the site's order (-0.005 per
    position, read in tens of positions so the input clip at 10 is not reached) and items the
    user already acted on (-0.2); every other weight 0."""
    model = HybridRanker(len(names), dim=dim, seed=0)
    # name: (weight per unit of the standardized input, scale of the raw value)
    priors = {"item_count": (0.03, 1.0), "retr_position": (-0.05, 10.0), "seen": (-0.2, 1.0)}
    scale = [priors.get(n, (0.0, 1.0))[1] for n in names]
    model.set_standardization([0.0] * len(names), scale)
    last = model.deep[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        model.wide.weight.zero_()
        model.wide.bias.zero_()
        for name, (weight, _) in priors.items():
            if name in names:
                model.wide.weight[0, list(names).index(name)] = weight
    return model.eval()


__all__ = ["MASKED", "HybridRanker", "base_hybrid"]
