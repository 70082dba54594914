"""Captured samples → training lists, the time holdout, position propensities, IPS labels."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from contracts import LABELS, ShownItem, TrainingSample
from scoring.quality import ndcg_at
from scoring.training.samples import (
    CapturedList,
    build_lists,
    holdout_split,
    ips_labels,
    list_weight,
    position_propensity,
    read_samples_file,
    with_features,
    with_positive,
    write_samples_file,
)


def sample(
    request: str, shown: list[tuple[str, str]] | list[str], *, ts: int = 1000,
    user: str = "u1", query: str = "gift", features: list[list[float]] | None = None,
    spec: str | None = None,
) -> TrainingSample:
    """One closed impression: `shown` in shown order, (item, action) or item (skipped)."""
    pairs = [(x, "skipped") if isinstance(x, str) else x for x in shown]
    return TrainingSample(
        request_id=request, user_id=user, ts=ts, query=query,
        history=["Trail running shoes", "gift"], model_version="zeroshot-x",
        feature_spec=spec,
        items=[ShownItem(item_id=item, position=pos, shown_score=1.0 - pos / 10,
                         label=LABELS[action], action=action,  # type: ignore[arg-type]
                         features=features[pos] if features else [])
               for pos, (item, action) in enumerate(pairs)],
    )


def text(item_id: str) -> str:
    return f"text of {item_id}"


def test_one_list_per_sample_in_shown_order_with_graded_labels_and_catalog_texts() -> None:
    samples = [
        sample("r2", ["a", "b", "c"], ts=2000),
        sample("r1", ["a", ("b", "purchase"), ("c", "click")]),
        sample("r1", ["a", ("b", "purchase"), ("c", "click")]),  # a redelivered record
    ]
    lists, stats = build_lists(samples, text)
    assert [c.request_id for c in lists] == ["r1", "r2"]  # oldest first
    first = lists[0]
    assert first.ranked.items == (("a", "text of a"), ("b", "text of b"), ("c", "text of c"))
    assert first.ranked.labels == (0.0, 3.0, 1.0)
    assert first.positions == (0, 1, 2)
    assert first.ranked.query == "gift"
    assert first.ranked.history == ("Trail running shoes", "gift")
    assert first.model_version == "zeroshot-x" and first.features is None
    assert stats.samples == 3 and stats.duplicates == 1 and stats.lists == 2
    assert stats.without_positive == 1 and stats.with_features == 0
    assert [c.request_id for c in with_positive(lists)] == ["r1"]
    # Without a catalog the items are trained on their ids alone (empty texts).
    assert build_lists(samples)[0][0].ranked.items[0] == ("a", "")


def test_logged_features_become_the_lists_matrix_in_shown_order() -> None:
    rows = [[0.5, 1.0], [0.25, -2.0], [3.0, 0.0]]
    lists, stats = build_lists([
        sample("r1", ["a", ("b", "click"), "c"], features=rows, spec="1:aa"),
        sample("r2", ["a", "b"], ts=2000, features=rows[:2], spec="1:bb"),
        sample("r3", ["a"], ts=3000),
    ])
    assert lists[0].features is not None and lists[0].features.dtype == np.float32
    assert lists[0].features.tolist() == rows and lists[0].feature_spec == "1:aa"
    assert lists[2].features is None and lists[2].feature_spec is None
    assert stats.with_features == 2 and stats.feature_specs == {"1:aa": 1, "1:bb": 1}
    assert [c.request_id for c in with_features(lists, "1:bb")] == ["r2"]


def test_a_sample_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="shown order"):
        TrainingSample.model_validate({
            "request_id": "r", "user_id": "u", "ts": 1, "query": "q", "model_version": "m",
            "items": [{"item_id": "a", "position": 1, "shown_score": 0.0, "label": 0.0}]})
    with pytest.raises(ValueError, match="feature_spec"):
        sample("r", ["a"], features=[[1.0]])
    with pytest.raises(ValueError, match="lengths"):
        sample("r", ["a", "b"], features=[[1.0], [1.0, 2.0]], spec="1:x")
    with pytest.raises(ValueError, match="label"):
        TrainingSample(request_id="r", user_id="u", ts=1, query="q", model_version="m",
                       items=[ShownItem(item_id="a", position=0, shown_score=0.0, label=2.0,
                                        action="click")])


def captured(n: int, *, ts_of: dict[int, int] | None = None) -> list[CapturedList]:
    samples = [
        sample(f"r{k:03d}", [("a", "click")], ts=(ts_of or {}).get(k, 1000 + k))
        for k in range(n)
    ]
    return build_lists(samples)[0]


def test_holdout_is_the_most_recent_lists() -> None:
    lists = captured(10)
    random.Random(0).shuffle(lists)
    train, held = holdout_split(lists, 0.3)
    assert [c.ts for c in held] == [1007, 1008, 1009]
    assert max(c.ts for c in train) < min(c.ts for c in held)
    assert len(train) == 7


def test_holdout_never_splits_one_timestamp() -> None:
    # Lists 6..9 share ts 5000: all of them go to the held-out side.
    lists = captured(10, ts_of={k: 5000 for k in range(6, 10)})
    train, held = holdout_split(lists, 0.2)
    assert {c.ts for c in held} == {5000} and len(held) == 4 and len(train) == 6


def test_holdout_refuses_impossible_splits() -> None:
    with pytest.raises(ValueError, match="fraction"):
        holdout_split(captured(5), 1.0)
    with pytest.raises(ValueError, match="too few"):
        holdout_split(captured(2), 0.5, min_holdout=2)


def simulated_clicks(theta: list[float], seed: int = 0) -> list[CapturedList]:
    """Users see items at random positions; click = examined (theta[pos]) and relevant.
    Half the items are relevant to a user; the list order puts relevant ones higher, as a
    good logging model would, which is what biases the plain click-through by position."""
    rng = random.Random(seed)
    samples: list[TrainingSample] = []
    for n in range(1500):
        user = f"u{n % 40}"
        items = rng.sample(range(20), len(theta))
        relevant = {i for i in items if (i + int(user[1:])) % 2 == 0}
        items.sort(key=lambda i: (i not in relevant, rng.random()))  # relevant first, mostly
        if rng.random() < 0.5:
            rng.shuffle(items)
        shown = [(f"i{item}", "click" if item in relevant and rng.random() < theta[pos]
                  else "skipped") for pos, item in enumerate(items)]
        samples.append(sample(f"r{n}", shown, ts=n, user=user))
    return build_lists(samples)[0]


def test_em_recovers_the_examination_curve_that_ctr_by_position_overstates() -> None:
    theta = [0.9, 0.9, 0.9, 0.6, 0.6, 0.3, 0.3, 0.3]
    lists = simulated_clicks(theta)
    truth = np.array(theta) / theta[0]
    em = position_propensity(lists)
    ctr = position_propensity(lists, min_impressions=10**9)  # forces the fallback
    assert np.abs(em - truth).max() < 0.08
    # The logging order puts relevant items first: CTR falls faster than examination.
    assert ctr[-1] < truth[-1] - 0.1
    assert em[0] == 1.0 and np.all(np.diff(em) <= 0) and em.min() >= 0.1


def test_propensity_without_any_click_is_flat() -> None:
    lists, _ = build_lists([sample("r1", ["a", "b", "c"])])
    assert position_propensity(lists).tolist() == [1.0, 1.0, 1.0]


def test_ips_labels_divide_the_ndcg_gain_by_the_propensity() -> None:
    lists, _ = build_lists([sample("r1", [("a", "click"), "b", ("c", "purchase")])])
    propensity = np.array([1.0, 0.5, 0.25])
    labels = ips_labels(lists[0], propensity)
    np.testing.assert_allclose(2.0**labels - 1.0, [1.0, 0.0, 7.0 / 0.25])
    # The purchase shown at the bottom counts more: ranking it below "a" costs more.
    a_first = [1.0, 0.0, 0.5]
    assert ndcg_at(a_first, labels) < ndcg_at(a_first, lists[0].ranked.labels) - 0.05
    assert ips_labels(lists[0], np.ones(0)).tolist() == [1.0, 0.0, 3.0]
    # Positions beyond the estimate take its last value.
    np.testing.assert_allclose(2.0 ** ips_labels(lists[0], np.array([1.0, 0.5])) - 1.0,
                               [1.0, 0.0, 7.0 / 0.5])


def test_samples_file_round_trip_and_errors(tmp_path: Path) -> None:
    samples = [sample("r1", [("a", "click"), "b"], features=[[1.5], [0.1]], spec="1:x"),
               sample("r2", ["b"])]
    path = tmp_path / "s" / "samples.jsonl"
    assert write_samples_file(path, samples) == 2
    assert read_samples_file(path) == samples
    path.write_bytes(path.read_bytes() + b'\n{"request_id": "x"}\n')
    with pytest.raises(ValueError, match=r"samples.jsonl:4: invalid"):
        read_samples_file(path)


def test_a_list_stands_for_as_many_searches_as_its_clicks_were_unlikely_seen() -> None:
    lists, _ = build_lists([
        sample("r1", [("a", "click"), "b", ("c", "click")]),
        sample("r2", ["a", "b", "c"], ts=2000),
    ])
    propensity = np.array([1.0, 0.5, 0.25])
    assert list_weight(lists[0], propensity) == pytest.approx((1.0 + 4.0) / 2)
    assert list_weight(lists[1], propensity) == 1.0  # no positive
    assert list_weight(lists[0], np.ones(0)) == 1.0
