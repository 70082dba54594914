"""Scoring: turns a search and the user's history into one relevance score per candidate.

Serving needs only onnxruntime and tokenizers: models are exported ahead of time by
`scoring.training` (torch), and `build_scorer` never imports it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scoring.base import MANIFEST_FILE, Manifest, ModelError, Scorer, ScoreRequest
from scoring.encoder import Device, OnnxEncoder
from scoring.zeroshot import MODEL_NAME as ZEROSHOT_MODEL
from scoring.zeroshot import TextEncoder, ZeroShotScorer

log = logging.getLogger(__name__)


def _keywords(func: Callable[..., object], *positional: str) -> frozenset[str]:
    return frozenset(inspect.signature(func).parameters) - {"self", *positional}


_ENCODER_OPTIONS = _keywords(OnnxEncoder.__init__, "model_dir", "device")
_ZEROSHOT_OPTIONS = _keywords(ZeroShotScorer.__init__, "encoder")


def _build_zeroshot(models_dir: Path, device: Device, options: dict[str, Any]) -> Scorer:
    model_dir = models_dir / ZEROSHOT_MODEL
    if not (model_dir / MANIFEST_FILE).is_file():
        raise ModelError(
            f"no exported model at {model_dir}; run `streamrank model export` "
            f"(with the same models directory) first"
        )
    unknown = set(options) - _ENCODER_OPTIONS - _ZEROSHOT_OPTIONS
    if unknown:
        allowed = ", ".join(sorted(_ENCODER_OPTIONS | _ZEROSHOT_OPTIONS))
        raise ValueError(f"zeroshot: unknown options {sorted(unknown)}; allowed: {allowed}")
    encoder_opts = {k: v for k, v in options.items() if k in _ENCODER_OPTIONS}
    scorer_opts = {k: v for k, v in options.items() if k not in _ENCODER_OPTIONS}
    encoder = OnnxEncoder(model_dir, device=device, **encoder_opts)
    return ZeroShotScorer(encoder, **scorer_opts)


# Later issues register "embed", "cross" and "cascade" here; the baseline stays by name.
_BUILDERS: dict[str, Callable[[Path, Device, dict[str, Any]], Scorer]] = {
    "zeroshot": _build_zeroshot,
}


def available_scorers() -> list[str]:
    return sorted(_BUILDERS)


def build_scorer(name: str, models_dir: Path, *, device: Device = "auto", **options: Any) -> Scorer:
    """The scorer called `name`, loaded from the exported models under `models_dir`.

    `options` go to the encoder (threads, max_length, batch_size) or to the scorer
    (e.g. history_weight, history_decay, cache_size for "zeroshot").
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(available_scorers())}")
    scorer = builder(Path(models_dir), device, dict(options))
    log.info("scorer %s ready: version %s on %s", scorer.name, scorer.version, scorer.provider)
    return scorer


__all__ = [
    "ZEROSHOT_MODEL",
    "Device",
    "Manifest",
    "ModelError",
    "OnnxEncoder",
    "ScoreRequest",
    "Scorer",
    "TextEncoder",
    "ZeroShotScorer",
    "available_scorers",
    "build_scorer",
]
