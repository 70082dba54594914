"""Listwise training on synthetic lists, tiny budgets: it learns, and it is reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scoring.features import FeatureSpec, Featurizer
from scoring.training.data import TrainingList, synthetic_lists
from scoring.training.eager import cross_scorer, embed_scorer, evaluate
from scoring.training.fit import load_cross, load_embed, train_cross, train_embed
from scoring.training.loop import listnet_loss
from scoring.training.models import EmbedHead, base_model_path

TRAIN = synthetic_lists(200, seed=11)
HELD_OUT = synthetic_lists(60, seed=12)  # other users, other lists


@pytest.fixture(scope="module")
def featurizer() -> Featurizer:
    return Featurizer.from_file(base_model_path() / "tokenizer.json", FeatureSpec())


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_listnet_loss_matches_its_definition_and_ignores_padding() -> None:
    scores = torch.tensor([[2.0, 0.5, -1.0]])
    labels = torch.tensor([[3.0, 1.0, 0.0]])
    target = torch.tensor([7.0, 1.0, 0.0]) / 8.0
    want = -(target * torch.log_softmax(scores[0], dim=0)).sum()
    assert torch.allclose(listnet_loss(scores, labels), want)
    padded = torch.tensor([[2.0, 0.5, -1.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    padded_labels = torch.tensor([[3.0, 1.0, 0.0, 3.0]])
    assert torch.allclose(listnet_loss(padded, padded_labels, mask), want)


def test_evaluate_graded_ndcg_and_mrr() -> None:
    lst = TrainingList("q", (), (("a", "a"), ("b", "b"), ("c", "c")), (0.0, 1.0, 3.0))
    assert evaluate(lambda x: [0.0, 1.0, 2.0], [lst]) == {"ndcg@10": 1.0, "mrr": 1.0}
    worst = evaluate(lambda x: [2.0, 1.0, 0.0], [lst])
    ideal = 7 + 1 / math.log2(3)
    assert worst["ndcg@10"] == pytest.approx((1 / math.log2(3) + 7 / 2) / ideal)
    assert worst["mrr"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="no list with a positive"):
        evaluate(lambda x: [0.0], [TrainingList("q", (), (("a", "a"),), (0.0,))])


def test_untrained_head_ranks_like_zero_shot_and_handles_no_history() -> None:
    torch.manual_seed(0)
    head = EmbedHead(8).eval()
    query = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    items = torch.nn.functional.normalize(torch.randn(2, 5, 8), dim=-1)
    history = torch.randn(2, 3, 8)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # second user: no history
    with torch.no_grad():
        scores = head(query, history, mask, items)
    assert torch.allclose(scores, torch.einsum("bd,bcd->bc", query, items))
    # A trained head: padded history entries have no influence, no history gives no NaN.
    with torch.no_grad():
        head.out.weight.normal_()
        a = head(query, history, mask, items)
        history[0, 2] = 100.0
        history[1] = -5.0
        b = head(query, history, mask, items)
    assert torch.isfinite(a).all() and torch.allclose(a, b)


def test_embed_head_learns_personalization_in_50_steps(featurizer: Featurizer) -> None:
    encoder, untrained = load_embed(None)
    cache: dict[str, torch.Tensor] = {}  # the encoder stays frozen: embed each text once
    before = evaluate(embed_scorer(encoder, untrained.eval(), featurizer, cache), HELD_OUT)
    _, head, report = train_embed(TRAIN, steps=50, seed=0)
    after = evaluate(embed_scorer(encoder, head, featurizer, cache), HELD_OUT)
    assert report.steps == 50 and len(report.loss_curve) == 50
    assert report.examples_seen == 50 * 16 and report.device == "cpu"
    assert after["ndcg@10"] > before["ndcg@10"] + 0.1, (before, after)
    assert not head.training and not encoder.training


def test_same_seed_same_weights() -> None:
    lists = TRAIN[:40]
    _, a, ra = train_embed(lists, steps=15, lists_per_step=8, seed=5)
    _, b, rb = train_embed(lists, steps=15, lists_per_step=8, seed=5)
    _, c, _ = train_embed(lists, steps=15, lists_per_step=8, seed=6)
    assert same_weights(a, b) and ra.loss_curve == rb.loss_curve
    assert not same_weights(a, c)


def test_cross_encoder_lowers_its_loss_in_a_few_steps(featurizer: Featurizer) -> None:
    lists = synthetic_lists(4, seed=21, candidates=8, history=3)

    def loss(model: torch.nn.Module) -> float:
        score = cross_scorer(model, featurizer)  # type: ignore[arg-type]
        values = [
            listnet_loss(torch.tensor(np.asarray(score(x)))[None], torch.tensor([x.labels]))
            for x in lists
        ]
        return float(torch.stack(values).mean())

    first = load_cross(None, seed=3).eval()  # where train_cross(seed=3) starts from
    trained, report = train_cross(lists, steps=6, lists_per_step=2, seed=3)
    again, _ = train_cross(lists, steps=6, lists_per_step=2, seed=3)
    assert loss(trained) < loss(first) - 0.05
    assert report.examples_seen == 12 and report.pairs_seen == 12 * 8
    assert same_weights(trained, again)
