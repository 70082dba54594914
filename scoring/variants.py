"""Which variant of a version serves, decided on the machine that serves it.

Dynamic int8 (and fp16) numerics depend on the CPU's integer kernels (AVX2, VNNI, AMX) or the
GPU: a variant that passed its gate on the exporting machine may rank worse on another. So the
export stores a fixed probe set in the manifest with the fp32 graphs' scores for it (fp32 is
portable: parity with torch within 1e-4), and a scorer that would serve a reduced-precision
variant first scores the probe set with it, here, and applies the export's ranking gate
(scoring/agreement.py) against that stored reference:

    forced by STREAMRANK_MODEL_VARIANT -> that variant, unchecked ("forced")
    preferred (GPU fp16, CPU int8) not shipped -> fp32 ("not_shipped")
    shipped, but no stored reference -> fp32 ("no_reference": an export older than the check)
    shipped, gate passes here -> preferred ("passed"); fails or cannot run -> fp32 ("failed")

The decision is logged and kept on the scorer (`variant_decision`) for /health/ and metrics.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring.agreement import RANKING_GATE, Agreement, RankingGate
from scoring.base import (
    Manifest,
    ModelError,
    ScoreRequest,
    VariantBasis,
    VariantDecision,
)

log = logging.getLogger(__name__)

FP32 = "fp32"
PROBE_FORMAT = 1
# Scores the fp32 graphs give for the probe set: the reference the reduced variants meet.
REFERENCE = FP32

# Scores of each request, the way the scorer serves them (one call for all requests).
Trial = Callable[[Sequence[ScoreRequest]], list[list[float]]]


@dataclass(frozen=True)
class ProbeList:
    request: ScoreRequest
    labels: tuple[float, ...]  # graded relevance, for the NDCG part of the gate
    reference: tuple[float, ...]  # the fp32 scores stored at export

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.request.query,
            "history": list(self.request.history),
            "candidates": [[item_id, text] for item_id, text in self.request.candidates],
            "labels": list(self.labels),
            "scores": [round(s, 7) for s in self.reference],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeList:
        request = ScoreRequest(
            query=str(data["query"]),
            history=[str(t) for t in data["history"]],
            candidates=[(str(i), str(t)) for i, t in data["candidates"]],
        )
        labels = tuple(float(x) for x in data["labels"])
        scores = tuple(float(x) for x in data["scores"])
        if not len(labels) == len(scores) == len(request.candidates) > 0:
            raise ValueError("candidates, labels and scores differ in length")
        if not all(math.isfinite(x) for x in (*labels, *scores)):
            raise ValueError("non-finite labels or scores")
        return cls(request, labels, scores)


@dataclass(frozen=True)
class ProbeSet:
    """Fixed probe lists with the fp32 scores of the version they are stored in."""

    lists: tuple[ProbeList, ...]

    @property
    def requests(self) -> list[ScoreRequest]:
        return [p.request for p in self.lists]

    def to_dict(self) -> dict[str, Any]:
        return {"format": PROBE_FORMAT, "reference": REFERENCE,
                "lists": [p.to_dict() for p in self.lists]}

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ProbeSet | None:
        """The manifest's probe set; None when it has none, ModelError when it is malformed."""
        data = manifest.probe
        if not data:
            return None
        try:
            if data.get("format") != PROBE_FORMAT or data.get("reference") != REFERENCE:
                raise ValueError(f"format {data.get('format')!r}, reference "
                                 f"{data.get('reference')!r}")
            lists = tuple(ProbeList.from_dict(x) for x in data["lists"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{manifest.version}: invalid probe set in the manifest ({exc})"
                             ) from exc
        if not lists:
            raise ModelError(f"{manifest.version}: the manifest's probe set has no lists")
        return cls(lists)

    def agreement(self, trial: Trial) -> Agreement:
        """How `trial` agrees with the stored reference: the worse of each list scored alone
        and all lists in one call, as a batch of searches is served."""
        want = [np.asarray(p.reference, dtype=np.float64) for p in self.lists]
        labels = [p.labels for p in self.lists]
        alone = {i: _row(trial([p.request]), 0, p) for i, p in enumerate(self.lists)}
        together = trial(self.requests)
        batched = {i: _row(together, i, p) for i, p in enumerate(self.lists)}
        return Agreement.worst(
            Agreement.of(want, alone, 0.0, labels), Agreement.of(want, batched, 0.0, labels)
        )


def _row(scores: list[list[float]], i: int, probe: ProbeList) -> Any:
    if len(scores) <= i or len(scores[i]) != len(probe.reference):
        raise ModelError("the probe run returned the wrong number of scores")
    return np.asarray(scores[i], dtype=np.float64)


def shipped_variants(manifest: Manifest) -> set[str]:
    """The variants a version ships (a manifest without variants has fp32)."""
    return set(manifest.variants) or {FP32}


def preferred_variant(gpu: bool) -> str:
    """docs/models.md: fp16 on a GPU, int8 on a CPU, when shipped and passing here."""
    return "fp16" if gpu else "int8"


def choose_variant(
    manifest: Manifest,
    *,
    gpu: bool,
    override: str | None,
    use: Callable[[str], None],
    trial: Trial,
    gate: RankingGate = RANKING_GATE,
) -> VariantDecision:
    """Decide (see the module doc), calling `use(variant)` to open each variant tried and
    `trial` to score the probe set with the one opened last; the last `use` is the decision.
    Raises ModelError for a forced variant the version does not ship."""
    shipped = shipped_variants(manifest)
    if override is not None:
        if override not in shipped:
            raise ModelError(
                f"{manifest.version}: variant {override!r} not shipped "
                f"(shipped: {', '.join(sorted(shipped))})"
            )
        use(override)
        return _logged(manifest, VariantDecision(
            override, VariantBasis.FORCED, f"{override} forced (STREAMRANK_MODEL_VARIANT or "
            "the caller): not checked on this machine"))
    preferred = preferred_variant(gpu)
    if preferred not in shipped:
        use(FP32)
        return _logged(manifest, VariantDecision(
            FP32, VariantBasis.NOT_SHIPPED, f"{preferred} (preferred here) not shipped"))
    probe = ProbeSet.from_manifest(manifest)
    if probe is None:
        use(FP32)
        return _logged(manifest, VariantDecision(
            FP32, VariantBasis.NO_REFERENCE,
            f"{preferred} shipped, but the manifest stores no fp32 probe reference to check it "
            f"on this machine (re-export the version to get one)"))
    started = time.perf_counter()
    try:
        use(preferred)
        agreement = probe.agreement(trial)
    except (AttributeError, NameError, TypeError):
        raise  # a bug in the scorer, not a variant this machine cannot run
    except Exception as exc:  # a graph that cannot run here is a refusal of that variant
        use(FP32)
        return _logged(manifest, VariantDecision(
            FP32, VariantBasis.FAILED, f"{preferred} could not score the probe set on this "
            f"machine ({type(exc).__name__}: {exc})"[:500], checked=preferred,
            check_seconds=time.perf_counter() - started))
    seconds = time.perf_counter() - started
    failures = gate.failures(agreement)
    if failures:
        use(FP32)
        return _logged(manifest, VariantDecision(
            FP32, VariantBasis.FAILED,
            f"{preferred} failed its gate on this machine: {'; '.join(failures)}",
            checked=preferred, agreement=agreement, check_seconds=seconds))
    return _logged(manifest, VariantDecision(
        preferred, VariantBasis.PASSED,
        f"{preferred} passed its gate on this machine: {agreement.summary()}",
        checked=preferred, agreement=agreement, check_seconds=seconds))


def _logged(manifest: Manifest, decision: VariantDecision) -> VariantDecision:
    level = logging.WARNING if decision.basis is VariantBasis.FAILED else logging.INFO
    log.log(level, "%s serves %s (%s): %s", manifest.version, decision.variant,
            decision.basis.value, decision.reason)
    return decision


def combined(parts: Mapping[str, VariantDecision]) -> VariantDecision:
    """A composite scorer's decision (a cascade): its components', one line."""
    variants = {d.variant for d in parts.values()}
    variant = (next(iter(variants)) if len(variants) == 1
               else ",".join(f"{role}={d.variant}" for role, d in parts.items()))
    bases = {d.basis for d in parts.values()}
    basis = next(iter(bases)) if len(bases) == 1 else VariantBasis.COMPONENTS
    reason = "; ".join(f"{role}: {d.variant} ({d.reason})" for role, d in parts.items())
    return VariantDecision(variant, basis, reason, parts=dict(parts))


__all__ = [
    "FP32",
    "ProbeList",
    "ProbeSet",
    "Trial",
    "choose_variant",
    "combined",
    "preferred_variant",
    "shipped_variants",
]
