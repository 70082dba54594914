"""ImpressionStore over both stores: recording, attribution, closing windows, retiring."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import (
    LABELS,
    ActionEvent,
    Candidate,
    RankedItem,
    RankedResult,
    SearchEvent,
    TrainingSample,
    decode,
    encode,
)
from contracts.events import Action
from state import DueWheel, Impression, ImpressionStore, KeyValue, RocksKV

WINDOW = 10_000
TTL = 60_000
T0 = 1_700_000_000_000  # worker clock when the first search is received


def store(kv: KeyValue, **kw: int) -> ImpressionStore:
    return ImpressionStore(kv, window_ms=WINDOW, ttl_ms=TTL, clock=lambda: T0, **kw)


def show(st: ImpressionStore, rid: str, items: list[str], *, user: str = "u", ts: int = 100,
         received: int = T0, partition: int = 0, features: np.ndarray | None = None,
         spec: str = "") -> RankedResult:
    search = SearchEvent(event_id=f"e-{rid}", request_id=rid, user_id=user, ts=ts,
                         query=f"q {rid}", candidates=[Candidate(item_id=i) for i in items])
    result = RankedResult(
        request_id=rid, user_id=user, model_version="m1", received_ts=received,
        published_ts=received + 5,
        items=[RankedItem(item_id=i, score=10.0 - n, rank=n + 1) for n, i in enumerate(items)],
    )
    st.record(search, result, ["a title", "a query"], partition, features, spec)
    return result


def act(st: ImpressionStore, item: str, action: Action, *, rid: str | None = "r1",
        user: str = "u", ts: int = 200, n: int = 0) -> str:
    event = ActionEvent(event_id=f"a{n}-{item}-{action}", user_id=user, ts=ts, item_id=item,
                        action=action, request_id=rid)
    return st.attribute(event, 0)


def close_all(st: ImpressionStore, at: int, partition: int = 0) -> dict[str, dict[str, str]]:
    """Close what is due at `at`; {request_id: {item_id: action}} of the samples."""
    closing = st.close_due(partition, at)
    out = {imp.request_id: {s.item_id: s.action for s in imp.sample().items}
           for imp in closing.impressions}
    st.finish(closing, checkpoint=None)
    return out


def test_the_sample_carries_the_ranking_as_shown_and_graded_labels(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a", "b", "c", "d"])
    assert act(st, "b", "click") == "attributed"
    assert act(st, "c", "click", n=1) == "attributed"
    assert act(st, "c", "add_to_cart", n=2) == "attributed"
    assert act(st, "d", "purchase", n=3) == "attributed"
    assert act(st, "d", "click", n=4) == "repeated"  # weaker than the purchase: kept
    assert act(st, "a", "view") == "not_a_label"
    closing = st.close_due(0, T0 + WINDOW + 1000)
    [imp] = closing.impressions
    sample = imp.sample()
    assert decode(encode(sample), TrainingSample) == sample  # valid as written
    assert [(s.item_id, s.position, s.action, s.label) for s in sample.items] == [
        ("a", 0, "skipped", 0.0), ("b", 1, "click", 1.0), ("c", 2, "add_to_cart", 2.0),
        ("d", 3, "purchase", 3.0),
    ]
    assert (sample.request_id, sample.user_id, sample.ts, sample.query) == (
        "r1", "u", 100, "q r1")
    assert sample.history == ["a title", "a query"]  # once, not per item
    assert [s.shown_score for s in sample.items] == [10.0, 9.0, 8.0, 7.0]
    assert sample.model_version == "m1"
    assert sample.feature_spec is None and all(s.features == [] for s in sample.items)
    assert {s.label for s in sample.items} == set(LABELS.values())


def test_the_logged_features_reach_the_sample_exactly(kv: KeyValue) -> None:
    st = store(kv)
    rng = np.random.default_rng(3)
    # Rows in shown order, with values float32 cannot hold as short decimals.
    features = (rng.standard_normal((3, 5)) * 10.0 ** rng.integers(-6, 6, (3, 5))).astype(
        np.float32)
    features[0, 0] = 0.0
    show(st, "r1", ["a", "b", "c"], features=features, spec="1:abcd")
    [imp] = st.close_due(0, T0 + WINDOW + 1000).impressions
    sample = decode(encode(imp.sample()), TrainingSample)  # through the wire format
    assert sample.feature_spec == "1:abcd"
    logged = np.asarray([s.features for s in sample.items], dtype=np.float32)
    assert logged.view(np.int32).tolist() == features.view(np.int32).tolist()  # bit for bit


def test_features_must_match_the_shown_items(kv: KeyValue) -> None:
    st = store(kv)
    with pytest.raises(ValueError, match="shape"):
        show(st, "r1", ["a", "b"], features=np.zeros((3, 4), np.float32), spec="1:x")
    with pytest.raises(ValueError, match="finite"):
        show(st, "r2", ["a"], features=np.full((1, 2), np.nan, np.float32), spec="1:x")


def test_an_impression_kept_before_features_existed_still_reads() -> None:
    old = (b'{"request_id":"r","user_id":"u","ts":1,"received_ts":2,"close_at":3,'
           b'"query":"q","history":[],"model_version":"m","items":[["a",1.0]],'
           b'"labels":{},"closed":false}')
    imp = Impression.from_bytes(old)
    assert imp.feature_matrix() is None and imp.sample().items[0].features == []


def test_window_closes_only_after_its_time_and_freezes_labels(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a", "b"])
    assert close_all(st, T0 + WINDOW - 1) == {}
    closing = st.close_due(0, T0 + WINDOW + 1000)
    assert [i.request_id for i in closing.impressions] == ["r1"]
    assert act(st, "a", "purchase") == "late"  # closed, being emitted
    st.finish(closing, checkpoint=7)
    assert act(st, "a", "purchase") == "late"  # emitted: remembered for the TTL
    assert st.checkpoint(0) == 7
    assert close_all(st, T0 + 5 * WINDOW) == {}  # never closes twice
    assert st.open("u") == []


def test_a_crash_before_finish_closes_the_same_impressions_again(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a", "b"])
    act(st, "a", "click")
    st.close_due(0, T0 + WINDOW + 1000)  # closed, then the worker dies before emitting
    again = store(kv).close_due(0, T0 + WINDOW + 2000)
    assert [(i.request_id, i.labels, i.closed) for i in again.impressions] == [
        ("r1", {"a": "click"}, True)]


def test_emissions_found_on_the_topic_retire_their_impressions(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a"])
    show(st, "r2", ["a"])
    assert st.mark_emitted(0, [("u", "r1"), ("u", "r1"), ("u", "gone")], checkpoint=42) == 1
    assert st.checkpoint(0) == 42
    assert list(close_all(st, T0 + WINDOW + 1000)) == ["r2"]


def test_action_without_request_goes_to_the_latest_impression_that_showed_it(
    kv: KeyValue,
) -> None:
    st = store(kv)
    show(st, "old", ["a", "b"], ts=100)
    show(st, "new", ["a", "c"], ts=300)
    show(st, "later", ["a"], ts=900)  # shown after the action below
    assert act(st, "a", "click", rid=None, ts=500) == "attributed"
    assert act(st, "b", "click", rid=None, ts=500, n=1) == "attributed"
    assert act(st, "zzz", "click", rid=None, ts=500) == "unmatched"
    assert act(st, "b", "purchase", rid=None, ts=100 + WINDOW + 1) == "unmatched"  # too late
    labels = close_all(st, T0 + WINDOW + 1000)
    assert labels["new"]["a"] == "click" and labels["old"]["b"] == "click"
    assert labels["later"]["a"] == "skipped" and labels["old"]["a"] == "skipped"


def test_request_id_actions_on_other_items_and_unknown_requests(kv: KeyValue) -> None:
    st = store(kv)
    assert act(st, "a", "purchase", rid="r1") == "pending"  # overtook its search
    assert act(st, "x", "click", rid="r1") == "pending"
    show(st, "r1", ["a", "b"])
    assert act(st, "zzz", "click", rid="r1") == "not_shown"
    assert close_all(st, T0 + WINDOW + 1000) == {"r1": {"a": "purchase", "b": "skipped"}}
    assert st.index("u").early == []


def test_a_request_is_recorded_once_even_after_it_was_emitted(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a"])
    assert not st.record(*_replay("r1", ["b"]), [], 0)
    assert close_all(st, T0 + WINDOW + 1000) == {"r1": {"a": "skipped"}}
    assert not st.record(*_replay("r1", ["a"]), [], 0)  # within the TTL
    assert close_all(st, T0 + 3 * WINDOW) == {}


def _replay(rid: str, items: list[str]) -> tuple[SearchEvent, RankedResult]:
    search = SearchEvent(event_id="again", request_id=rid, user_id="u", ts=100, query="q",
                         candidates=[Candidate(item_id=i) for i in items])
    result = RankedResult(request_id=rid, user_id="u", model_version="m1", received_ts=T0 + 1,
                          published_ts=T0 + 2,
                          items=[RankedItem(item_id=i, score=0.0, rank=1) for i in items])
    return search, result


def test_beyond_the_cap_the_oldest_close_early(kv: KeyValue) -> None:
    st = store(kv, max_per_user=2)
    show(st, "r1", ["a"], ts=1)
    show(st, "r2", ["a"], ts=2, received=T0 + 5000)
    show(st, "r3", ["a"], ts=3, received=T0 + 6000)
    assert list(close_all(st, T0 + 7000)) == ["r1"]
    assert [i.request_id for i in st.open("u")] == ["r3", "r2"]


def test_users_and_partitions_are_independent(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a"], user="ann", partition=0)
    show(st, "r2", ["a"], user="bob", partition=1)
    assert act(st, "a", "click", user="bob", rid="r1") == "pending"  # not bob's request
    assert list(close_all(st, T0 + WINDOW + 1000, partition=1)) == ["r2"]
    assert [i.request_id for i in st.open("ann")] == ["r1"]


def test_everything_of_a_user_is_forgotten_after_the_ttl(kv: KeyValue) -> None:
    st = store(kv)
    show(st, "r1", ["a"])
    act(st, "a", "click", rid="unknown")
    close_all(st, T0 + WINDOW + 1000)
    close_all(st, T0 + TTL + 2000)
    assert sorted(k.split("/")[0] for k in kv) == ["c"]  # only the wheel's cursor is left
    assert st.record(*_replay("r1", ["a"]), [], 0)  # an id reused long after is new


def test_wheel_never_files_an_entry_behind_its_cursor(kv: KeyValue) -> None:
    wheel = DueWheel(kv, clock=lambda: 10_000)
    assert wheel.schedule(3, 10_500, ["x"]) == 10
    due = wheel.take(3, 12_000)
    assert due.buckets == [(10, [["x"]]), (11, [])]
    wheel.done(due)
    assert wheel.schedule(3, 5_000, ["late"]) == 12  # the past goes to the next second
    assert wheel.take(3, 12_999).entries == []  # second 12 is not complete yet
    sliced = wheel.take(3, 20_000, max_buckets=3)
    assert sliced.buckets == [(12, [["late"]]), (13, []), (14, [])]


def test_wheel_keeps_what_was_filed_or_left_while_a_batch_was_out(kv: KeyValue) -> None:
    wheel = DueWheel(kv, clock=lambda: 10_000)
    wheel.schedule(0, 10_000, ["a"])
    wheel.schedule(0, 11_000, ["b"])
    wheel.schedule(0, 11_000, ["c"])
    due = wheel.take(0, 13_000)
    assert due.entries == [["a"], ["b"], ["c"]]
    wheel.schedule(0, 9_000, ["new"])  # due now: filed in second 10, already taken
    wheel.done(due.first(2))  # the caller handled a and b only
    assert wheel.cursor(0) == 9
    assert wheel.take(0, 13_000).entries == [["new"], ["c"]]


def test_a_tick_closes_a_bounded_number_of_samples(kv: KeyValue) -> None:
    st = store(kv, max_samples=2)
    show(st, "r1", ["a", "b"])
    show(st, "r2", ["a", "b"], received=T0 + 10)
    assert list(close_all(st, T0 + WINDOW + 1000)) == ["r1"]
    assert list(close_all(st, T0 + WINDOW + 1000)) == ["r2"]


def test_impressions_survive_reopening_the_database(reopen) -> None:  # type: ignore[no-untyped-def]
    first: RocksKV = reopen()
    st = store(first)
    show(st, "r1", ["a", "b"])
    act(st, "b", "add_to_cart")
    first.close()
    assert close_all(store(reopen()), T0 + WINDOW + 1000) == {
        "r1": {"a": "skipped", "b": "add_to_cart"}}
