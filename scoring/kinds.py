"""The model kinds, defined once: what `STREAMRANK_SCORER`, `--kind` flags, manifests, the
registry, training and the evaluation all name.

docs/models.md describes each kind.
"""

from __future__ import annotations

from enum import StrEnum


class ModelKind(StrEnum):
    ZEROSHOT = "zeroshot"  # MiniLM sentence embeddings, no training
    EMBED = "embed"  # fine-tunable bi-encoder + personalized head over history
    CROSS = "cross"  # cross-encoder reading query, history and item together
    CASCADE = "cascade"  # embed over all candidates, cross re-scores the top k
    HYBRID = "hybrid"  # behaviour features + text with history attention, one graph

    @property
    def manifest_kind(self) -> str:
        """The `kind` written in a version's manifest.json."""
        return SENTENCE_ENCODER if self is ModelKind.ZEROSHOT else self.value

    @classmethod
    def from_manifest(cls, kind: str) -> ModelKind:
        """The kind a manifest's `kind` names; ValueError for an unknown one."""
        return cls.ZEROSHOT if kind == SENTENCE_ENCODER else cls(kind)

    @property
    def learned(self) -> bool:
        return self in LEARNED_KINDS

    @property
    def trainable(self) -> bool:
        """Whether `streamrank train` fine-tunes this kind directly (a cascade is assembled)."""
        return self in TRAINABLE_KINDS


# The zero-shot model's manifest kind (it is a plain sentence encoder).
SENTENCE_ENCODER = "sentence-encoder"
LEARNED_KINDS = (ModelKind.EMBED, ModelKind.CROSS, ModelKind.CASCADE, ModelKind.HYBRID)
TRAINABLE_KINDS = (ModelKind.EMBED, ModelKind.CROSS, ModelKind.HYBRID)


def kind_names(kinds: tuple[ModelKind, ...] | None = None) -> list[str]:
    """The kinds as strings, e.g. for argparse `choices`."""
    return [k.value for k in (kinds if kinds is not None else tuple(ModelKind))]


__all__ = ["LEARNED_KINDS", "SENTENCE_ENCODER", "TRAINABLE_KINDS", "ModelKind", "kind_names"]
