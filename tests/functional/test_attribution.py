"""Attribution through the agents (Faust test_context, memory tables, real zero-shot scorer):
rankings become impressions, actions label them, ticks close windows into samples.

The samples topic is replaced by an in-memory log with the same contract (committed content,
read back by offset); the Kafka transactions themselves are tested in
tests/integration/test_samples.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from contracts import ActionEvent, RankedResult, TrainingSample, decode, encode
from contracts.events import Action
from streams.worker.action_gate import ActionGate
from streams.worker.app import StreamrankApp
from streams.worker.search import now_ms
from tests.functional.conftest import Outbox, load_catalog
from tests.functional.test_agents import ask, search

Worker = tuple[StreamrankApp, Outbox]


class MemoryLog:
    """The samples topic's contract in memory: committed samples per partition, by offset."""

    def __init__(self) -> None:
        self.partitions: dict[int, list[TrainingSample]] = defaultdict(list)
        self.lose_next_ack = False  # commit, then fail as if the acknowledgement was lost

    async def committed_since(
        self, partition: int, offset: int | None
    ) -> tuple[list[tuple[str, str]], int]:
        log = self.partitions[partition]
        return [(s.user_id, s.request_id) for s in log[offset or 0:]], len(log)

    async def emit(self, partition: int, samples: Sequence[TrainingSample]) -> tuple[int, int]:
        log = self.partitions[partition]
        first = len(log)
        log.extend(samples)
        if self.lose_next_ack:
            self.lose_next_ack = False
            raise KafkaTimeoutError()
        return first, len(log)

    async def release(self, partitions: Iterable[int]) -> None:
        pass

    async def close(self) -> None:
        pass

    def all(self) -> list[TrainingSample]:
        return [s for log in self.partitions.values() for s in log]


class Ends:
    """The action partition's high watermark as the gate sees it (0: nothing to read)."""

    def __init__(self) -> None:
        self.end = 0

    def __call__(self, partition: int) -> int | None:
        return self.end


@pytest.fixture
def attributing(worker: Worker) -> tuple[StreamrankApp, Outbox, MemoryLog, Ends]:
    sr, outbox = worker
    log, ends = MemoryLog(), Ends()

    async def committed(partition: int) -> int | None:
        return 0

    sr.attribution.samples = log
    sr.attribution.gate = ActionGate(ends, committed)
    return sr, outbox, log, ends


async def act(sr: StreamrankApp, user: str, events: list[tuple[str, Action, str | None]],
              ts: int = 10) -> None:
    async with sr.action_agent.test_context() as agent:
        for n, (item, action, rid) in enumerate(events):
            event = ActionEvent(event_id=f"{user}-{item}-{action}-{n}", user_id=user, ts=ts,
                                item_id=item, action=action, request_id=rid)
            await agent.put(encode(event), key=user)


async def tick(sr: StreamrankApp, at_ms: int) -> None:
    async with sr.tick_agent.test_context() as agent:
        await agent.put(orjson.dumps({"now": at_ms}), key="0", partition=0)


def after_window(sr: StreamrankApp) -> int:
    return now_ms() + round(sr.settings.attribution_window_s * 1000) + 2000


async def test_a_published_ranking_becomes_one_sample_with_every_shown_item(attributing) -> None:  # type: ignore[no-untyped-def]
    sr, outbox, log, _ = attributing
    await load_catalog(sr)
    await act(sr, "ann", [("coffee-1", "purchase", None)], ts=1)  # history before the search
    history = sr.handler.history("ann")
    ids = ["coffee-2", "coffee-3", "audio-1", "games-2", "running-0"]
    result = await ask(sr, outbox, search("ann", ids, rid="r1"))
    shown = [i.item_id for i in result.items]
    await act(sr, "ann", [(shown[3], "click", "r1"), (shown[3], "add_to_cart", "r1"),
                          (shown[1], "view", "r1"), (shown[0], "click", None)])
    assert [i.request_id for i in sr.impressions.open("ann")] == ["r1"]

    await tick(sr, now_ms())  # the window is still open
    assert log.all() == []
    await tick(sr, after_window(sr))
    [sample] = log.all()
    assert decode(encode(sample), TrainingSample) == sample  # a valid record as written
    items = sample.items
    assert [s.item_id for s in items] == shown
    assert [s.position for s in items] == [i.rank - 1 for i in result.items]
    assert [s.shown_score for s in items] == [i.score for i in result.items]
    assert [s.action for s in items] == ["click", "skipped", "skipped", "add_to_cart",
                                         "skipped"]
    assert [s.label for s in items] == [1.0, 0.0, 0.0, 2.0, 0.0]
    assert sample.history == history and sr.catalog.get("coffee-1").title in history  # type: ignore[union-attr]
    assert (sample.request_id, sample.user_id, sample.query, sample.model_version) == (
        "r1", "ann", "gift ideas", result.model_version)
    # A text scorer: no behaviour features were logged.
    assert sample.feature_spec is None and all(s.features == [] for s in items)

    await act(sr, "ann", [(shown[2], "purchase", "r1")])  # too late
    await tick(sr, after_window(sr) + 5000)
    assert len(log.all()) == 1
    assert sr.attribution.counts["actions_late"] == 1
    assert sr.impressions.open("ann") == []


async def test_windows_wait_for_actions_not_read_yet(attributing) -> None:  # type: ignore[no-untyped-def]
    sr, outbox, log, ends = attributing
    await load_catalog(sr)
    result = await ask(sr, outbox, search("bob", ["coffee-1", "coffee-2"], rid="r2"))
    ends.end = 1  # one action on the partition that the worker has not read (a restart)
    await tick(sr, after_window(sr))
    assert log.all() == []  # held back: that action may label this window
    await act(sr, "bob", [(result.items[1].item_id, "purchase", "r2")])
    await tick(sr, after_window(sr))
    [sample] = log.all()
    assert {s.item_id: s.action for s in sample.items} == {
        result.items[0].item_id: "skipped", result.items[1].item_id: "purchase"}


async def test_a_commit_whose_ack_was_lost_is_read_back_not_repeated(attributing) -> None:  # type: ignore[no-untyped-def]
    sr, outbox, log, _ = attributing
    await load_catalog(sr)
    result: RankedResult = await ask(sr, outbox, search("cyd", ["coffee-1", "audio-2"], rid="r3"))
    await act(sr, "cyd", [(result.items[0].item_id, "click", "r3")])
    log.lose_next_ack = True
    await tick(sr, after_window(sr))
    assert len(log.all()) == 1 and sr.attribution.counts["emit_failures"] == 1
    assert [i.request_id for i in sr.impressions.open("cyd")] == ["r3"]  # not removed
    await tick(sr, after_window(sr) + 1000)
    assert len(log.all()) == 1  # the read-back found it committed
    assert sr.attribution.counts["recovered_emitted"] == 1
    assert sr.impressions.open("cyd") == []


async def test_a_repeated_search_is_not_a_second_impression(attributing) -> None:  # type: ignore[no-untyped-def]
    sr, outbox, log, _ = attributing
    await load_catalog(sr)
    await ask(sr, outbox, search("dan", ["coffee-1", "audio-2"], rid="r4"))
    await ask(sr, outbox, search("dan", ["coffee-1", "audio-2"], rid="r4"))  # a replay
    await tick(sr, after_window(sr))
    [sample] = log.all()
    assert sample.request_id == "r4"
    assert sorted(s.item_id for s in sample.items) == ["audio-2", "coffee-1"]
    assert sr.attribution.counts["impressions"] == 1  # the replay was not kept again
