"""The model registry: a folder of versions, and loading one only once it has proved itself.

Each sub-folder of `models_dir` is a version with its manifest.json (docs/models.md). `load`
returns a scorer only after the folder passed every check a serving process can make on its
own: file checksums, a known kind, the graphs' input and output names, the variant decided
on this machine (scoring/variants.py), and a probe run that must give one finite score per
candidate. Whatever fails is a ModelError naming the reason,
so a hot swap can refuse it and keep the old model serving.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoring.base import MANIFEST_FILE, Manifest, ModelError, Scorer, ScoreRequest, sha256_file
from scoring.cascade import CascadeScorer
from scoring.cross import CrossScorer
from scoring.embed import EmbedScorer
from scoring.encoder import OnnxEncoder
from scoring.hybrid import HybridScorer
from scoring.kinds import ModelKind
from scoring.session import Device
from scoring.zeroshot import ZeroShotScorer

log = logging.getLogger(__name__)

# A small fixed search: history, a user without history, and an item the catalog lacks.
PROBE = (
    ScoreRequest(
        query="running shoes",
        history=["trail running shoes", "marathon training", "water bottle"],
        candidates=[
            ("probe-1", "Men's trail running shoes, waterproof"),
            ("probe-2", "Stainless steel chef knife"),
            ("probe-unknown", ""),
            ("probe-3", "Cushioned road running sneakers with breathable mesh"),
        ],
    ),
    ScoreRequest(
        query="gift",
        history=[],
        candidates=[("probe-4", "Scented soy candle gift set"), ("probe-2", "Chef knife")],
    ),
)


@dataclass(frozen=True)
class VersionInfo:
    """What the registry lists about a version, read from its manifest (not verified)."""

    version: str
    kind: str
    path: Path
    created: str = ""
    parent: str = ""
    variants: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)


def _keywords(func: Callable[..., object], *positional: str) -> frozenset[str]:
    return frozenset(inspect.signature(func).parameters) - {"self", *positional}


def _check_options(kind: str, options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"{kind}: unknown options {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


_ENCODER_OPTIONS = _keywords(OnnxEncoder.__init__, "model_dir", "device")
_ZEROSHOT_OPTIONS = _keywords(ZeroShotScorer.__init__, "encoder")


def load_zeroshot(path: Path, device: Device, options: Mapping[str, Any]) -> ZeroShotScorer:
    """A ZeroShotScorer on the sentence encoder at `path`; options go to whichever takes them."""
    _check_options("zeroshot", options, _ENCODER_OPTIONS | _ZEROSHOT_OPTIONS)
    encoder_opts = {k: v for k, v in options.items() if k in _ENCODER_OPTIONS}
    scorer_opts = {k: v for k, v in options.items() if k not in _ENCODER_OPTIONS}
    encoder = OnnxEncoder(path, device=device, **encoder_opts)
    return ZeroShotScorer(encoder, **scorer_opts)


_CLASSES: dict[ModelKind, type[CrossScorer] | type[EmbedScorer] | type[CascadeScorer]] = {
    ModelKind.CROSS: CrossScorer,
    ModelKind.EMBED: EmbedScorer,
    ModelKind.CASCADE: CascadeScorer,
    ModelKind.HYBRID: HybridScorer,  # an EmbedScorer with the behaviour graph
}


def _loader(
    path: Path, manifest_kind: str, device: Device, variant: str | None,
    options: Mapping[str, Any],
) -> Callable[[], Scorer]:
    """A callable building the scorer; options and kind are checked before anything loads."""
    try:
        kind = ModelKind.from_manifest(manifest_kind)
    except ValueError:
        known = ", ".join(k.manifest_kind for k in ModelKind)
        raise ModelError(
            f"{path}: unknown model kind {manifest_kind!r}; known: {known}"
        ) from None
    if kind is ModelKind.ZEROSHOT:
        if variant not in (None, "fp32"):
            log.warning("%s: a sentence encoder has only fp32; ignoring variant %s", path, variant)
        _check_options("zeroshot", options, _ENCODER_OPTIONS | _ZEROSHOT_OPTIONS)
        return lambda: load_zeroshot(path, device, options)
    cls = _CLASSES[kind]
    _check_options(kind, options, _keywords(cls.__init__, "model_dir", "device", "variant"))
    return lambda: cls(path, device=device, variant=variant, **options)


def probe(scorer: Scorer) -> None:
    """Raise ModelError unless `scorer` gives one finite score per candidate of PROBE."""
    try:
        result = scorer.score(PROBE).scores
    except Exception as exc:  # anything a broken graph raises is a refusal
        raise ModelError(f"probe run failed: {type(exc).__name__}: {exc}") from exc
    sizes = [len(req.candidates) for req in PROBE]
    if [len(row) for row in result] != sizes:
        raise ModelError(f"probe run gave {[len(r) for r in result]} scores, expected {sizes}")
    if not all(isinstance(s, float) and math.isfinite(s) for row in result for s in row):
        raise ModelError(f"probe run gave non-finite scores: {result}")


class ModelRegistry:
    """The versions under `models_dir` (one sub-folder each)."""

    def __init__(self, models_dir: Path) -> None:
        self.root = Path(models_dir)

    def versions(self) -> list[VersionInfo]:
        """Every readable version, oldest first (by manifest `created`, then folder name)."""
        found: list[VersionInfo] = []
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.iterdir()):
            # Exports write to hidden temporary siblings first; those are not versions yet.
            if path.name.startswith(".") or not (path / MANIFEST_FILE).is_file():
                continue
            try:
                manifest = Manifest.load(path)
            except ModelError as exc:
                log.warning("registry: skipping %s: %s", path, exc)
                continue
            found.append(
                VersionInfo(
                    version=manifest.version,
                    kind=manifest.kind,
                    path=path,
                    created=manifest.created,
                    parent=manifest.parent,
                    variants=tuple(sorted(manifest.variants)) or ("fp32",),
                    metrics=dict(manifest.metrics),
                )
            )
        found.sort(key=lambda v: (v.created, v.path.name))
        return found

    def find(self, version: str) -> Path:
        """The folder of `version` (a manifest version or a folder name); newest on a tie."""
        matches = [v for v in self.versions() if version in (v.version, v.path.name)]
        if not matches:
            have = ", ".join(v.version for v in self.versions()) or "none"
            raise ModelError(f"no version {version!r} in {self.root} (have: {have})")
        return matches[-1].path

    def latest(self, kind: str) -> Path | None:
        """The newest version of `kind` by manifest `created`, or None."""
        of_kind = [v for v in self.versions() if v.kind == kind]
        return of_kind[-1].path if of_kind else None

    def resolve(self, ref: Path | str) -> Path:
        """A folder for `ref`: a path as is, else a version or folder name in the registry."""
        if isinstance(ref, Path) or "/" in ref:
            return Path(ref)
        return self.find(ref)

    def load(
        self,
        ref: Path | str,
        *,
        device: Device = "auto",
        variant: str | None = None,
        manifest_sha256: str | None = None,
        **options: Any,
    ) -> Scorer:
        """A scorer for `ref` that passed every check (see the module doc), else ModelError.

        `manifest_sha256`, when given (a ModelUpdate carries it), must match manifest.json.
        `options` go to the scorer of the version's kind (threads, max_pairs, cascade_k, ...).
        """
        path = self.resolve(ref)
        if manifest_sha256 is not None:
            actual = sha256_file(path / MANIFEST_FILE) if (path / MANIFEST_FILE).is_file() else ""
            if actual != manifest_sha256:
                raise ModelError(
                    f"{path}: manifest.json sha256 {actual[:12] or 'missing'}… does not match "
                    f"the announced {manifest_sha256[:12]}…"
                )
        kind = Manifest.load(path).kind  # each scorer verifies every checksum itself
        build = _loader(path, kind, device, variant, options)
        try:
            scorer = build()
        except ModelError:
            raise
        except Exception as exc:  # e.g. a manifest with a wrongly typed field
            raise ModelError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from exc
        probe(scorer)
        log.info("loaded %s (%s) from %s on %s, variant %s (%s)", scorer.version, kind, path,
                 scorer.provider, scorer.variant_decision.variant,
                 scorer.variant_decision.basis.value)
        return scorer


__all__ = ["PROBE", "ModelRegistry", "VersionInfo", "load_zeroshot", "probe"]
