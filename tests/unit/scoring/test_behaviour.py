"""The behaviour feature builder on hand-made event sequences: every feature group."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contracts.ids import ACTION_CODES, item_hash
from scoring.behaviour import BehaviourInputs, build
from scoring.behaviour_spec import BehaviourSpec
from scoring.neighbours import Neighbours
from state import InteractionStore, MemoryKV
from state.item_stats import DAY_MS, LAYOUT

HOUR = 3_600_000
SPEC = BehaviourSpec(recent_items=2)
NOW = 10 * DAY_MS


def col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, SPEC.index(name)]


def inputs(items: list[str], store: InteractionStore | None = None, stats=None,  # type: ignore[no-untyped-def]
           scores=None, attributes=None, values=None, now: int = NOW) -> BehaviourInputs:
    c = len(items)
    return BehaviourInputs(
        now=now, query="q", item_ids=items, positions=list(range(c)),
        retrieval_scores=scores if scores is not None else [float(c - i) for i in range(c)],
        attributes=attributes if attributes is not None else [None] * c,
        user=None if store is None else store.columns("u"),
        item_stats=None if stats is None else LAYOUT.read_many([stats.get(i) for i in items], now),
        values=values,
    )


def history(events: list[tuple[str, str, int]], attrs=None, retained: int = 1000):  # type: ignore[no-untyped-def]
    store = InteractionStore(MemoryKV(), retained=retained, buckets=SPEC.buckets)
    for n, (item, action, ts) in enumerate(events):
        store.record("u", f"e{n}", item, action, ts, (attrs or {}).get(item))
    return store


def test_shape_names_and_dtype() -> None:
    x = build(SPEC, inputs(["a", "b", "c"]), Neighbours.empty(4))
    assert x.shape == (3, SPEC.size) and x.dtype == np.float32
    assert len(set(SPEC.names)) == SPEC.size


def test_search_features_keep_the_sites_score_and_position() -> None:
    x = build(SPEC, inputs(["a", "b", "c"], scores=[3.0, None, 1.0]), Neighbours.empty(4))
    assert list(col(x, "retr_score")) == [3.0, 0.0, 1.0]
    assert list(col(x, "retr_has_score")) == [1.0, 0.0, 1.0]
    assert list(col(x, "retr_position")) == [0.0, 1.0, 2.0]
    assert list(col(x, "retr_score_gap")) == [0.0, 0.0, -2.0]


def test_item_statistics_counts_decay_recency_and_rank() -> None:
    stats = {"a": LAYOUT.apply(LAYOUT.apply(None, "click", NOW - DAY_MS), "purchase", NOW - HOUR),
             "b": LAYOUT.apply(None, "view", NOW - 2 * DAY_MS)}
    x = build(SPEC, inputs(["a", "b", "c"], stats=stats), Neighbours.empty(4))
    assert list(col(x, "item_known")) == [1.0, 1.0, 0.0]
    assert col(x, "item_count")[0] == pytest.approx(math.log1p(2))
    assert col(x, "item_count_purchase")[0] == pytest.approx(math.log1p(1))
    assert col(x, "item_count_view")[1] == pytest.approx(math.log1p(1))
    want = math.exp(-1) + math.exp(-1 / 24)  # 1d window: a click a day ago, a purchase 1h ago
    assert col(x, "item_decayed_1d")[0] == pytest.approx(math.log1p(want), rel=1e-5)
    assert col(x, "item_decayed_1d_purchase")[0] == pytest.approx(math.log1p(math.exp(-1 / 24)),
                                                                  rel=1e-5)
    assert col(x, "item_hours_since_last")[0] == pytest.approx(math.log1p(1.0))
    assert col(x, "item_age_days")[0] == pytest.approx(math.log1p(1.0))
    assert list(col(x, "item_popularity_rank")) == [0.0, 1.0, 2.0]
    strength = (ACTION_CODES["click"] + ACTION_CODES["purchase"] + 2.0 * 5) / (2 + 5)
    assert col(x, "item_mean_strength")[0] == pytest.approx(strength)
    assert col(x, "item_hours_since_last")[2] == 0.0


def test_seen_reads_the_whole_retained_set_not_a_recent_window() -> None:
    events = [("old", "purchase", NOW - 5 * DAY_MS)] + [
        (f"n{i}", "click", NOW - DAY_MS + i) for i in range(20)]
    x = build(SPEC, inputs(["old", "n3", "never"], history(events)), Neighbours.empty(4))
    assert list(col(x, "seen")) == [1.0, 1.0, 0.0]
    assert col(x, "seen_action")[0] == ACTION_CODES["purchase"]
    assert col(x, "seen_hours_ago")[0] == pytest.approx(math.log1p(5 * 24))
    assert list(col(x, "seen_count")) == [1.0, 1.0, 0.0]


def test_evicted_items_are_no_longer_seen() -> None:
    store = history([("a", "click", 1), ("b", "click", 2), ("c", "click", 3)], retained=2)
    x = build(SPEC, inputs(["a", "b", "c"], store), Neighbours.empty(4))
    assert list(col(x, "seen")) == [0.0, 1.0, 1.0]


def test_cooccurrence_with_retained_recent_and_liked_items() -> None:
    h = {k: item_hash(k) for k in ("x", "y", "z", "cand", "other")}
    nbrs = Neighbours.from_lists(
        {h["cand"]: [(h["x"], 0.5), (h["y"], 0.25), (h["z"], 0.125)]}, k=4)
    # x purchased long ago; y and z recent (recent_items=2)
    store = history([("x", "purchase", 1), ("y", "click", 5), ("z", "click", 6)])
    x = build(SPEC, inputs(["cand", "other"], store), nbrs)
    assert col(x, "cooc_sum")[0] == pytest.approx(0.875)
    assert col(x, "cooc_mean")[0] == pytest.approx(0.875 / 3)
    assert col(x, "cooc_sum_recent")[0] == pytest.approx(0.375)
    assert col(x, "cooc_max_recent")[0] == pytest.approx(0.25)
    assert col(x, "cooc_sum_liked")[0] == pytest.approx(0.5)
    assert col(x, "cooc_hits")[0] == 3.0
    assert col(x, "cooc_sum")[1] == 0.0


def test_attribute_affinity_overall_recent_and_liked() -> None:
    attrs = {"a": {"genres": ["Comedy"]}, "b": {"genres": ["Drama"]},
             "c": {"genres": ["Comedy", "Drama"]}}
    store = history([("a", "purchase", 1), ("b", "click", 2), ("c", "click", 3)], attrs)
    cands = [{"genres": ["Comedy"]}, {"genres": ["Horror"]}]
    x = build(SPEC, inputs(["p", "q"], store, attributes=cands), Neighbours.empty(4))
    assert col(x, "attr_affinity")[0] == pytest.approx(2 / 3)  # a and c of 3 are comedies
    assert col(x, "attr_affinity_recent")[0] == pytest.approx(1 / 2)  # c of (b, c)
    assert col(x, "attr_affinity_liked")[0] == pytest.approx(1.0)  # a is the one purchase
    assert col(x, "attr_affinity")[1] == 0.0


def test_numeric_value_and_user_activity() -> None:
    store = history([("a", "click", NOW - 2 * HOUR), ("b", "purchase", NOW - HOUR)])
    x = build(SPEC, inputs(["a", "z"], store, values=[1995.0, None]), Neighbours.empty(4))
    assert list(col(x, "item_value")) == [1995.0, 0.0]
    assert list(col(x, "item_value_known")) == [1.0, 0.0]
    assert col(x, "user_events")[0] == pytest.approx(math.log1p(2))
    assert col(x, "user_has_history")[1] == 1.0
    assert col(x, "user_mean_strength")[0] == pytest.approx(
        (ACTION_CODES["click"] + ACTION_CODES["purchase"]) / 2)
    assert col(x, "user_hours_since_last")[0] == pytest.approx(math.log1p(1.0))
    activity = math.exp(-2 / 24) + math.exp(-1 / 24)
    assert col(x, "user_activity_1d")[0] == pytest.approx(math.log1p(activity), rel=1e-5)


def test_a_user_without_state_gets_neutral_user_features() -> None:
    x = build(SPEC, inputs(["a"]), Neighbours.empty(4))
    assert col(x, "user_has_history")[0] == 0.0 and col(x, "seen")[0] == 0.0
    assert col(x, "user_hours_since_last")[0] == -1.0


def test_build_is_deterministic_and_pure() -> None:
    store = history([("a", "click", 1), ("b", "purchase", 2)], {"a": {"c": "x"}})
    stats = {"a": LAYOUT.apply(None, "click", 1)}
    nbrs = Neighbours.from_lists({item_hash("b"): [(item_hash("a"), 1.0)]}, k=2)
    first = build(SPEC, inputs(["a", "b"], store, stats), nbrs)
    again = build(SPEC, inputs(["a", "b"], store, stats), nbrs)
    assert np.array_equal(first, again)
    assert len(store.columns("u")) == 2  # reading changed nothing


def test_inputs_of_mismatched_lengths_or_times_are_refused() -> None:
    with pytest.raises(ValueError):
        BehaviourInputs(now=1, query="", item_ids=["a"], positions=[0, 1],
                        retrieval_scores=[None], attributes=[None])
    with pytest.raises(ValueError):
        BehaviourInputs(now=1, query="", item_ids=["a"], positions=[0], retrieval_scores=[None],
                        attributes=[None], item_stats=LAYOUT.read_many([None], 2))


def test_stats_with_other_windows_are_refused() -> None:
    spec = BehaviourSpec(windows_ms=(DAY_MS,))
    with pytest.raises(ValueError):
        build(spec, inputs(["a"], stats={}), Neighbours.empty(4))
