"""Cascade scorer: the embed model ranks every candidate, the cross-encoder re-ranks the top k.

The cheap model sees all candidates; the expensive one only the k best of each request, all
requests' pairs in one cross call. Final order: the re-scored top k by cross score, then the
rest by embed score (unknown items last). Cross logits and embed scores live on different
scales, so the top k are shifted to sit just above the best of the rest: the returned scores
are finite and sort into exactly that order.

Each component is a full version with its own probe reference, so each decides its variant on
this machine (scoring/variants.py): the embed encoder may serve int8 while the cross-encoder
keeps fp32. A forced variant (STREAMRANK_MODEL_VARIANT) applies to both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scoring.base import (
    ItemText,
    ModelError,
    ScoreRequest,
    ScoreResult,
    VariantDecision,
    load_verified,
)
from scoring.cross import CrossScorer, Triple
from scoring.embed import EmbedScorer
from scoring.session import Device
from scoring.variants import combined, shipped_variants

log = logging.getLogger(__name__)

KIND = "cascade"
DEFAULT_K = 10
# Gap between the lowest re-scored candidate and the best of the rest.
MARGIN = 1.0


class CascadeScorer:
    """Scores with a `cascade` version folder holding `embed/` and `cross/` versions."""

    name = "cascade"
    caches_items = True  # the embed component's item embeddings

    def __init__(
        self,
        model_dir: Path,
        *,
        device: Device = "auto",
        variant: str | None = None,
        threads: int | None = None,
        cascade_k: int | None = None,
        max_pairs: int = 64,
        batch_size: int = 64,
        cache_size: int = 100_000,
        text_cache_size: int = 10_000,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_verified(self.model_dir)
        if self.manifest.kind != KIND:
            raise ModelError(f"{self.model_dir}: kind {self.manifest.kind!r}, expected {KIND!r}")
        self.version: str = self.manifest.version
        k = self.manifest.features.get("cascade_k", DEFAULT_K) if cascade_k is None else cascade_k
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ModelError(f"{self.model_dir}: cascade_k must be an int >= 0, got {k!r}")
        self.cascade_k = k
        # The cascade lists the variants both components ship: a forced one must be among them.
        if variant is not None and variant not in shipped_variants(self.manifest):
            raise ModelError(
                f"{self.version}: variant {variant!r} not shipped "
                f"(shipped: {', '.join(sorted(shipped_variants(self.manifest)))})"
            )
        self.embed = EmbedScorer(
            self._component("embed"),
            device=device,
            variant=variant,
            threads=threads,
            batch_size=batch_size,
            cache_size=cache_size,
            text_cache_size=text_cache_size,
        )
        self.cross = CrossScorer(
            self._component("cross"),
            device=device,
            variant=variant,
            threads=threads,
            max_pairs=max_pairs,
        )
        self.variant_decision: VariantDecision = combined(
            {"embed": self.embed.variant_decision, "cross": self.cross.variant_decision}
        )
        self.provider: str = self.embed.provider
        self._lock = threading.Lock()
        self.rescored = 0
        log.info(
            "cascade %s (%s): embed %s + cross %s, top %d re-scored",
            self.version,
            self.variant,
            self.embed.version,
            self.cross.version,
            self.cascade_k,
        )

    def _component(self, role: str) -> Path:
        sub = self.manifest.components.get(role)
        if not isinstance(sub, str) or not sub:
            raise ModelError(f"{self.model_dir}: manifest names no {role!r} component")
        path = (self.model_dir / sub).resolve()
        if not path.is_relative_to(self.model_dir.resolve()) or path == self.model_dir.resolve():
            raise ModelError(f"{self.model_dir}: component {role!r} must be a sub-folder: {sub!r}")
        return path

    @property
    def variant(self) -> str:
        return self.variant_decision.variant

    def warm_items(self, items: Sequence[ItemText]) -> int:
        """Precompute item embeddings (the cross-encoder has nothing to precompute)."""
        return self.embed.warm_items(items)

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        with self._lock:
            embedded = self.embed.score(requests)
            first, timings = embedded.scores, dict(embedded.timings)
            if self.cascade_k == 0:
                return ScoreResult(first, timings)
            picks = [self._top(req, scores) for req, scores in zip(requests, first, strict=True)]
            triples: list[Triple] = [
                (req.query, req.history, req.candidates[j][1])
                for req, top in zip(requests, picks, strict=True)
                for j in top
            ]
            logits = self.cross.score_pairs(triples, timings)
            self.rescored += len(triples)
        out: list[list[float]] = []
        start = 0
        for scores, top in zip(first, picks, strict=True):
            out.append(_merge(scores, top, logits[start : start + len(top)]))
            start += len(top)
        return ScoreResult(out, timings)

    def _top(self, req: ScoreRequest, scores: list[float]) -> list[int]:
        """Indices of the k best known candidates by embed score (ties: original order)."""
        known = [j for j, (_, text) in enumerate(req.candidates) if text]
        known.sort(key=lambda j: (-scores[j], j))
        return known[: self.cascade_k]


def _merge(first: list[float], top: list[int], cross: npt.NDArray[np.float32]) -> list[float]:
    """Embed scores with the `top` entries replaced by cross scores shifted above the rest."""
    if not top:
        return first
    rescored = np.nan_to_num(np.asarray(cross, dtype=np.float64), nan=-1e6, posinf=1e6, neginf=-1e6)
    chosen = set(top)
    rest = [s for j, s in enumerate(first) if j not in chosen]
    offset = (max(rest) + MARGIN - float(rescored.min())) if rest else 0.0
    out = list(first)
    for j, value in zip(top, rescored, strict=True):
        out[j] = float(value) + offset
    return out
