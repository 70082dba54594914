"""Building the serving scorer by kind: the zero-shot baseline by folder name, learned kinds
from the registry (validated by ModelRegistry.load)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scoring.base import MANIFEST_FILE, ModelError, Scorer
from scoring.encoder import Device
from scoring.kinds import LEARNED_KINDS, ModelKind
from scoring.registry import ModelRegistry, load_zeroshot
from scoring.zeroshot import MODEL_NAME as ZEROSHOT_MODEL

log = logging.getLogger(__name__)


def _build_zeroshot(
    models_dir: Path, device: Device, version: str | None, variant: str | None, options: Any
) -> Scorer:
    model_dir = models_dir / ZEROSHOT_MODEL
    if not (model_dir / MANIFEST_FILE).is_file():
        raise ModelError(
            f"no exported model at {model_dir}; run `streamrank model export` "
            f"(with the same models directory) first"
        )
    if variant not in (None, "fp32"):
        log.warning("zeroshot has only fp32; ignoring variant %s", variant)
    return load_zeroshot(model_dir, device, options)


def _learned(kind: ModelKind) -> Callable[[Path, Device, str | None, str | None, Any], Scorer]:
    def build(
        models_dir: Path, device: Device, version: str | None, variant: str | None, options: Any
    ) -> Scorer:
        registry = ModelRegistry(models_dir)
        if version is not None:
            path = registry.resolve(version)
        else:
            found = registry.latest(kind.manifest_kind)
            if found is None:
                raise ModelError(
                    f"no {kind} model in {models_dir}; run `streamrank model export --kind {kind}` "
                    f"(with the same models directory) first"
                )
            path = found
        scorer = registry.load(path, device=device, variant=variant, **options)
        if scorer.name != kind:
            raise ModelError(
                f"{path}: version {scorer.version} is a {scorer.name} model, not {kind}"
            )
        return scorer

    return build


# Learned kinds are served from the registry; the zero-shot baseline stays by folder name.
_BUILDERS: dict[str, Callable[[Path, Device, str | None, str | None, Any], Scorer]] = {
    ModelKind.ZEROSHOT.value: _build_zeroshot,
    **{kind.value: _learned(kind) for kind in LEARNED_KINDS},
}


def available_scorers() -> list[str]:
    return sorted(_BUILDERS)


def build_scorer(
    name: str,
    models_dir: Path,
    *,
    device: Device = "auto",
    version: str | None = None,
    variant: str | None = None,
    **options: Any,
) -> Scorer:
    """The scorer called `name`, loaded from the exported models under `models_dir`.

    "zeroshot" is models_dir/zeroshot-minilm; "embed", "cross" and "cascade" are `version`
    (a version, folder name or path) if given, else the newest of that kind, validated by
    ModelRegistry.load. `variant` forces fp32/int8/fp16 (default: docs/models.md's choice).
    `options` go to the scorer (threads, max_pairs, cascade_k, cache sizes; for "zeroshot"
    also max_length, batch_size, history_weight, history_decay).
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(available_scorers())}")
    scorer = builder(Path(models_dir), device, version, variant, dict(options))
    log.info("scorer %s ready: version %s on %s, variant %s", scorer.name, scorer.version,
             scorer.provider, scorer.variant_decision.variant)
    return scorer


__all__ = ["available_scorers", "build_scorer"]
