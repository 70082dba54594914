from contracts import ActionEvent
from state import KeyValue, SequenceStore


def act(n: int, user: str = "u1", ts: int | None = None, item: str | None = None) -> ActionEvent:
    return ActionEvent(
        event_id=f"e{n}", user_id=user, ts=n if ts is None else ts,
        item_id=item or f"i{n}", action="click",
    )


def test_newest_first_and_bounded(kv: KeyValue) -> None:
    store = SequenceStore(kv, max_len=3)
    for n in range(5):
        assert store.append(act(n))
    assert store.get("u1").item_ids() == ["i4", "i3", "i2"]


def test_replayed_event_is_not_applied_twice(kv: KeyValue) -> None:
    store = SequenceStore(kv, max_len=5)
    store.append(act(1))
    store.append(act(2))
    assert store.append(act(1)) is False
    assert store.get("u1").item_ids() == ["i2", "i1"]


def test_replay_of_an_event_that_fell_out_stays_out(kv: KeyValue) -> None:
    store = SequenceStore(kv, max_len=2)
    for n in range(4):
        store.append(act(n))
    store.append(act(0))
    assert store.get("u1").item_ids() == ["i3", "i2"]


def test_late_event_slots_in_by_time(kv: KeyValue) -> None:
    store = SequenceStore(kv, max_len=5)
    store.append(act(1, ts=10))
    store.append(act(2, ts=30))
    store.append(act(3, ts=20))
    assert store.get("u1").item_ids() == ["i2", "i3", "i1"]


def test_users_are_independent_and_unknown_user_is_empty(kv: KeyValue) -> None:
    store = SequenceStore(kv)
    store.append(act(1, user="a"))
    assert len(store.get("a")) == 1
    assert len(store.get("nobody")) == 0


def test_query_is_kept_with_the_action(kv: KeyValue) -> None:
    store = SequenceStore(kv)
    event = ActionEvent(event_id="q", user_id="u", ts=1, item_id="i", action="purchase",
                        query="espresso")
    store.append(event)
    entry = store.get("u").entries[0]
    assert (entry.action, entry.query) == ("purchase", "espresso")


def test_sequences_survive_reopening_the_database(reopen) -> None:  # type: ignore[no-untyped-def]
    first = reopen()
    SequenceStore(first).append(act(7))
    first.close()
    assert SequenceStore(reopen()).get("u1").item_ids() == ["i7"]
