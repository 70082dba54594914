"""Item statistics: counts, the decay (the one definition), order independence, storage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from state.item_stats import DAY_MS, LAYOUT, ItemStatsLayout, apply, read


def test_counts_per_action_and_first_last() -> None:
    v = apply(None, "click", 1_000)
    v = apply(v, "purchase", 3_000)
    v = apply(v, "click", 2_000)
    r = read(v, 3_000)
    assert r.known[0]
    assert dict(zip(r.actions, r.counts[0], strict=True)) == {
        "view": 0, "click": 2, "add_to_cart": 0, "purchase": 1}
    assert (r.first_ts[0], r.last_ts[0]) == (1_000, 3_000)


def test_decay_is_exponential_with_the_window_as_time_constant() -> None:
    v = apply(None, "click", 0)
    r = read(v, DAY_MS)
    click = r.actions.index("click")
    assert r.decayed[0, 0, click] == pytest.approx(math.exp(-1))  # 1 day window
    assert r.decayed[0, 1, click] == pytest.approx(math.exp(-1 / 7))
    assert r.decayed[0, 2, click] == pytest.approx(math.exp(-1 / 30))


def test_arrival_order_does_not_matter() -> None:
    events = [("click", 5 * DAY_MS), ("purchase", DAY_MS), ("click", 3 * DAY_MS)]
    forward = None
    for action, ts in events:
        forward = apply(forward, action, ts)
    backward = None
    for action, ts in reversed(events):
        backward = apply(backward, action, ts)
    a, b = read(forward, 6 * DAY_MS), read(backward, 6 * DAY_MS)
    assert np.allclose(a.decayed, b.decayed) and np.array_equal(a.counts, b.counts)
    assert (a.first_ts[0], a.last_ts[0]) == (b.first_ts[0], b.last_ts[0]) == (DAY_MS, 5 * DAY_MS)


def test_reading_before_as_of_does_not_extrapolate() -> None:
    v = apply(None, "view", 10 * DAY_MS)
    assert read(v, 0).decayed[0, 0, 0] == pytest.approx(1.0)


def test_apply_leaves_the_input_untouched() -> None:
    v = apply(None, "click", 0)
    before = v.copy()
    apply(v, "click", 1)
    assert np.array_equal(v, before)


def test_read_many_marks_unknown_items() -> None:
    r = LAYOUT.read_many([None, apply(None, "click", 0)], 0)
    assert list(r.known) == [False, True]
    assert r.counts[0].sum() == 0 and len(r) == 2


def test_bytes_round_trip_and_layout_check() -> None:
    v = apply(apply(None, "click", 5), "purchase", 7)
    assert np.array_equal(LAYOUT.from_bytes(LAYOUT.to_bytes(v)), v)
    other = ItemStatsLayout(windows_ms=(DAY_MS,))
    with pytest.raises(ValueError):
        other.from_bytes(LAYOUT.to_bytes(v))


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError):
        ItemStatsLayout(actions=("click",)).apply(None, "purchase", 0)
