"""The variant a learned ranker serves, decided when it loads, on real exported versions.

The int8 "variant" in most tests here is the fp32 graph under another name: what it scores is
portable, so each decision is the same on every CPU. The stored fp32 reference is perturbed or
removed to drive the other outcomes. The real int8 graphs' quality is never asserted as a
number: only that the decision follows the gate's verdict on what was measured here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from scoring import CascadeScorer, CrossScorer, EmbedScorer, Manifest, ModelError
from scoring.agreement import RANKING_GATE
from tests.model.conftest import clone_version

pytestmark = pytest.mark.timeout(900)


SAME_GRAPH = {
    "fp32": {"files": {"cross": "cross.onnx"}},
    "int8": {"files": {"cross": "cross.onnx"}},
}


def _probe_with(cross_dir: Path, change: Any) -> dict[str, Any]:
    probe = copy.deepcopy(dict(Manifest.load(cross_dir).probe))
    for lst in probe["lists"]:
        lst["scores"] = change(lst["scores"])
    return probe


def test_int8_passing_its_gate_here_serves(cross_dir: Path, tmp_path: Path) -> None:
    both = clone_version(cross_dir, tmp_path / "both", variants=SAME_GRAPH)
    scorer = CrossScorer(both, device="cpu")
    decision = scorer.variant_decision
    assert (scorer.variant, decision.basis, decision.checked) == ("int8", "passed", "int8")
    assert decision.agreement is not None and decision.agreement.max_abs_diff < 1e-3
    assert "passed its gate on this machine" in decision.reason
    assert scorer.pairs_scored == 0  # the check is not counted as searches


def test_a_perturbed_reference_makes_fp32_serve_with_the_reason(
    cross_dir: Path, tmp_path: Path
) -> None:
    reversed_reference = _probe_with(cross_dir, lambda scores: [-x for x in scores])
    bad = clone_version(cross_dir, tmp_path / "bad", variants=SAME_GRAPH,
                        probe=reversed_reference)
    scorer = CrossScorer(bad, device="cpu")
    decision = scorer.variant_decision
    assert (scorer.variant, decision.basis, decision.checked) == ("fp32", "failed", "int8")
    assert "int8 failed its gate on this machine" in decision.reason
    assert "Kendall tau" in decision.reason
    # Forced, it serves unchecked, and says so.
    forced = CrossScorer(bad, device="cpu", variant="int8").variant_decision
    assert (forced.variant, forced.basis) == ("int8", "forced")


def test_no_stored_reference_means_fp32(cross_dir: Path, tmp_path: Path) -> None:
    old = clone_version(cross_dir, tmp_path / "old", variants=SAME_GRAPH, probe={})
    decision = CrossScorer(old, device="cpu").variant_decision
    assert (decision.variant, decision.basis) == ("fp32", "no_reference")
    assert "re-export" in decision.reason


def test_variant_choice(cross_dir: Path, tmp_path: Path) -> None:
    assert CrossScorer(cross_dir, device="cpu", variant="fp32").variant == "fp32"
    only_fp32 = clone_version(cross_dir, tmp_path / "fp32", variants={"fp32": SAME_GRAPH["fp32"]})
    decision = CrossScorer(only_fp32, device="cpu").variant_decision
    assert (decision.variant, decision.basis) == ("fp32", "not_shipped")
    with pytest.raises(ModelError, match="variant 'fp16' not shipped"):
        CrossScorer(cross_dir, device="cpu", variant="fp16")


def test_real_int8_decision_is_consistent_with_its_gate(embed_dir: Path) -> None:
    """Whichever way this CPU's int8 kernels go, the decision follows the measured gate."""
    scorer = EmbedScorer(embed_dir, device="cpu")
    decision = scorer.variant_decision
    if "int8" not in Manifest.load(embed_dir).variants:
        assert decision.basis == "not_shipped"
        return
    assert decision.checked == "int8" and decision.agreement is not None
    passes = RANKING_GATE.passes(decision.agreement)
    assert (decision.variant, decision.basis) == (
        ("int8", "passed") if passes else ("fp32", "failed")
    )


def test_a_cascade_reports_each_components_decision(cascade_dir: Path) -> None:
    cascade = CascadeScorer(cascade_dir, device="cpu")
    decision = cascade.variant_decision
    assert set(decision.parts) == {"embed", "cross"}
    assert decision.parts["embed"] == cascade.embed.variant_decision
    assert decision.parts["cross"] == cascade.cross.variant_decision
    assert cascade.variant in {"fp32", "int8"} or cascade.variant.startswith("embed=")
