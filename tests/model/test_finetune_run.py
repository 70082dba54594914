"""One fine-tune run on simulated captured samples, tiny budget: its outcome and report.

The export (minutes on a small CPU) is covered by tests/integration/test_learning_loop.py;
here a run either keeps the champion, or is promoted and then refused by a failing gate."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from contracts import ShownItem, TrainingSample
from scoring.training import finetune as finetune_module
from scoring.training.finetune import Plan, finetune
from scoring.training.parity import ParityError
from scoring.training.report import read_history, write_report
from streams.tools.simulation import catalog_items, shoppers

TEXTS = {i.item_id: i.text() for i in catalog_items()}
TITLES = {i.item_id: i.title for i in catalog_items()}


def captured(users: int = 12, rounds: int = 6) -> list[TrainingSample]:
    """What the worker would capture if it showed candidates in the site's order."""
    samples: list[TrainingSample] = []
    history: dict[str, list[str]] = {}
    ts = 1_000_000
    crowd = list(shoppers(users, seed=3))
    for _ in range(rounds):
        for shopper in crowd:
            ts += 1000
            search = shopper.search(ts)
            shown = [c.item_id for c in search.candidates]
            clicked = {a.item_id for a in shopper.react(search, shown, ts)}
            hist = history.setdefault(shopper.user_id, [])
            samples.append(TrainingSample(
                request_id=search.request_id, user_id=shopper.user_id, ts=ts,
                query=search.query, history=hist[:10], model_version="site-order",
                items=[ShownItem(item_id=item, position=pos, shown_score=0.0,
                                 label=float(item in clicked),
                                 action="click" if item in clicked else "skipped")
                       for pos, item in enumerate(shown)],
            ))
            hist[:0] = [TITLES[i] for i in clicked]
    random.Random(0).shuffle(samples)  # partitions interleave on the topic
    return samples


SAMPLES = captured()


def text(item_id: str) -> str:
    """The catalog's text of an item (samples name items by id)."""
    return TEXTS.get(item_id, "")
TINY = Plan(steps=12, lists_per_step=8, min_train_lists=10, min_holdout_lists=5, rounds=200)


@pytest.fixture
def registry(models_dir: Path, tmp_path: Path) -> Path:
    """A registry holding only the zero-shot model (a link to the session's export)."""
    root = tmp_path / "models"
    root.mkdir()
    (root / "zeroshot-minilm").symlink_to(models_dir / "zeroshot-minilm")
    return root


def test_a_run_that_does_not_win_keeps_the_champion_and_says_why(
    registry: Path, tmp_path: Path
) -> None:
    plan = Plan(**{**TINY.__dict__, "min_delta": 5.0})  # no gain can clear it
    out = finetune(SAMPLES, registry / "zeroshot-minilm", registry, plan, item_text=text)
    assert not out.promoted and out.challenger is None and out.path is None
    assert out.champion.startswith("zeroshot-minilm-")
    assert "includes 5" in out.reason or "worse" in out.reason
    assert out.data["lists"] == 72 and out.data["duplicates"] == 0
    assert out.data["train_lists"] + out.data["held_out_lists"] <= 72
    assert set(out.metrics) == {"champion", "challenger"}
    assert out.metrics["champion"]["ndcg@10"]["n"] == out.data["held_out_lists"]
    assert len(out.loss_curve) == 12 and out.train["steps"] == 12
    assert [p.name for p in registry.iterdir()] == ["zeroshot-minilm"]  # nothing installed

    folder = write_report(tmp_path / "reports", out, "streamrank train --steps 12")
    report = (folder / "report.md").read_text()
    assert "**not promoted**" in report and "| ndcg@10 |" in report
    assert "streamrank train --steps 12" in report
    assert (folder / "loss.png").stat().st_size > 0 and (folder / "metrics.png").is_file()
    assert json.loads((folder / "outcome.json").read_text())["promoted"] is False
    second = write_report(tmp_path / "reports", out)
    assert second != folder  # same second, own folder
    assert [r["champion"] for r in read_history(tmp_path / "reports")] == [out.champion] * 2


def test_a_winner_refused_by_the_export_gate_is_not_promoted(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> Path:
        raise ParityError("export refused: fp32 graphs disagree with torch")

    monkeypatch.setattr(finetune_module, "_export", refuse)
    plan = Plan(**{**TINY.__dict__, "rule": "always"})
    out = finetune(SAMPLES, registry / "zeroshot-minilm", registry, plan, item_text=text)
    assert not out.promoted and out.path is None
    assert out.reason.startswith("won the duel but the export was refused")
    assert out.decision is not None and out.decision["promote"]


def test_too_little_data_is_a_reason_not_an_error(registry: Path) -> None:
    out = finetune(SAMPLES[:6], registry / "zeroshot-minilm", registry, TINY, item_text=text)
    assert not out.promoted and out.reason.startswith("not enough data")
    assert not out.metrics and not out.loss_curve
