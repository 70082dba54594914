"""Co-occurrence neighbours from hand-made (user, item) events."""

from __future__ import annotations

import math

import pytest

from contracts.ids import item_hash
from scoring.training.cooccurrence import neighbours_from_events


def weights(n, item: str) -> dict[int, float]:  # type: ignore[no-untyped-def]
    hashes, w = n.padded([item_hash(item)])
    return {int(h): float(x) for h, x in zip(hashes[0], w[0], strict=True) if x > 0}


def test_cosine_with_shrinkage() -> None:
    events = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]
    n = neighbours_from_events(events, k=5, shrink=1.0)
    got = weights(n, "a")
    assert got[item_hash("b")] == pytest.approx(2 / (math.sqrt(3 * 2) + 1))
    assert got[item_hash("c")] == pytest.approx(1 / (math.sqrt(3 * 1) + 1))
    assert item_hash("a") not in got  # never its own neighbour


def test_repeated_pairs_count_once_and_k_bounds_each_row() -> None:
    events = [("u", "a")] * 3 + [("u", x) for x in "bcdef"]
    n = neighbours_from_events(events, k=2, shrink=0.0)
    assert len(weights(n, "a")) == 2
    assert all(w == pytest.approx(1.0) for w in weights(n, "a").values())


def test_heaviest_kept_and_ties_broken_by_hash() -> None:
    events = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c"),
              ("u4", "a"), ("u4", "d")]
    n = neighbours_from_events(events, k=2, shrink=0.0)
    got = weights(n, "a")
    assert item_hash("b") in got  # the heaviest
    assert min(item_hash("c"), item_hash("d")) in got  # the tie goes to the lower hash


def test_no_pairs_gives_empty_neighbours() -> None:
    assert len(neighbours_from_events([("u", "a")], k=3)) == 0
    assert neighbours_from_events([], k=3).edges == 0


def test_max_per_user_keeps_the_most_recent() -> None:
    events = [("u", "old"), ("u", "x"), ("u", "y")]
    n = neighbours_from_events(events, k=5, max_per_user=2)
    assert weights(n, "old") == {}
    assert item_hash("y") in weights(n, "x")
