"""The base (untrained) rankers: exported once per registry, found again afterwards.

cross: base MiniLM + a linear head drawn with seed 0; embed: base encoder + an EmbedHead whose
output layer is zero (ranks like zero-shot); cascade: those two with `cascade_k`; hybrid: base
encoder + zero-shot cosine with a few feature priors (hybrid_model.base_hybrid), no neighbours.
Exports are deterministic: same bytes, same version.
"""

from __future__ import annotations

import logging
from pathlib import Path

from scoring.base import Manifest, ModelError
from scoring.behaviour_spec import BehaviourSpec
from scoring.kinds import ModelKind
from scoring.neighbours import Neighbours
from scoring.training.export_ranker import cascade, cross, embed, hybrid
from scoring.training.hybrid_model import base_hybrid
from scoring.training.models import CrossRanker, EmbedHead, base_encoder, hidden_size

log = logging.getLogger(__name__)


def _find_base(kind: ModelKind, models_dir: Path, cascade_k: int) -> Path | None:
    for path in sorted(models_dir.glob(f"{kind.value}-*")):
        try:
            manifest = Manifest.load(path)
        except ModelError:
            continue
        if manifest.kind != kind or manifest.parent or not manifest.metrics.get("untrained"):
            continue
        if kind is ModelKind.CASCADE and manifest.features.get("cascade_k") != cascade_k:
            continue
        try:
            manifest.verify(path)
            if not _has_probe_reference(path, manifest):
                log.info("re-exporting %s: it predates the stored probe reference", path)
                continue
        except ModelError as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        return path
    return None


def _has_probe_reference(path: Path, manifest: Manifest) -> bool:
    """Whether serving can check this version's variants (a cascade: its components')."""
    if manifest.kind != ModelKind.CASCADE:
        return bool(manifest.probe)
    return all(Manifest.load(path / sub).probe for sub in manifest.components.values())


def ensure_base_ranker(kind: ModelKind | str, models_dir: Path, *, cascade_k: int = 10) -> Path:
    """A verified base (untrained head, parent "") version of `kind` under `models_dir`,
    exported there first if none exists."""
    kind = ModelKind(kind)
    if not kind.learned:
        raise ValueError(f"{kind.value!r} is not a learned ranker kind")
    models_dir = Path(models_dir)
    found = _find_base(kind, models_dir, cascade_k)
    if found is not None:
        return found
    try:
        return _export_base(kind, models_dir, cascade_k)
    except OSError:
        # Another process may have installed the same (deterministic) version meanwhile.
        found = _find_base(kind, models_dir, cascade_k)
        if found is None:
            raise
        return found


def _export_base(kind: ModelKind, models_dir: Path, cascade_k: int) -> Path:
    untrained = {"untrained": True}
    if kind is ModelKind.CROSS:
        manifest = cross.export_cross(
            CrossRanker(seed=0), models_dir=models_dir, metrics=untrained
        )
    elif kind is ModelKind.EMBED:
        encoder = base_encoder()
        head = EmbedHead(hidden_size(encoder.bert), seed=0)
        manifest = embed.export_embed(encoder, head, models_dir=models_dir, metrics=untrained)
    elif kind is ModelKind.HYBRID:
        spec = BehaviourSpec()
        encoder = base_encoder()
        manifest = hybrid.export_hybrid(
            encoder, base_hybrid(spec.names, hidden_size(encoder.bert)), spec,
            Neighbours.empty(spec.neighbours), models_dir=models_dir, metrics=untrained)
    else:
        embed_dir = ensure_base_ranker(ModelKind.EMBED, models_dir)
        cross_dir = ensure_base_ranker(ModelKind.CROSS, models_dir)
        manifest = cascade.export_cascade(
            embed_dir, cross_dir, models_dir=models_dir, k=cascade_k, metrics=untrained
        )
    return models_dir / manifest.version


__all__ = ["ensure_base_ranker"]
