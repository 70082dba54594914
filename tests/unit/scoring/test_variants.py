"""The load-time variant decision and the ranking gate it applies, without any model.

A fake scorer stands in: `use` records which variant is opened, `trial` answers the probe set
with scores the test chooses. Nothing here depends on a CPU's integer kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from scoring.agreement import RANKING_GATE, Agreement, RankingGate, ndcg_drop
from scoring.base import Manifest, ModelError, ScoreRequest, VariantBasis
from scoring.variants import ProbeList, ProbeSet, choose_variant, combined

PROBES = ProbeSet((
    ProbeList(ScoreRequest("running shoes", ["trail"], [(f"i{j}", f"item {j}") for j in range(6)]),
              (3.0, 0.0, 1.0, 0.0, 0.0, 2.0), (0.9, 0.1, 0.5, 0.2, -0.3, 0.7)),
    ProbeList(ScoreRequest("gift", [], [("a", "candle"), ("b", "knife"), ("c", "")]),
              (0.0, 1.0, 0.0), (0.2, 0.8, -0.5)),
))
BOTH = {"fp32": {"files": {"cross": "cross.onnx"}}, "int8": {"files": {"cross": "c8.onnx"}}}


def manifest(variants: dict[str, Any] | None = None, probe: ProbeSet | None = PROBES) -> Manifest:
    return Manifest(name="cross-minilm", version="cross-0123abcd", files={"cross.onnx": "0"},
                    embedding_dim=384, max_length=128, kind="cross",
                    variants=BOTH if variants is None else variants,
                    probe=probe.to_dict() if probe is not None else {})


class Fake:
    """Opens variants and scores probe requests: the reference, or what `scores` says."""

    def __init__(self, scores: dict[str, list[list[float]]] | None = None,
                 error: Exception | None = None) -> None:
        self.opened: list[str] = []
        self.trials = 0
        self.scores = scores or {}
        self.error = error

    def use(self, variant: str) -> None:
        self.opened.append(variant)

    def trial(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        self.trials += 1
        if self.error is not None:
            raise self.error
        by_query = {p.request.query: p for p in PROBES.lists}
        current = self.opened[-1]
        return [self.scores.get(current, {}).get(r.query)  # type: ignore[call-overload]
                or list(by_query[r.query].reference) for r in requests]


def decide(m: Manifest, fake: Fake, *, gpu: bool = False, override: str | None = None,
           gate: RankingGate = RANKING_GATE) -> Any:
    return choose_variant(m, gpu=gpu, override=override, use=fake.use, trial=fake.trial,
                          gate=gate)


def test_int8_that_matches_the_reference_here_serves() -> None:
    fake = Fake()
    decision = decide(manifest(), fake)
    assert (decision.variant, decision.basis, decision.checked) == ("int8", "passed", "int8")
    assert fake.opened == ["int8"]  # opened once and kept
    assert fake.trials == 3  # each probe list alone, then all of them in one call
    assert decision.agreement is not None and decision.agreement.mean_ndcg_drop == 0.0
    assert "passed its gate on this machine" in decision.reason
    assert decision.as_dict()["agreement"]["min_top10"] == 1.0


def test_a_perturbed_reference_falls_back_to_fp32_with_the_figures() -> None:
    reversed_first = [-s for s in PROBES.lists[0].reference]  # int8 ranks list 1 upside down
    fake = Fake({"int8": {"running shoes": reversed_first}})
    decision = decide(manifest(), fake)
    assert (decision.variant, decision.basis, decision.checked) == ("fp32", "failed", "int8")
    assert fake.opened == ["int8", "fp32"]  # checked, then the serving variant opened
    assert "int8 failed its gate on this machine" in decision.reason
    assert "Kendall tau" in decision.reason and "NDCG@10 drop" in decision.reason
    assert decision.agreement is not None and decision.agreement.min_clear_tau == -1.0


def test_an_int8_that_cannot_run_here_falls_back_to_fp32() -> None:
    fake = Fake(error=RuntimeError("unsupported op"))
    decision = decide(manifest(), fake)
    assert (decision.variant, decision.basis) == ("fp32", "failed")
    assert "could not score the probe set" in decision.reason
    assert "unsupported op" in decision.reason
    assert fake.opened == ["int8", "fp32"]


def test_without_a_stored_reference_fp32_serves_and_says_why() -> None:
    fake = Fake()
    decision = decide(manifest(probe=None), fake)
    assert (decision.variant, decision.basis) == ("fp32", VariantBasis.NO_REFERENCE)
    assert "no fp32 probe reference" in decision.reason and fake.trials == 0
    assert fake.opened == ["fp32"]


def test_not_shipped_and_gpu_preference() -> None:
    fake = Fake()
    decision = decide(manifest({"fp32": BOTH["fp32"]}), fake)
    assert (decision.variant, decision.basis) == ("fp32", "not_shipped")
    assert "int8" in decision.reason and fake.trials == 0
    gpu = decide(manifest(), Fake(), gpu=True)  # a GPU prefers fp16, which is not shipped
    assert (gpu.variant, gpu.basis) == ("fp32", "not_shipped") and "fp16" in gpu.reason


def test_a_forced_variant_wins_unchecked_and_is_logged_as_forced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = Fake({"int8": {"running shoes": [0.0] * 6}})
    with caplog.at_level("INFO", logger="scoring.variants"):
        decision = decide(manifest(), fake, override="int8")
    assert (decision.variant, decision.basis) == ("int8", "forced") and fake.trials == 0
    assert "cross-0123abcd serves int8 (forced)" in caplog.text
    with pytest.raises(ModelError, match="variant 'fp16' not shipped"):
        decide(manifest(), Fake(), override="fp16")


def test_the_gate_bounds_come_from_the_gate() -> None:
    shuffled = [0.9, 0.1, 0.7, 0.2, -0.3, 0.5]  # positives 2 and 5 swapped
    fake = Fake({"int8": {"running shoes": shuffled}})
    assert decide(manifest(), fake).variant == "fp32"
    lenient = RankingGate(min_mean_clear_tau=-1.0, min_top10=0.0, max_ndcg_drop=1.0,
                          max_mean_ndcg_drop=1.0)
    assert decide(manifest(), Fake({"int8": {"running shoes": shuffled}}),
                  gate=lenient).variant == "int8"


def test_a_malformed_probe_set_is_a_model_error() -> None:
    broken = manifest()
    data = dict(broken.probe)
    data["lists"] = [{**data["lists"][0], "scores": [1.0]}]  # lengths differ
    with pytest.raises(ModelError, match="invalid probe set"):
        ProbeSet.from_manifest(replace(broken, probe=data))
    with pytest.raises(ModelError, match="invalid probe set"):
        ProbeSet.from_manifest(replace(broken, probe={**data, "format": 99}))


def test_probe_set_round_trips_through_the_manifest_json() -> None:
    again = ProbeSet.from_manifest(Manifest.from_json(manifest().to_json()))
    assert again == PROBES


def test_a_cascade_combines_its_components_decisions() -> None:
    embed = decide(manifest(), Fake())
    cross = decide(manifest(), Fake({"int8": {"gift": [0.8, 0.2, -0.5]}}))
    both = combined({"embed": embed, "cross": cross})
    assert both.variant == "embed=int8,cross=fp32" and both.basis == "components"
    assert set(both.as_dict()["parts"]) == {"embed", "cross"}
    same = combined({"embed": embed, "cross": embed})
    assert (same.variant, same.basis) == ("int8", "passed")


# --- the gate's measures ------------------------------------------------------------------


def test_lists_without_a_positive_are_skipped_by_the_ndcg_part() -> None:
    want = np.array([3.0, 2.0, 1.0])
    assert ndcg_drop(want, want[::-1], [0.0, 0.0, 0.0]) is None  # nothing to lose
    assert ndcg_drop(want, want[::-1], [1.0, 0.0, 0.0]) == pytest.approx(0.5)
    unlabelled_flip = Agreement.of([want, want], {0: want[::-1], 1: want}, 0.0,
                                   [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # The flipped list has no positive: the mean is over the one labelled list only.
    assert unlabelled_flip.mean_ndcg_drop == 0.0 and unlabelled_flip.max_ndcg_drop == 0.0
    assert unlabelled_flip.min_tau == -1.0


def test_clear_tau_ignores_near_ties_of_the_reference() -> None:
    want = np.array([1.0, 0.999, 0.0, -1.0])  # the first two differ by 0.05% of the range
    got = np.array([0.999, 1.0, 0.0, -1.0])
    a = Agreement.of([want], {0: got}, 1e-6)
    assert a.min_tau < 1.0 and a.min_clear_tau == 1.0
    assert RANKING_GATE.failures(a) == []
    worse = Agreement.of([want], {0: -want}, 1e-6)
    # Only tau: 4 items all sit in any top 10, and without labels there is no NDCG part.
    assert RANKING_GATE.failures(worse) == ["mean clear Kendall tau -1.0000 < 0.85"]
    assert Agreement.worst(a, worse).min_clear_tau == -1.0
