"""The scorer contract the stream worker codes against, and the model manifest.

A scorer turns a search (query, the user's recent history, candidate items) into one relevance
score per candidate. Higher is better. The worker calls `score` from one executor thread at a
time, so implementations need not be re-entrant, but must not rely on the event loop. A call
returns its scores together with where its time went (`ScoreResult`), and every scorer says
which variant serves and why (`VariantDecision`, decided when it was loaded) and whether it
keeps item embeddings worth warming (`caches_items`, `warm_items`): typed attributes the worker
reads, never discovered at run time.

Every exported model lives in its own folder with a `manifest.json` naming each file and its
sha256: a serving process refuses a folder whose files do not match, so a half-copied or
corrupted model is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from scoring.agreement import Agreement

if TYPE_CHECKING:  # runtime imports would be circular; the fields are plain annotations
    from scoring.behaviour import BehaviourInputs
    from scoring.behaviour_spec import BehaviourSpec
    from scoring.explanation import Explanation

MANIFEST_FILE = "manifest.json"
# Files of a version folder, named once (docs/models.md lists what each kind holds).
TOKENIZER_FILE = "tokenizer.json"
HEAD_STATE_FILE = "head.pt"  # the embed head's torch weights, for fine-tuning from it
MANIFEST_FORMAT = 1


class ModelError(RuntimeError):
    """A model folder is missing, incomplete, corrupted or cannot be loaded."""


@dataclass(frozen=True)
class ScoreRequest:
    """One search to score."""

    query: str
    # The user's recent item titles and queries, newest first.
    history: Sequence[str]
    # (item_id, item text); text is "" when the catalog does not know the item.
    candidates: Sequence[tuple[str, str]]
    # What the behaviour features are built from (scoring/behaviour.py), candidates in the
    # same order; only the hybrid scorer reads it, with its own version's spec and neighbours.
    behaviour: BehaviourInputs | None = field(default=None, compare=False)
    # Ask for an Explanation of each score (the hybrid scorer; others ignore it).
    explain: bool = False


# (item_id, item text) of a catalog item.
ItemText = tuple[str, str]


@dataclass(frozen=True)
class ScoreResult:
    """What one `Scorer.score` call returns."""

    # One list per request, one finite float per candidate, in the candidates' order.
    scores: list[list[float]]
    # Seconds per stage of this call (e.g. tokenize, encode, head, inference, similarity).
    timings: Mapping[str, float] = field(default_factory=dict)
    # Per request, the behaviour feature matrix [C, F] the scores were computed from (None
    # where none was built): the worker logs it with the impression. Empty for text scorers.
    features: Sequence[npt.NDArray[np.float32] | None] = ()
    # The spec of those matrices (the serving version's), None when no features were built.
    behaviour_spec: BehaviourSpec | None = None
    # Per request, an Explanation when the request asked for one (else None). Empty for
    # scorers that cannot explain.
    explanations: Sequence[Explanation | None] = ()


class VariantBasis(StrEnum):
    """Why a variant serves (a metrics label: keep the values stable)."""

    FORCED = "forced"  # named by STREAMRANK_MODEL_VARIANT (or the caller): not checked
    PASSED = "passed"  # the reduced-precision variant passed its gate on this machine
    FAILED = "failed"  # it failed its gate (or could not run) here: fp32 serves
    NO_REFERENCE = "no_reference"  # shipped, but no stored fp32 reference to check it: fp32
    NOT_SHIPPED = "not_shipped"  # the variant this device prefers is not in the version
    ONLY = "only"  # the model has a single variant (zero-shot encoder, torch baselines)
    COMPONENTS = "components"  # a cascade: each component decided on its own (see parts)


@dataclass(frozen=True)
class VariantDecision:
    """Which variant of a version serves, and why; made at load time on the serving machine
    (scoring/variants.py) and logged, shown on /health/ and exported as a metric."""

    variant: str  # fp32, int8, fp16; a cascade with mixed components: "embed=int8,cross=fp32"
    basis: VariantBasis
    reason: str  # one line for a human, with the measured figures when a gate ran
    checked: str = ""  # the variant whose gate ran on this machine ("" when none ran)
    agreement: Agreement | None = None  # its figures against the stored fp32 reference
    check_seconds: float = 0.0
    parts: Mapping[str, VariantDecision] = field(default_factory=dict)  # cascade components

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variant": self.variant, "basis": self.basis.value,
                               "reason": self.reason}
        if self.checked:
            out["checked"] = self.checked
            out["check_seconds"] = round(self.check_seconds, 3)
        if self.agreement is not None:
            out["agreement"] = self.agreement.as_dict()
        if self.parts:
            out["parts"] = {role: d.as_dict() for role, d in self.parts.items()}
        return out


@runtime_checkable
class Scorer(Protocol):
    """Scores candidates; the worker runs `score` in an executor, one call at a time."""

    name: str
    version: str
    provider: str
    # Which variant serves and why, decided when the scorer was built.
    variant_decision: VariantDecision
    # Whether `warm_items` precomputes anything: the worker walks the catalog only then.
    caches_items: bool

    def score(self, requests: Sequence[ScoreRequest]) -> ScoreResult:
        """Scores for every request (see ScoreResult), and the call's stage timings."""
        ...

    def warm_items(self, items: Sequence[ItemText]) -> int:
        """Precompute what searches over `items` would compute; returns how many items were
        newly prepared (0 for a scorer with nothing to precompute)."""
        ...


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` records about an exported model."""

    name: str
    version: str
    # Relative path -> sha256 hex of every file of the model except the manifest itself.
    files: Mapping[str, str]
    embedding_dim: int
    max_length: int
    kind: str = "sentence-encoder"
    opset: int = 0
    parity: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    export_seconds: float = 0.0
    format: int = MANIFEST_FORMAT
    # Learned rankers (kinds "embed", "cross", "cascade"); see docs/models.md.
    features: Mapping[str, Any] = field(default_factory=dict)  # FeatureSpec.to_dict()
    # Variant name ("fp32", "int8", "fp16") -> {"files": {graph: file}, "parity": {...}}; only
    # variants that passed their gate are listed.
    variants: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)  # held-out quality, training budget
    components: Mapping[str, str] = field(default_factory=dict)  # cascade: role -> subfolder
    parent: str = ""  # the version this one was fine-tuned from
    # Fixed probe lists with their fp32 reference scores (scoring/variants.ProbeSet): each
    # serving machine checks a reduced-precision variant against them before serving it.
    probe: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("files", "features", "variants", "metrics", "components", "parity", "probe"):
            data[key] = dict(getattr(self, key))
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{source}: expected a JSON object")
        if data.get("format") != MANIFEST_FORMAT:
            raise ModelError(f"{source}: unsupported manifest format {data.get('format')!r}")
        files = data.get("files")
        if (
            not isinstance(files, dict)
            or not files
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
        ):
            raise ModelError(f"{source}: 'files' must map file names to sha256 strings")
        for key, typ in (
            ("name", str),
            ("version", str),
            ("embedding_dim", int),
            ("max_length", int),
        ):
            if not isinstance(data.get(key), typ):
                raise ModelError(f"{source}: missing or invalid {key!r}")
        known = {f for f in cls.__dataclass_fields__}
        # Unknown keys are ignored so an older reader accepts a newer writer's extras.
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, model_dir: Path) -> Manifest:
        path = model_dir / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"{model_dir}: no {MANIFEST_FILE}; not an exported model") from None
        except OSError as exc:
            raise ModelError(f"{path}: cannot read ({exc})") from exc
        return cls.from_json(text, source=str(path))

    def verify(self, model_dir: Path) -> None:
        """Raise ModelError unless every listed file exists with the recorded sha256."""
        for rel, expected in self.files.items():
            path = _safe_join(model_dir, rel)
            if not path.is_file():
                raise ModelError(f"{model_dir}: file {rel!r} listed in the manifest is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ModelError(
                    f"{model_dir}: sha256 mismatch for {rel!r} "
                    f"(manifest {expected[:12]}…, file {actual[:12]}…); the model is corrupted"
                )

    def write(self, model_dir: Path) -> None:
        """Write the manifest atomically: readers see the old one or the new one, never half."""
        tmp = model_dir / (MANIFEST_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, model_dir / MANIFEST_FILE)


def load_verified(model_dir: Path) -> Manifest:
    """The manifest of `model_dir` once all its files have been checked."""
    manifest = Manifest.load(model_dir)
    manifest.verify(model_dir)
    return manifest


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _safe_join(root: Path, rel: str) -> Path:
    # A manifest is data from disk: never let it point outside its own folder.
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ModelError(f"{root}: manifest names a file outside the model folder: {rel!r}")
    return path


__all__ = [
    "HEAD_STATE_FILE",
    "MANIFEST_FILE",
    "TOKENIZER_FILE",
    "ItemText",
    "Manifest",
    "ModelError",
    "ScoreRequest",
    "ScoreResult",
    "Scorer",
    "VariantBasis",
    "VariantDecision",
    "load_verified",
    "sha256_file",
]
