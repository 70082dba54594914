"""ZeroShotScorer: output shape, personalization, caching, unknown items, batching."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from scoring import ModelError, Scorer, ScoreRequest, ZeroShotScorer, build_scorer


class FakeEncoder:
    """Bag-of-words hashing encoder: texts sharing words are similar; records every call."""

    version = "fake-1"
    provider = "FakeExecutionProvider"
    dim = 64

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def encode(
        self, texts: Sequence[str], timings: dict[str, float] | None = None
    ) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split() or [""]:
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[row] += np.random.default_rng(seed).standard_normal(self.dim)
            out[row] /= np.linalg.norm(out[row])
        return out


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


SHOES = [
    ("s1", "Men's trail running shoes, waterproof"),
    ("s2", "Women's lightweight road running sneakers"),
    ("s3", "Cushioned marathon running shoe with breathable mesh"),
]
OTHERS = [
    ("o1", "Scented soy candle gift set"),
    ("o2", "Stainless steel chef knife"),
    ("o3", "Children's picture book about dinosaurs"),
    ("o4", "Wireless bluetooth speaker"),
    ("o5", "Leather wallet for men"),
    ("o6", "Ceramic coffee mug with funny quote"),
    ("o7", "Board game for family nights"),
    ("o8", "Silk scarf with floral print"),
]


def _ranks(scores: list[float], ids: list[str], wanted: set[str]) -> list[int]:
    order = sorted(range(len(scores)), key=lambda j: -scores[j])
    return [pos for pos, j in enumerate(order) if ids[j] in wanted]


def test_one_finite_score_per_candidate_in_order(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder)
    cands = [("a", "red shoes"), ("b", ""), ("c", "blue kettle"), ("d", "red shoes deluxe")]
    requests = [
        ScoreRequest("red shoes", ["shoes"], cands),
        ScoreRequest("kettle", [], list(reversed(cands))),
        ScoreRequest("anything", [], []),
    ]
    out = scorer.score(requests).scores
    assert [len(s) for s in out] == [4, 4, 0]
    assert all(math.isfinite(x) for s in out for x in s)
    # Scores follow their candidates: reversing the input reverses the output.
    again = scorer.score([ScoreRequest("kettle", [], cands)]).scores[0]
    assert again == pytest.approx(list(reversed(out[1])))
    assert isinstance(scorer, Scorer)
    result = scorer.score(requests)
    assert set(result.timings) == {"tokenize", "encode", "similarity"}
    assert scorer.variant_decision.variant == "fp32" and scorer.caches_items


def test_no_history_is_plain_cosine(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder, history_weight=0.9)
    cands = [("a", "red shoes"), ("b", "blue kettle")]
    got = scorer.score([ScoreRequest("red", [], cands)]).scores[0]
    vecs = FakeEncoder().encode(["red", "red shoes", "blue kettle"])
    assert got == pytest.approx([float(vecs[1] @ vecs[0]), float(vecs[2] @ vecs[0])], abs=1e-6)


def test_known_items_are_never_reencoded(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder)
    cands = [("a", "red shoes"), ("b", "blue kettle"), ("c", "green lamp")]
    scorer.score([ScoreRequest("shoes", ["lamp"], cands)])
    assert (scorer.item_misses, scorer.item_hits, scorer.encode_calls) == (3, 0, 1)
    first = scorer.score([ScoreRequest("shoes", ["lamp"], cands)]).scores
    assert (scorer.item_misses, scorer.item_hits) == (3, 3)
    assert scorer.encode_calls == 1  # the query and history were cached too
    scorer.score([ScoreRequest("a new query", ["lamp"], cands)])
    assert scorer.item_misses == 3
    assert fake_encoder.calls[-1] == ["a new query"]
    assert scorer.text_misses == 3 and scorer.text_hits == 3
    assert first == scorer.score([ScoreRequest("shoes", ["lamp"], cands)]).scores


def test_changed_item_text_is_reencoded(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder)
    before = scorer.score([ScoreRequest("kettle", [], [("a", "red shoes")])]).scores[0][0]
    after = scorer.score([ScoreRequest("kettle", [], [("a", "blue kettle")])]).scores[0][0]
    assert scorer.item_misses == 2
    assert "blue kettle" in fake_encoder.encoded
    assert after > before


def test_unknown_items_get_finite_scores_below_known(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder)
    cands = [("x", ""), ("a", "red shoes"), ("y", ""), ("b", "blue kettle")]
    scores = scorer.score([ScoreRequest("shoes", ["kettle"], cands)]).scores[0]
    assert all(math.isfinite(s) for s in scores)
    assert max(scores[0], scores[2]) < min(scores[1], scores[3])
    assert scores[0] > scores[2]  # unknown items keep their original relative order
    assert "" not in fake_encoder.encoded
    only_unknown = scorer.score([ScoreRequest("shoes", [], [("x", ""), ("y", "")])]).scores[0]
    assert all(math.isfinite(s) for s in only_unknown) and only_unknown[0] > only_unknown[1]


def test_warm_items_fills_the_item_cache_ahead_of_searches(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder)
    scorer.warm_chunk = 2
    cands = [("a", "red shoes"), ("b", "blue kettle"), ("c", "green lamp"), ("u", "")]
    assert scorer.warm_items([*cands, cands[0]]) == 3  # unknown items and repeats skipped
    assert [len(call) for call in fake_encoder.calls] == [2, 1]  # in chunks
    assert scorer.warm_items(cands) == 0  # already cached
    scorer.score([ScoreRequest("shoes", [], cands)])
    assert scorer.item_misses == 0 and fake_encoder.calls[-1] == ["shoes"]
    assert scorer.cache_stats()["warmed_items"] == 3


def test_small_cache_still_scores_every_item(fake_encoder: FakeEncoder) -> None:
    scorer = ZeroShotScorer(fake_encoder, cache_size=2, text_cache_size=1)
    cands = [(str(i), f"item number {i}") for i in range(6)]
    big = ZeroShotScorer(FakeEncoder())
    want = big.score([ScoreRequest("number 3", [], cands)]).scores[0]
    assert scorer.score([ScoreRequest("number 3", [], cands)]).scores[0] == pytest.approx(want)
    assert scorer.cache_stats()["item_cache_size"] == 2


def test_invalid_options_are_refused(fake_encoder: FakeEncoder) -> None:
    with pytest.raises(ValueError):
        ZeroShotScorer(fake_encoder, history_weight=1.5)
    with pytest.raises(ValueError):
        ZeroShotScorer(fake_encoder, history_decay=0.0)


def test_build_scorer_needs_an_exported_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="streamrank model export"):
        build_scorer("zeroshot", tmp_path)
    with pytest.raises(ValueError, match="unknown scorer"):
        build_scorer("nope", tmp_path)
