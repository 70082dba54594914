"""Training lists: JSONL round trip, validation, and learnable synthetic lists."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from scoring.training.data import (
    QUERIES,
    TrainingList,
    department_of,
    item_grade,
    read_lists,
    synthetic_lists,
    write_lists,
)


def evaluate_ndcg(scores: list[float], labels: tuple[float, ...], k: int = 10) -> float:
    # Independent of train.evaluate on purpose: the data tests must not rely on the trainer.
    gains = 2.0 ** np.asarray(labels) - 1.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    disc = 1.0 / np.log2(np.arange(2, min(k, len(labels)) + 2))
    return float((gains[order[:k]] * disc).sum() / (np.sort(gains)[::-1][:k] * disc).sum())


def oracle(lst: TrainingList) -> list[float]:
    """The liked department is the history's most common one; then the better tier first."""
    liked = Counter(department_of(t) for t in lst.history).most_common(1)[0][0]
    return [10.0 * (department_of(t) == liked) + item_grade(t) for t in lst.texts]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    lists = [
        TrainingList("tente", ("Crème brûlée torch", ""), (("a", "x"), ("b", "ü")), (0.0, 3.0)),
        TrainingList("q", (), (("c", ""),), (1.0,)),
    ]
    path = tmp_path / "lists.jsonl"
    assert write_lists(path, lists) == 2
    assert read_lists(path) == lists
    assert [p.name for p in tmp_path.iterdir()] == ["lists.jsonl"]  # no temp file left
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["history"][1] == ""


def test_invalid_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="2 items but 1 labels"):
        TrainingList("q", (), (("a", "x"), ("b", "y")), (1.0,))
    with pytest.raises(ValueError, match=">= 0"):
        TrainingList("q", (), (("a", "x"),), (-1.0,))
    with pytest.raises(ValueError, match=">= 0"):
        TrainingList("q", (), (("a", "x"),), (float("nan"),))
    with pytest.raises(ValueError, match="at least one candidate"):
        TrainingList("q", (), (), ())


def test_reading_skips_lists_without_positive_and_names_bad_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = TrainingList("q", ("h",), (("a", "x"), ("b", "y")), (0.0, 2.0))
    none = TrainingList("q", ("h",), (("a", "x"),), (0.0,))
    path = tmp_path / "lists.jsonl"
    write_lists(path, [none, good, none])
    with caplog.at_level(logging.INFO, logger="scoring.training.data"):
        assert read_lists(path) == [good]
    assert "skipped 2 lists without any positive" in caplog.text
    assert read_lists(path, require_positive=False) == [none, good, none]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n")  # blank lines are fine
        fh.write(json.dumps({"query": "q", "items": [["a", "x"]], "labels": [1, 2]}) + "\n")
    with pytest.raises(ValueError, match=r"lists\.jsonl:5: 1 items but 2 labels"):
        read_lists(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r":1:"):
        read_lists(path)


def test_synthetic_lists_are_deterministic_and_shaped() -> None:
    lists = synthetic_lists(30, seed=7, candidates=12, history=4)
    assert lists == synthetic_lists(30, seed=7, candidates=12, history=4)
    assert lists != synthetic_lists(30, seed=8, candidates=12, history=4)
    for lst in lists:
        assert len(lst.items) == 12 and len(lst.history) == 4
        assert lst.query in QUERIES  # generic: only the history tells what the user likes
        assert len({item_id for item_id, _ in lst.items}) == 12
        assert lst.positives >= 1 and set(lst.labels) <= {0.0, 1.0, 2.0, 3.0}
        assert all(department_of(t) is not None for t in (*lst.texts, *lst.history))


def test_synthetic_lists_are_learnable_from_history_only() -> None:
    lists = synthetic_lists(200, seed=3)
    perfect = np.mean([evaluate_ndcg(oracle(lst), lst.labels) for lst in lists])
    assert perfect > 0.99
    # Without the history (tier only) the lists are far from solved.
    tier_only = np.mean([evaluate_ndcg([item_grade(t) for t in x.texts], x.labels) for x in lists])
    assert tier_only < 0.6
