"""Scoring: turns a search and the user's history into one relevance score per candidate.

Serving needs only onnxruntime and tokenizers: models are exported ahead of time by
`scoring.training` (torch), and `build_scorer` never imports it.

Names are loaded on first use (PEP 562): importing a light module such as `scoring.kinds`
(which the command line needs to build its parser) must not load ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring.base import (
        Manifest,
        ModelError,
        Scorer,
        ScoreRequest,
        ScoreResult,
        VariantBasis,
        VariantDecision,
    )
    from scoring.cascade import CascadeScorer
    from scoring.cross import CrossScorer
    from scoring.embed import EmbedScorer
    from scoring.encoder import Device, OnnxEncoder
    from scoring.hybrid import HybridScorer
    from scoring.kinds import LEARNED_KINDS, ModelKind
    from scoring.loader import available_scorers, build_scorer
    from scoring.registry import ModelRegistry, VersionInfo
    from scoring.zeroshot import MODEL_NAME as ZEROSHOT_MODEL
    from scoring.zeroshot import TextEncoder, ZeroShotScorer

# name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "CascadeScorer": ("scoring.cascade", "CascadeScorer"),
    "CrossScorer": ("scoring.cross", "CrossScorer"),
    "Device": ("scoring.encoder", "Device"),
    "EmbedScorer": ("scoring.embed", "EmbedScorer"),
    "HybridScorer": ("scoring.hybrid", "HybridScorer"),
    "LEARNED_KINDS": ("scoring.kinds", "LEARNED_KINDS"),
    "Manifest": ("scoring.base", "Manifest"),
    "ModelError": ("scoring.base", "ModelError"),
    "ModelKind": ("scoring.kinds", "ModelKind"),
    "ModelRegistry": ("scoring.registry", "ModelRegistry"),
    "OnnxEncoder": ("scoring.encoder", "OnnxEncoder"),
    "ScoreRequest": ("scoring.base", "ScoreRequest"),
    "ScoreResult": ("scoring.base", "ScoreResult"),
    "Scorer": ("scoring.base", "Scorer"),
    "TextEncoder": ("scoring.zeroshot", "TextEncoder"),
    "VariantBasis": ("scoring.base", "VariantBasis"),
    "VariantDecision": ("scoring.base", "VariantDecision"),
    "VersionInfo": ("scoring.registry", "VersionInfo"),
    "ZEROSHOT_MODEL": ("scoring.zeroshot", "MODEL_NAME"),
    "ZeroShotScorer": ("scoring.zeroshot", "ZeroShotScorer"),
    "available_scorers": ("scoring.loader", "available_scorers"),
    "build_scorer": ("scoring.loader", "build_scorer"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'scoring' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "LEARNED_KINDS",
    "ZEROSHOT_MODEL",
    "CascadeScorer",
    "CrossScorer",
    "Device",
    "EmbedScorer",
    "HybridScorer",
    "Manifest",
    "ModelError",
    "ModelKind",
    "ModelRegistry",
    "OnnxEncoder",
    "ScoreRequest",
    "ScoreResult",
    "Scorer",
    "TextEncoder",
    "VariantBasis",
    "VariantDecision",
    "VersionInfo",
    "ZeroShotScorer",
    "available_scorers",
    "build_scorer",
]
