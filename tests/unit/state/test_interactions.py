"""The retained interaction set: hand-made action sequences over both stores."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import ActionEvent
from contracts.ids import ACTION_CODES, attribute_mask, item_hash
from state import InteractionStore, KeyValue
from state.interactions import UserColumns, mask_bits, mask_words


def act(n: int, item: str, action: str = "click", ts: int | None = None,
        user: str = "u1") -> ActionEvent:
    return ActionEvent(event_id=f"e{n}", user_id=user, ts=n * 1000 if ts is None else ts,
                       item_id=item, action=action)  # type: ignore[arg-type]


def row(cols: UserColumns, item: str) -> int:
    found, rows = cols.lookup([item_hash(item)])
    assert found[0], item
    return int(rows[0])


def test_unknown_user_is_empty(kv: KeyValue) -> None:
    cols = InteractionStore(kv).columns("nobody")
    assert len(cols) == 0 and cols.events == 0
    assert not cols.lookup([item_hash("a")])[0].any()


def test_counts_strongest_action_and_last_ts(kv: KeyValue) -> None:
    store = InteractionStore(kv)
    store.apply(act(1, "a", "purchase", ts=5_000))
    store.apply(act(2, "a", "click", ts=9_000))
    store.apply(act(3, "b", "view", ts=7_000))
    cols = store.columns("u1")
    a, b = row(cols, "a"), row(cols, "b")
    assert (cols.counts[a], cols.actions[a], cols.item_last_ts[a]) == (
        2, ACTION_CODES["purchase"], 9_000)
    assert (cols.counts[b], cols.actions[b]) == (1, ACTION_CODES["view"])
    assert list(cols.hashes) == sorted(cols.hashes)
    assert cols.events == 3 and cols.last_ts == 9_000 and cols.first_ts == 5_000
    assert cols.strength_sum == ACTION_CODES["purchase"] + ACTION_CODES["click"] + 1


def test_a_replayed_action_is_not_applied_twice(kv: KeyValue) -> None:
    store = InteractionStore(kv, ring=4)
    assert store.apply(act(1, "a"))
    before = kv["u1"]
    assert store.apply(act(1, "a")) is False
    assert kv["u1"] == before
    assert store.columns("u1").counts[0] == 1


def test_the_ring_remembers_only_the_last_events(kv: KeyValue) -> None:
    store = InteractionStore(kv, ring=2)
    for n in range(3):
        store.apply(act(n, f"i{n}"))
    assert store.apply(act(2, "i2")) is False  # still in the ring
    assert store.apply(act(0, "i0")) is True  # fell out: documented limit of the ring


def test_least_recently_touched_item_is_evicted(kv: KeyValue) -> None:
    store = InteractionStore(kv, retained=3)
    store.apply(act(1, "a", ts=1_000))
    store.apply(act(2, "b", ts=2_000))
    store.apply(act(3, "c", ts=3_000))
    store.apply(act(4, "a", ts=4_000))  # touches a: b is now the oldest
    store.apply(act(5, "d", ts=5_000))
    cols = store.columns("u1")
    assert len(cols) == 3
    found, _ = cols.lookup([item_hash(x) for x in "abcd"])
    assert list(found) == [True, False, True, True]
    assert cols.events == 5  # aggregates count every action, evicted or not


def test_attribute_counts_follow_inserts_evictions_and_likes(kv: KeyValue) -> None:
    store = InteractionStore(kv, retained=2, buckets=128)
    comedy = {"genres": ["Comedy"]}
    drama = {"genres": ["Drama", "Comedy"]}
    store.apply(act(1, "a"), comedy)
    store.apply(act(2, "b", "purchase"), drama)
    cols = store.columns("u1")
    bits_c = mask_bits(mask_words(attribute_mask(comedy, 128), 128), 128).astype(np.int32)
    bits_d = mask_bits(mask_words(attribute_mask(drama, 128), 128), 128).astype(np.int32)
    assert np.array_equal(cols.attr_counts, bits_c + bits_d)
    assert np.array_equal(cols.attr_liked, bits_d)
    store.apply(act(3, "c"), None)  # evicts a (oldest)
    cols = store.columns("u1")
    assert np.array_equal(cols.attr_counts, bits_d)
    store.apply(act(4, "c", "purchase"), comedy)  # c now liked, with attributes
    cols = store.columns("u1")
    assert np.array_equal(cols.attr_liked, bits_d + bits_c)
    # counts always equal the sum of the retained rows' masks
    assert np.array_equal(cols.attr_counts, mask_bits(cols.attr_masks, 128).sum(0))


def test_activity_decays_over_a_day(kv: KeyValue) -> None:
    store = InteractionStore(kv)
    store.apply(act(1, "a", ts=0))
    store.apply(act(2, "b", ts=0))
    cols = store.columns("u1")
    assert cols.activity_at(0) == pytest.approx(2.0)
    assert cols.activity_at(86_400_000) == pytest.approx(2.0 / np.e)


def test_late_action_does_not_move_last_ts_back(kv: KeyValue) -> None:
    store = InteractionStore(kv)
    store.apply(act(1, "a", ts=10_000))
    store.apply(act(2, "a", ts=4_000))
    cols = store.columns("u1")
    assert cols.item_last_ts[0] == 10_000 and cols.first_ts == 4_000


def test_users_are_independent(kv: KeyValue) -> None:
    store = InteractionStore(kv)
    store.apply(act(1, "a", user="x"))
    store.apply(act(2, "b", user="y"))
    assert len(store.columns("x")) == 1 and len(store.columns("y")) == 1
    assert row(store.columns("y"), "b") == 0


def test_record_survives_reopening_the_database(reopen) -> None:  # type: ignore[no-untyped-def]
    first = reopen()
    store = InteractionStore(first, ring=8)
    store.apply(act(1, "a", "add_to_cart"), {"category": "Shoes"})
    first.close()
    again = InteractionStore(reopen(), ring=8)
    cols = again.columns("u1")
    assert cols.actions[row(cols, "a")] == ACTION_CODES["add_to_cart"]
    assert again.apply(act(1, "a")) is False  # the dedup ring survived too


def test_invalid_configuration_is_refused(kv: KeyValue) -> None:
    with pytest.raises(ValueError):
        InteractionStore(kv, retained=0)
    with pytest.raises(ValueError):
        InteractionStore(kv, buckets=100)
