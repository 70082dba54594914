"""Item statistics wiring on hand-made action sequences: one writer per item applies each
source record once (also after a restart from its changelog), every replica converges on
the writer's state whatever the order and repetition of the published records (two
workers), and the replica never goes back to an older state."""

from __future__ import annotations

import itertools
import random

import numpy as np

from contracts import ActionEvent, Item, encode
from contracts.events import Action
from contracts.item_stats import ItemStatsRecord
from state import MemoryKV
from state.item_stats import LAYOUT, ItemStatsLayout
from streams.kafka.connection import KafkaClients
from streams.worker.item_stats_replica import ItemStatsReplica
from streams.worker.item_stats_table import (
    ItemStatsTable,
    layout_id,
    source_headers,
    source_of,
)

DAY = 86_400_000
CLIENTS = KafkaClients.plaintext("127.0.0.1:1")  # never connects: apply() only


def action(n: int, item: str, kind: Action = "click", ts: int = 1_000,
           user: str = "u") -> ActionEvent:
    return ActionEvent(event_id=f"e{n}", user_id=user, ts=ts, item_id=item, action=kind)


def replica() -> ItemStatsReplica:
    return ItemStatsReplica(MemoryKV(), MemoryKV(), clients=CLIENTS, topic="t", max_bytes=1 << 20)


def publish(rep: ItemStatsReplica, records: list[ItemStatsRecord]) -> None:
    for offset, record in enumerate(records):
        rep.apply(0, offset, record.item_id.encode(), encode(record))


def offline(actions: list[ActionEvent]) -> dict[str, np.ndarray]:
    """The statistics a single reader of every action would compute (state/item_stats.py)."""
    out: dict[str, np.ndarray] = {}
    for a in actions:
        out[a.item_id] = LAYOUT.apply(out.get(a.item_id), a.action, a.ts)
    return out


def test_each_action_updates_its_item_and_the_record_says_how_far() -> None:
    table = ItemStatsTable(MemoryKV())
    first = table.apply(action(1, "a", "view", ts=1_000), (0, 10))
    second = table.apply(action(2, "a", "purchase", ts=1_000 + DAY), (1, 3))
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert second.ts == 1_000 + DAY and second.layout == layout_id()
    reading = LAYOUT.read(np.asarray(second.values), 1_000 + DAY)
    counts = dict(zip(reading.actions, reading.counts[0].tolist(), strict=True))
    assert counts == {"view": 1.0, "click": 0.0, "add_to_cart": 0.0, "purchase": 1.0}
    assert reading.first_ts[0] == 1_000 and reading.last_ts[0] == 1_000 + DAY


def test_a_source_record_read_again_is_not_counted_again_even_after_a_restart() -> None:
    kv = MemoryKV()
    table = ItemStatsTable(kv)
    assert table.apply(action(1, "a"), (0, 5)) is not None
    assert table.apply(action(1, "a"), (0, 5)) is None  # the same record again
    # A restart: the table comes back from its changelog (the same bytes), and the worker
    # reads the item-actions partition again from its last committed offset.
    restarted = ItemStatsTable(MemoryKV(dict(kv)))
    assert restarted.apply(action(1, "a"), (0, 5)) is None
    assert restarted.apply(action(2, "a"), (0, 4)) is None  # older than what was applied
    assert restarted.apply(action(3, "a"), (1, 2)) is not None  # another action partition
    state = restarted.get("a")
    assert state is not None and state.seq == 2 and state.sources == {0: 5, 1: 2}


def test_the_site_sending_an_action_twice_counts_once() -> None:
    table = ItemStatsTable(MemoryKV())
    assert table.apply(action(7, "a"), (0, 1)) is not None
    assert table.apply(action(7, "a"), (0, 2)) is None  # same event_id, a new offset
    assert table.apply(action(7, "a"), None) is None  # or no source at all


def test_source_headers_round_trip_and_bad_headers_mean_no_source() -> None:
    assert source_of(source_headers(3, 1234)) == (3, 1234)
    assert source_of(dict(source_headers(1, 2))) == (1, 2)
    assert source_of(None) is None and source_of([]) is None
    assert source_of([("streamrank.source.partition", b"x")]) is None


def test_two_writers_and_two_replicas_converge_whatever_the_order() -> None:
    rng = random.Random(5)
    items = [f"i{k}" for k in range(6)]
    actions = [action(n, rng.choice(items), rng.choice(["view", "click", "purchase"]),
                      ts=1_000 + n * 3_600_000) for n in range(120)]
    # Two workers own different item partitions: each is the only writer of its items.
    owner = {item: k % 2 for k, item in enumerate(items)}
    tables = [ItemStatsTable(MemoryKV()), ItemStatsTable(MemoryKV())]
    published: list[list[ItemStatsRecord]] = [[], []]
    for offset, a in enumerate(actions):
        record = tables[owner[a.item_id]].apply(a, (0, offset))
        assert record is not None
        published[owner[a.item_id]].append(record)
    # Each replica reads both workers' records interleaved its own way, some twice (a
    # restart re-reads a tail), and keeps the newest per item.
    first, second = replica(), replica()
    publish(first, [*published[0], *published[1]])
    mixed = [r for pair in itertools.zip_longest(*published) for r in pair if r is not None]
    publish(second, mixed + mixed[-10:])
    want = offline(actions)
    for item in items:
        a, b = first.vector(item), second.vector(item)
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, want[item])
        np.testing.assert_array_equal(b, want[item])
        assert first.seq(item) == second.seq(item) == sum(x.item_id == item for x in actions)


def test_the_replica_never_goes_back_to_an_older_state() -> None:
    table = ItemStatsTable(MemoryKV())
    old = table.apply(action(1, "a"), (0, 1))
    new = table.apply(action(2, "a", "purchase"), (0, 2))
    assert old is not None and new is not None
    rep = replica()
    publish(rep, [new, old])  # a late record of a previous owner
    assert rep.seq("a") == 2
    np.testing.assert_array_equal(rep.vector("a"), np.asarray(new.values))
    assert rep.stored_offset(0) == 2


def test_the_replica_skips_what_it_cannot_use_and_honours_tombstones() -> None:
    rep = replica()
    record = ItemStatsTable(MemoryKV()).apply(action(1, "a"), None)
    assert record is not None
    rep.apply(0, 0, b"a", encode(record))
    rep.apply(0, 1, b"b", encode(record))  # keyed by another item: refused
    rep.apply(0, 2, b"a", b"{not json")
    rep.apply(0, 3, b"a", encode(Item(item_id="a", title="not stats")))
    other = ItemStatsTable(MemoryKV(), ItemStatsLayout(windows_ms=(DAY,))).apply(
        action(2, "c"), None)
    assert other is not None
    rep.apply(0, 4, b"c", encode(other))  # another layout: not readable here
    assert rep.skipped == 3 and rep.other_layout == 1
    assert rep.vector("c") is None and rep.vector("a") is not None
    rep.apply(0, 5, b"a", None)  # a tombstone
    assert rep.vector("a") is None and rep.stored_offset(0) == 6


def test_reading_gives_the_decayed_statistics_at_the_search_time() -> None:
    table = ItemStatsTable(MemoryKV())
    record = table.apply(action(1, "a", "click", ts=0), None)
    assert record is not None
    rep = replica()
    publish(rep, [record])
    reading = rep.read(["a", "never-seen"], now=DAY)
    assert reading.known.tolist() == [True, False]
    # One day later a 1-day window holds exp(-1) of the click.
    assert abs(float(reading.decayed[0, 0, 1]) - np.exp(-1.0)) < 1e-12
    assert reading.counts[1].sum() == 0
