"""`streamrank model show`: a manifest as a person reads it."""

from __future__ import annotations

from scoring.base import Manifest
from streams.cli.model import describe


def manifest(**metrics: object) -> Manifest:
    return Manifest(
        name="embed-minilm", version="embed-2", files={"encoder.onnx": "0" * 64},
        embedding_dim=384, max_length=64, kind="embed", parent="embed-1",
        features={"history_items": 10}, parity={"mean_tau": 1.0},
        variants={"fp32": {"parity": {"mean_tau": 1.0}}, "int8": {"parity": {"mean_tau": 0.97}}},
        metrics=metrics, probe={"lists": [{}, {}, {}]},
    )


def test_a_trained_version_shows_quality_data_and_budget() -> None:
    text = describe(manifest(
        held_out={"ndcg@10": 0.41, "mrr": 0.5}, champion_held_out={"ndcg@10": 0.38},
        decision={"promote": True, "reason": "challenger better"},
        data={"train_lists": 900, "held_out_lists": 120}, budget={"steps": 200, "seconds": 60},
        export={"int8": {"status": "shipped"}, "fp16": {"status": "not checked (no GPU)"}},
    ), "/models/embed-2")
    lines = text.splitlines()
    assert lines[0] == "embed-2  (embed, embed-minilm)"
    assert "parent: embed-1" in text and "history_items: 10" in text
    assert any(line.split()[:2] == ["int8", "shipped"] and "mean_tau 0.97" in line
               for line in lines)
    assert any(line.split()[:3] == ["fp16", "not", "shipped"] and "no GPU" in line
               for line in lines)
    assert "probe: 3 lists" in text
    for expected in ("ndcg@10: 0.41", "train_lists: 900", "steps: 200",
                     "reason: challenger better"):
        assert expected in text
    assert "trained:  no" not in text


def test_an_untrained_base_says_so() -> None:
    assert "trained:  no" in describe(manifest(untrained=True), "/m")
