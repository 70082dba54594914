"""The behaviour replay on generated MovieLens data: its features are the worker's features.

A "worker" here applies the same ratings as ActionEvents through the worker's API
(InteractionStore.apply over RocksDB, item statistics by the one layout), restarts halfway
(the database reopened), splits users between two workers sharing the replicated item
statistics, and builds each test search's features with the frozen neighbours: every matrix
must equal the replay's, bit for bit.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from contracts import ActionEvent
from contracts.ids import ACTIONS, item_attributes
from evaluation import movielens
from evaluation.behaviour_replay import BehaviourData, replay_behaviour
from evaluation.protocol import ACTION_OF_GRADE, ProtocolConfig, Replay, grade, replay
from evaluation.rules import demote_seen, pick
from scoring.behaviour import BehaviourInputs, build
from scoring.behaviour_spec import BehaviourSpec
from state import InteractionStore, RocksKV
from state.item_stats import ItemStatsLayout, Vector

SPEC = BehaviourSpec(neighbours=10, retained=1000)


@pytest.fixture(scope="module")
def rep(latest_dir: Path) -> Replay:
    return replay(movielens.load(latest_dir), ProtocolConfig(k=10), progress=False)


@pytest.fixture(scope="module")
def data(rep: Replay) -> BehaviourData:
    return replay_behaviour(rep, SPEC, refresh=50, progress=False)


def test_every_rankable_search_has_features(rep: Replay, data: BehaviourData) -> None:
    rankable = [s for s in (*rep.train, *rep.test) if s.positive is not None]
    assert set(data.features) == {s.index for s in rankable}
    assert all(data.of(s).shape == (len(s.candidates), SPEC.size) for s in rankable)
    assert data.snapshots >= 2 and data.neighbours.edges > 0
    assert set(data.inputs) == {s.index for s in rankable if s.test}


def test_state_features_agree_with_the_protocols_view(rep: Replay, data: BehaviourData) -> None:
    for s in (x for x in rep.test if x.positive is not None):
        x = data.of(s)
        # Nothing is evicted at this size: "seen" is the protocol's exact seen.
        assert list(x[:, SPEC.index("seen")].astype(bool)) == list(s.seen)
        # All-time counts are the retriever's popularity (ratings before the search).
        assert np.allclose(np.expm1(x[:, SPEC.index("item_count")]), s.popularity, atol=1e-3)
        assert list(x[:, SPEC.index("retr_score")]) == pytest.approx(s.retrieval_scores)


def _worker(store_of: dict[int, InteractionStore], layout: ItemStatsLayout,
            stats: dict[str, Vector], rep: Replay, upto: int, start: int = 0) -> None:
    attrs = {m: item_attributes(movie.item()) for m, movie in rep.data.movies.items()}
    for i, r in enumerate(rep.data.ratings[start:upto], start=start):
        event = ActionEvent(event_id=f"ml-{i}", user_id=r.user_id, ts=r.ts * 1000,
                            item_id=r.movie_id, action=ACTION_OF_GRADE[grade(r.rating)])
        owner = store_of[zlib.crc32(r.user_id.encode()) % len(store_of)]
        if owner.apply(event, attrs[r.movie_id]):
            stats[r.movie_id] = layout.apply(stats.get(r.movie_id), event.action, event.ts)


def test_offline_features_equal_two_restarted_workers(
    rep: Replay, data: BehaviourData, tmp_path: Path
) -> None:
    layout = ItemStatsLayout(actions=ACTIONS, windows_ms=SPEC.windows_ms)
    stats: dict[str, Vector] = {}  # the item statistics every worker replicates
    attrs = {m: item_attributes(movie.item()) for m, movie in rep.data.movies.items()}
    dbs = [RocksKV(tmp_path / f"w{k}") for k in range(2)]
    stores = {k: InteractionStore(db, retained=SPEC.retained, buckets=SPEC.buckets)
              for k, db in enumerate(dbs)}
    half = len(rep.data.ratings) // 2
    _worker(stores, layout, stats, rep, half)
    for db in dbs:  # a restart: state survives in RocksDB
        db.close()
    dbs = [RocksKV(tmp_path / f"w{k}") for k in range(2)]
    stores = {k: InteractionStore(db, retained=SPEC.retained, buckets=SPEC.buckets)
              for k, db in enumerate(dbs)}
    _worker(stores, layout, stats, rep, half, start=half - 5)  # at-least-once redelivery
    checked, cursor = 0, half
    for s in sorted((x for x in rep.test if x.positive is not None), key=lambda x: x.index):
        _worker(stores, layout, stats, rep, s.index, start=cursor)  # events before the search
        cursor = s.index
        owner = stores[zlib.crc32(s.user_id.encode()) % 2]
        inputs = BehaviourInputs(
            now=s.ts, query=s.query, item_ids=s.candidates,
            positions=list(range(len(s.candidates))), retrieval_scores=s.retrieval_scores,
            attributes=[attrs[m] for m in s.candidates], user=owner.columns(s.user_id),
            item_stats=layout.read_many([stats.get(m) for m in s.candidates], s.ts))
        assert np.array_equal(build(SPEC, inputs, data.neighbours), data.of(s)), s.index
        checked += 1
    for db in dbs:
        db.close()
    assert checked == len([x for x in rep.test if x.positive is not None]) > 0


def test_rules_pick_one_variant_per_family_on_validation(
    rep: Replay, data: BehaviourData
) -> None:
    validation = [s for s in rep.train if s.positive is not None][-20:]
    rules, figures = pick(data, validation)
    names = [r.name for r in rules]
    assert names[0] == "retriever, seen demoted"
    assert names[1].startswith("recent popularity (") and names[2].startswith("co-occurrence (")
    assert len(figures) == 7 and all(0.0 <= v <= 1.0 for v in figures.values())
    s = next(x for x in rep.test if x.positive is not None and any(x.seen))
    order = np.argsort(-rules[0].score([s])[0], kind="stable")
    seen_last = [bool(s.seen[j]) for j in order]
    assert seen_last == sorted(seen_last)  # every seen candidate below every unseen one


def test_demote_seen_keeps_the_order_within_each_group() -> None:
    out = demote_seen(np.array([3.0, 1.0, 2.0, 0.5]), [True, False, False, True])
    assert list(np.argsort(-out, kind="stable")) == [2, 1, 0, 3]
