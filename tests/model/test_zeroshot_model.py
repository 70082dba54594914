"""ZeroShotScorer on the real exported MiniLM encoder: personalization and batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scoring import OnnxEncoder, ScoreRequest, ZeroShotScorer, build_scorer
from tests.unit.scoring.test_zeroshot import OTHERS, SHOES, _ranks


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(encoder_dir, device="cpu")


def test_history_lifts_matching_items(encoder: OnnxEncoder) -> None:
    scorer = ZeroShotScorer(encoder)
    cands = OTHERS[:4] + SHOES + OTHERS[4:]
    ids = [c[0] for c in cands]
    shoe_ids = {c[0] for c in SHOES}
    history = ["running shoes", "Nike Pegasus trail runner", "marathon training sneakers"]
    plain, personal = scorer.score(
        [ScoreRequest("gift", [], cands), ScoreRequest("gift", history, cands)]
    ).scores
    plain_ranks = _ranks(plain, ids, shoe_ids)
    personal_ranks = _ranks(personal, ids, shoe_ids)
    assert sum(personal_ranks) < sum(plain_ranks)
    assert all(p <= q for p, q in zip(sorted(personal_ranks), sorted(plain_ranks), strict=True))
    assert personal_ranks[0] == 0  # with that history a shoe leads the list


def test_batch_equals_per_request_results(encoder: OnnxEncoder) -> None:
    requests = [
        ScoreRequest("gift", [], OTHERS),
        ScoreRequest("running shoes", ["trail run"], SHOES + OTHERS[:2]),
        ScoreRequest("knife", ["kitchen", "cooking pan", ""], [*OTHERS[1:3], ("u", "")]),
    ]
    batched_scorer = ZeroShotScorer(encoder)
    batched = batched_scorer.score(requests).scores
    assert batched_scorer.encode_calls == 1  # all misses of all requests in one call
    single_scorer = ZeroShotScorer(encoder)
    single = [single_scorer.score([r]).scores[0] for r in requests]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose(b, s, atol=1e-5)


def test_build_scorer_zeroshot(models_dir: Path) -> None:
    scorer = build_scorer("zeroshot", models_dir, device="cpu", threads=1, history_weight=0.5)
    assert scorer.name == "zeroshot"
    assert scorer.version.startswith("zeroshot-minilm-")
    assert scorer.provider == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="unknown options"):
        build_scorer("zeroshot", models_dir, colour="red")
