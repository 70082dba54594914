"""Captured samples → training lists, the time holdout, position propensities, IPS labels."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from contracts import LABELS, TrainingSample
from scoring.quality import ndcg_at
from scoring.training.samples import (
    CapturedList,
    build_lists,
    holdout_split,
    ips_labels,
    list_weight,
    position_propensity,
    read_samples_file,
    with_positive,
    write_samples_file,
)


def sample(
    request: str, item: str, position: int, action: str = "skipped", *, ts: int = 1000,
    user: str = "u1", candidates: int = 3, query: str = "gift",
) -> TrainingSample:
    return TrainingSample(
        sample_id=f"{request}|{item}", request_id=request, user_id=user, ts=ts, query=query,
        history=["Trail running shoes", "gift"], item_id=item, item_text=f"text of {item}",
        label=LABELS[action], action=action,  # type: ignore[arg-type]
        position=position, shown_score=1.0 - position / 10, model_version="zeroshot-x",
        candidates=candidates,
    )


def test_lists_group_by_request_in_shown_order_with_graded_labels() -> None:
    samples = [
        sample("r2", "c", 2, ts=2000),
        sample("r1", "b", 1, "purchase"),
        sample("r1", "a", 0),
        sample("r1", "c", 2, "click"),
        sample("r1", "b", 1, "purchase"),  # a redelivered record
        sample("r2", "a", 0, ts=2000),
        sample("r2", "b", 1, ts=2000),
    ]
    lists, stats = build_lists(samples)
    assert [c.request_id for c in lists] == ["r1", "r2"]  # oldest first
    first = lists[0]
    assert first.ranked.items == (("a", "text of a"), ("b", "text of b"), ("c", "text of c"))
    assert first.ranked.labels == (0.0, 3.0, 1.0)
    assert first.positions == (0, 1, 2)
    assert first.ranked.query == "gift"
    assert first.ranked.history == ("Trail running shoes", "gift")
    assert first.model_version == "zeroshot-x" and first.complete
    assert stats.samples == 7 and stats.duplicates == 1 and stats.lists == 2
    assert stats.without_positive == 1 and stats.partial == 0
    assert [c.request_id for c in with_positive(lists)] == ["r1"]


def test_a_list_missing_some_shown_items_is_counted_partial() -> None:
    lists, stats = build_lists([sample("r1", "a", 0, "click", candidates=3)])
    assert not lists[0].complete and stats.partial == 1


def captured(n: int, *, ts_of: dict[int, int] | None = None) -> list[CapturedList]:
    samples = [
        sample(f"r{k:03d}", "a", 0, "click", ts=(ts_of or {}).get(k, 1000 + k), candidates=1)
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
        for pos, item in enumerate(items):
            click = item in relevant and rng.random() < theta[pos]
            samples.append(sample(f"r{n}", f"i{item}", pos, "click" if click else "skipped",
                                  ts=n, user=user, candidates=len(theta)))
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
    lists, _ = build_lists([sample("r1", "a", 0), sample("r1", "b", 1), sample("r1", "c", 2)])
    assert position_propensity(lists).tolist() == [1.0, 1.0, 1.0]


def test_ips_labels_divide_the_ndcg_gain_by_the_propensity() -> None:
    lists, _ = build_lists([
        sample("r1", "a", 0, "click"), sample("r1", "b", 1), sample("r1", "c", 2, "purchase"),
    ])
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
    samples = [sample("r1", "a", 0, "click"), sample("r1", "b", 1)]
    path = tmp_path / "s" / "samples.jsonl"
    assert write_samples_file(path, samples) == 2
    assert read_samples_file(path) == samples
    path.write_bytes(path.read_bytes() + b'\n{"sample_id": "x"}\n')
    with pytest.raises(ValueError, match=r"samples.jsonl:4: invalid"):
        read_samples_file(path)


def test_a_list_stands_for_as_many_searches_as_its_clicks_were_unlikely_seen() -> None:
    lists, _ = build_lists([
        sample("r1", "a", 0, "click"), sample("r1", "b", 1), sample("r1", "c", 2, "click"),
        sample("r2", "a", 0, ts=2000), sample("r2", "b", 1, ts=2000),
        sample("r2", "c", 2, ts=2000),
    ])
    propensity = np.array([1.0, 0.5, 0.25])
    assert list_weight(lists[0], propensity) == pytest.approx((1.0 + 4.0) / 2)
    assert list_weight(lists[1], propensity) == 1.0  # no positive
    assert list_weight(lists[0], np.ones(0)) == 1.0
