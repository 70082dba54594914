"""The whole protocol on generated data, in both layouts: replay, behaviour state, systems,
tables, report.

One run trains the hybrid (tiny budget: one seed, one epoch, two fine-tune steps), its
ablations and LightGBM, exports the hybrid (fp32 only: the int8 gate is the export's own
business) and scores it through ONNX Runtime from the behaviour inputs; another trains and
exports the older embed kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.hybrid_runs import HybridBudget
from evaluation.learned import Budget
from evaluation.protocol import ProtocolConfig
from evaluation.run import FULL, EvalConfig, Evaluation
from scoring.behaviour_spec import BehaviourSpec


def config(data: Path, out: Path, models: Path, zeroshot_dir: Path, **kw: object) -> EvalConfig:
    # A folder that does not exist yet: the report creates it.
    return EvalConfig(data=data, out=out / "report" / "movielens", models_dir=models,
                      zeroshot_dir=zeroshot_dir, protocol=ProtocolConfig(k=10), progress=False,
                      spec=BehaviourSpec(neighbours=10), neighbour_refresh=100,
                      **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", ["latest", "100k"])
def test_protocol_and_report_without_training(
    layout: str, latest_dir: Path, ml100k_dir: Path, tmp_path: Path, models_dir: Path
) -> None:
    data = latest_dir if layout == "latest" else ml100k_dir
    outcome = Evaluation(config(data, tmp_path, tmp_path / "m", models_dir, kinds=())).run()
    full = {t.segment: t for t in outcome.tables if t.population == FULL}
    assert set(full) >= {"all", "warm"}
    t = full["all"]
    names = {r.system for r in t.rows}
    assert {"retriever (BM25 + popularity prior)", "popularity", "popularity, seen demoted",
            "retriever, seen demoted", "zero-shot (no history)", "zero-shot"} <= names
    assert any(n.startswith("recent popularity (") for n in names)
    assert any(n.startswith("co-occurrence (") for n in names)
    assert not any(r.learned for r in t.rows)
    assert t.reference == t.best().system  # the best non-learned system is the reference
    # The positive is never a seen movie: demoting seen ones can only help, search by search.
    assert t.row("popularity, seen demoted").ndcg.mean >= t.row("popularity").ndcg.mean
    assert t.all_searches >= t.searches
    md = outcome.markdown.read_text()
    assert "| popularity, seen demoted | no |" in md and "## Verdict" in md
    payload = json.loads(outcome.json.read_text())
    assert payload["replay"]["data"]["layout"] == ("ml-latest" if layout == "latest"
                                                   else "ml-100k")
    assert {p.name for p in outcome.markdown.parent.glob("*.png")} == {
        "movielens-ndcg.png", "movielens-delta.png"}


def test_hybrid_lightgbm_and_ablations_train_and_the_served_model_builds_the_same_features(
    latest_dir: Path, tmp_path: Path, models_dir: Path
) -> None:
    budget = HybridBudget(seeds=1, epochs=1, batch=16, finetune_steps=2, finetune_lists=4)
    cfg = config(latest_dir, tmp_path, tmp_path / "models", models_dir, kinds=("hybrid",),
                 hybrid=budget, variants=(), zeroshot=False,
                 cache_dir=tmp_path / "cache")
    evaluation = Evaluation(cfg)
    outcome = evaluation.run()
    t = next(t for t in outcome.tables if t.population == FULL and t.segment == "all")
    names = {r.system for r in t.rows}
    assert {"hybrid", "LightGBM LambdaMART", "hybrid (seed 0, torch)",
            "hybrid without text (seed 0)", "hybrid without features (seed 0)",
            "hybrid without history (seed 0)",
            "hybrid without fine-tuning (seed 0)"} <= names
    assert t.row("hybrid").learned and not t.row("hybrid").diagnostic
    assert t.row("hybrid (seed 0, torch)").diagnostic
    equal = outcome.meta["served_features_equal"]
    assert equal["equal"] == equal["searches"] == t.searches
    md = outcome.markdown.read_text()
    assert "## Learned rankers" in md and "Seeds and ablations" in md
    assert (outcome.markdown.parent / "movielens-training.png").is_file()
    assert list((tmp_path / "cache").glob("texts-*.npz"))  # embeddings cached for reruns


def test_learned_embed_trains_on_the_training_period_and_is_reused(
    latest_dir: Path, tmp_path: Path, models_dir: Path
) -> None:
    budget = Budget(embed_steps=8, embed_lists_per_step=4)
    cfg = config(latest_dir, tmp_path, tmp_path / "models", models_dir, kinds=("embed",),
                 budget=budget, variants=(), cross_searches=5)
    first = Evaluation(cfg)
    outcome = first.run()
    t = next(t for t in outcome.tables if t.population == FULL and t.segment == "all")
    assert {"embed", "embed (no history)", "embed + seen demoted (diagnostic)"} <= {
        r.system for r in t.rows}
    assert all(not x.reused for x in first.trained)
    assert [x.history for x in first.trained] == [True, False]
    versions = {x.version for x in first.trained}
    assert len(versions) == 2 and all(v.startswith("embed-") for v in versions)
    assert (outcome.markdown.parent / "movielens-training.png").is_file()
    assert "trained in this run" in outcome.markdown.read_text()
    assert {x.variant for x in first.trained} == {"fp32"}  # no int8 exported here
    # Same lists and budget: the exported versions are reused, not trained again.
    again = Evaluation(cfg)
    again.run()
    assert all(x.reused for x in again.trained)
    assert {x.version for x in again.trained} == versions
