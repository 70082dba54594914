"""The hybrid ranker: training on behaviour features, export parity, explanations that add up,
the spec check at load, the top-layer fine-tune over cached states."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from contracts.ids import item_hash
from scoring import ModelError, ModelRegistry, ScoreRequest
from scoring.behaviour import BehaviourInputs, build
from scoring.behaviour_spec import BehaviourSpec
from scoring.hybrid import HybridScorer
from scoring.neighbours import Neighbours
from scoring.training.export_ranker import export_hybrid, load_hybrid
from scoring.training.hybrid_data import HybridList, TextTable, TopLayer
from scoring.training.hybrid_fit import HybridConfig, fit_hybrid
from scoring.training.models import base_encoder
from state import InteractionStore, MemoryKV
from state.item_stats import LAYOUT
from tests.model.conftest import clone_version

pytestmark = pytest.mark.timeout(900)

SPEC = BehaviourSpec(neighbours=4)
WORDS = ["red", "blue", "shoe", "lamp", "desk", "tent", "kettle", "cable", "chair", "mug"]
ITEMS = [(f"i{k}", f"{WORDS[k % 10]} {WORDS[(k * 3) % 10]} {k}") for k in range(40)]
NOW = 1_700_000_000_000


def inputs(rng: random.Random, items: list[tuple[str, str]], user: InteractionStore,
           stats: dict[str, np.ndarray]) -> BehaviourInputs:
    ids = [i for i, _ in items]
    return BehaviourInputs(
        now=NOW, query="q", item_ids=ids, positions=list(range(len(ids))),
        retrieval_scores=[rng.random() for _ in ids], attributes=[None] * len(ids),
        user=user.columns("u"), item_stats=LAYOUT.read_many([stats.get(i) for i in ids], NOW))


def behaviour_lists(n: int, seed: int = 0) -> tuple[list[HybridList], Neighbours]:
    """Lists whose positive is the candidate the user's neighbours point to, with popular
    decoys: only the behaviour features tell them apart (texts are random)."""
    rng = random.Random(seed)
    user = InteractionStore(MemoryKV(), buckets=SPEC.buckets)
    for k in range(5):
        user.record("u", f"e{k}", f"h{k}", "purchase", NOW - 1000 * k)
    stats = {i: LAYOUT.apply(None, "click", NOW - 10_000) for i, _ in ITEMS}
    neighbours = Neighbours.from_lists(
        {item_hash(i): [(item_hash(f"h{k}"), 1.0) for k in range(2)] for i, _ in ITEMS[::4]},
        SPEC.neighbours)
    lists = []
    for t in range(n):
        items = rng.sample(ITEMS, 8)
        x = build(SPEC, inputs(rng, items, user, stats), neighbours)
        liked = [j for j, (i, _) in enumerate(items) if int(i[1:]) % 4 == 0]
        labels = [0.0] * 8
        labels[liked[0] if liked else rng.randrange(8)] = 2.0
        lists.append(HybridList("q", ("blue shoe",), tuple(items), x, tuple(labels), ts=t))
    return lists, neighbours


@pytest.fixture(scope="module")
def trained() -> tuple[object, Neighbours, list[HybridList]]:
    torch.set_num_threads(2)
    lists, neighbours = behaviour_lists(200)
    fit = fit_hybrid(lists, n_features=SPEC.size,
                     config=HybridConfig(epochs=6, batch=16, lr=3e-3, patience=6))
    return fit, neighbours, lists


def test_training_learns_the_behaviour_signal(trained) -> None:  # type: ignore[no-untyped-def]
    fit, _, lists = trained
    curve = fit.report["validation_ndcg"]
    assert fit.report["validation_lists"] == 20 and len(curve) == 6
    assert max(curve) > 0.9  # co-occurrence with the user's purchases finds the positive
    scores = fit.scores(lists[:5])
    assert [len(s) for s in scores] == [8] * 5
    # Training flushes subnormal floats (speed) and sets the CPU flag back when it is done:
    # later code in the process (hypothesis, numerics) needs IEEE subnormals.
    assert (torch.tensor([1e-310], dtype=torch.float64) * 1.0).item() != 0.0


def test_export_parity_explanations_and_reload(  # type: ignore[no-untyped-def]
    trained, tmp_path: Path
) -> None:
    fit, neighbours, _ = trained
    manifest = export_hybrid(fit.encoder, fit.model, SPEC, neighbours,
                             models_dir=tmp_path, variants=())
    parity = manifest.variants["fp32"]["parity"]
    assert parity["max_abs_diff"] <= parity["tolerance"]
    assert parity["explanation_gap"] <= parity["tolerance"]
    assert manifest.features["behaviour"]["names"] == list(SPEC.names)
    scorer = ModelRegistry(tmp_path).load(manifest.version, device="cpu")
    assert isinstance(scorer, HybridScorer) and scorer.spec == SPEC
    rng = random.Random(5)
    user = InteractionStore(MemoryKV(), buckets=SPEC.buckets)
    user.record("u", "e0", "h0", "purchase", NOW - 1)
    request_inputs = inputs(rng, ITEMS[:10], user, {})
    request = ScoreRequest("q", ["blue shoe"], ITEMS[:10], behaviour=request_inputs,
                           explain=True)
    result = scorer.score([request, ScoreRequest("q", [], ITEMS[10:14])])
    served = np.asarray(result.scores[0])
    # The features served are the builder's, with the version's neighbours.
    want_x = build(SPEC, request_inputs, neighbours)
    assert result.features[0] is not None and np.array_equal(result.features[0], want_x)
    assert result.behaviour_spec == SPEC and result.explanations[1] is None
    # ONNX against torch on the same inputs, within the export's relative tolerance.
    torch_scores = fit.scores([HybridList("q", ("blue shoe",), tuple(ITEMS[:10]), want_x,
                                          (1.0,) + (0.0,) * 9)])[0]
    scale = max(1.0, float(np.abs(torch_scores).max()))
    assert np.abs(served - torch_scores).max() <= 1e-4 * scale
    # The explanation's parts add up to each score.
    why = result.explanations[0]
    assert why is not None and why.contributions.shape == (10, SPEC.size)
    for c in range(10):
        assert math.isclose(why.score(c), served[c], rel_tol=1e-4, abs_tol=1e-4 * scale)
    assert len(why.top(0, 3)) == 3 and why.attention.shape == (10, 10)
    assert why.history == ("blue shoe",) and why.attention[:, 1:].sum() == 0
    # The torch side comes back from the folder (to continue training).
    _, model, spec, nbrs = load_hybrid(tmp_path / manifest.version)
    assert spec == SPEC and nbrs.edges == neighbours.edges
    feed = (torch.from_numpy(want_x[None]), torch.ones(1, 10), torch.zeros(1, 384),
            torch.zeros(1, 10, 384), torch.zeros(1, 10), torch.zeros(1, 10, 384))
    with torch.no_grad():
        assert torch.allclose(model(*feed)[0], fit.model(*feed)[0])


def test_a_version_with_another_feature_spec_is_refused(  # type: ignore[no-untyped-def]
    hybrid_dir: Path, tmp_path: Path
) -> None:
    features = json.loads((hybrid_dir / "manifest.json").read_text())["features"]
    renamed = {**features, "behaviour": {**features["behaviour"],
                                         "names": features["behaviour"]["names"][::-1]}}
    clone_version(hybrid_dir, tmp_path / "renamed", features=renamed)
    future = {**features, "behaviour": {**features["behaviour"], "version": 99}}
    clone_version(hybrid_dir, tmp_path / "future", features=future)
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelError, match="names differ"):
        registry.load("renamed", device="cpu")
    with pytest.raises(ModelError, match="unknown behaviour spec version"):
        registry.load("future", device="cpu")


def test_untrained_hybrid_ranks_like_zero_shot_plus_its_priors(hybrid_dir: Path) -> None:
    scorer = HybridScorer(hybrid_dir, device="cpu", variant="fp32")
    plain = scorer.score([ScoreRequest("blue shoe", [], ITEMS[:6])]).scores[0]
    why = scorer.score([ScoreRequest("blue shoe", [], ITEMS[:6], explain=True)]).explanations[0]
    assert why is not None
    # Without behaviour state only the position prior moves the cosine: -0.005 per position.
    position = SPEC.index("retr_position")
    assert np.allclose(why.contributions[:, position], -0.005 * np.arange(6), atol=1e-6)
    assert np.allclose(np.delete(why.contributions, position, axis=1), 0.0)
    assert np.allclose([why.score(c) for c in range(6)], plain, atol=1e-5)


def test_top_layer_over_cached_states_equals_the_full_encoder() -> None:
    from scoring.base import TOKENIZER_FILE
    from scoring.features import FeatureSpec, Featurizer
    from scoring.training.models import base_model_path

    featurizer = Featurizer.from_file(base_model_path() / TOKENIZER_FILE, FeatureSpec())
    encoder = base_encoder()
    texts = [t for _, t in ITEMS[:12]] + ["a much longer text about a red kettle and a desk"]
    table = TextTable.embed(texts, encoder, featurizer, keep_states=True, batch=5)
    top = TopLayer(encoder, table).eval()
    with torch.no_grad():
        again = top(list(range(len(table)))).numpy()
    assert np.abs(again - table.vectors).max() < 1e-4
    tuned = top.install(encoder)
    assert tuned is not encoder and len(list(tuned.parameters())) == len(
        list(encoder.parameters()))


def test_fine_tuning_the_top_layer_reports_its_outcome() -> None:
    lists, _ = behaviour_lists(60, seed=3)
    fit = fit_hybrid(lists, n_features=SPEC.size, config=HybridConfig(
        epochs=1, batch=16, finetune_steps=2, finetune_lists=4))
    report = fit.report["finetune"]
    assert report["steps"] == 2 and isinstance(report["kept"], bool)
    assert (fit.frozen is not None) == report["kept"]
