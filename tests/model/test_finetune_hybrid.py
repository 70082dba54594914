"""`streamrank train --kind hybrid` in one process: captured samples with logged features
train a hybrid challenger from a hybrid version (its spec and neighbours kept), the champion
hybrid is scored on the same logged features, and only lists of that spec are used.

The export (minutes on a small CPU) is replaced here by a recorder: what it would export is
checked instead; the base hybrid version itself is exported once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts import ShownItem, TrainingSample
from scoring.behaviour_spec import BehaviourSpec
from scoring.kinds import ModelKind
from scoring.training import finetune as finetune_module
from scoring.training.finetune import Plan, finetune
from streams.tools.simulation import catalog_items, shoppers

TEXTS = {i.item_id: i.text() for i in catalog_items()}
TITLES = {i.item_id: i.title for i in catalog_items()}


def text(item_id: str) -> str:
    return TEXTS.get(item_id, "")


@pytest.fixture(scope="module")
def hybrid_version(models_dir: Path) -> Path:
    from scoring.training.export_ranker import ensure_base_ranker  # torch: test-time only

    return ensure_base_ranker(ModelKind.HYBRID, models_dir)


@pytest.fixture
def registry(models_dir: Path, tmp_path: Path, hybrid_version: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    for name in ("zeroshot-minilm", hybrid_version.name):
        (root / name).symlink_to(models_dir / name)
    return root


def captured(spec_id: str, width: int, users: int = 16, rounds: int = 6,
             seed: int = 0) -> list[TrainingSample]:
    """Searches in the site's order; the logged features make the clicked item findable (a
    'seen'-like column set on it, noise elsewhere), as behaviour would."""
    rng = np.random.default_rng(seed)
    seen = BehaviourSpec().index("seen")
    samples: list[TrainingSample] = []
    history: dict[str, list[str]] = {}
    ts = 1_000_000
    crowd = list(shoppers(users, seed=7 + seed, prefix=f"s{seed}"))
    for _ in range(rounds):
        for shopper in crowd:
            ts += 1000
            search = shopper.search(ts)
            shown = [c.item_id for c in search.candidates]
            clicked = {a.item_id for a in shopper.react(search, shown, ts)}
            features = rng.normal(0.0, 1.0, (len(shown), width)).astype(np.float32)
            features[:, seen] = [1.0 if i in clicked else 0.0 for i in shown]
            hist = history.setdefault(shopper.user_id, [])
            samples.append(TrainingSample(
                request_id=search.request_id, user_id=shopper.user_id, ts=ts,
                query=search.query, history=hist[:10], model_version="hybrid-x",
                feature_spec=spec_id,
                items=[ShownItem(item_id=i, position=p, shown_score=0.0,
                                 label=float(i in clicked),
                                 action="click" if i in clicked else "skipped",
                                 features=features[p].tolist())
                       for p, i in enumerate(shown)]))
            hist[:0] = [TITLES[i] for i in clicked]
    return samples


PLAN = dict(kind=ModelKind.HYBRID, epochs=3, lists_per_step=8, min_train_lists=10,
            min_holdout_lists=5, rounds=200, rule="always")


def test_a_hybrid_challenger_trains_on_the_logged_features_of_its_spec(
    registry: Path, hybrid_version: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = BehaviourSpec()
    exported: list[Any] = []

    def record(plan: Plan, modules: tuple[Any, ...], *args: Any) -> Path:
        exported.append(modules)
        return registry / "hybrid-challenger"

    monkeypatch.setattr(finetune_module, "_export", record)
    ours = captured(spec.id, spec.size)
    other = captured("1:00000000", spec.size, users=4, seed=1)  # another spec: not usable
    out = finetune([*ours, *other], registry / hybrid_version.name, registry,
                   Plan(**PLAN), item_text=text)  # type: ignore[arg-type]
    assert out.promoted and out.parent == hybrid_version.name, out.reason
    assert out.data["feature_spec"] == spec.id
    assert out.data["with_features"] == len(ours) + len(other)
    assert out.data["train_lists"] + out.data["held_out_lists"] <= len(ours)
    # The champion (the same spec) was scored on the logged features, in torch.
    assert out.metrics["champion"]["ndcg@10"]["n"] == out.data["held_out_lists"]
    assert out.train["lists"] == out.data["train_lists"]
    [(start, fit)] = exported
    assert start.spec.id == spec.id and start.version == hybrid_version.name
    assert fit.model.n_features == spec.size
    # The logged features carry the clicks: the challenger finds them, the base does not.
    assert out.metrics["challenger"]["ndcg@10"]["mean"] > out.metrics["champion"][
        "ndcg@10"]["mean"] + 0.1


def test_without_a_hybrid_version_the_run_says_so(registry: Path) -> None:
    spec = BehaviourSpec()
    out = finetune(captured(spec.id, spec.size, rounds=2), registry / "zeroshot-minilm",
                   registry, Plan(**PLAN), item_text=text)  # type: ignore[arg-type]
    assert not out.promoted and out.reason.startswith("no hybrid version to start from")


def test_lists_of_another_spec_are_not_enough_data(
    registry: Path, hybrid_version: Path
) -> None:
    spec = BehaviourSpec()
    out = finetune(captured("1:00000000", spec.size, rounds=2),
                   registry / hybrid_version.name, registry, Plan(**PLAN),  # type: ignore[arg-type]
                   item_text=text)
    assert not out.promoted and "features of spec" in out.reason
