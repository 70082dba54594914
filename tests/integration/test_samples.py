"""Samples on the real topic: one record per published ranking with graded labels, exactly
once, also across a SIGKILL.

Samples are read as the trainer must read them: read_committed."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from contracts import (
    LABELS,
    ActionEvent,
    Candidate,
    RankedResult,
    SearchEvent,
    ShownItem,
    TrainingSample,
    decode,
    encode,
)
from contracts.events import Action
from streams.tools.simulation import catalog_items
from tests.integration.conftest import Deployment
from tests.integration.helpers import collect

if TYPE_CHECKING:
    from streams.kafka.connection import Consumer

ITEMS = [i.item_id for i in catalog_items()]
# Short windows keep the test quick; ticks often enough to close them promptly.
FAST = {
    "STREAMRANK_ATTRIBUTION_WINDOW_S": "3",
    "STREAMRANK_IMPRESSION_TTL_S": "120",
    "STREAMRANK_ATTRIBUTION_TICK_S": "0.5",
    "STREAMRANK_SESSION_TIMEOUT_S": "6",
}

Labels = dict[tuple[str, str], str]  # (request_id, item_id) -> action
BACKLOG = 4000  # actions that pile up while a worker is down


def samples_consumer(dep: Deployment) -> Consumer:
    return dep.consumer(dep.topics.samples, isolation_level="read_committed")


async def load_catalog(dep: Deployment) -> None:
    assert dep.worker is not None
    async with dep.client(listen=False) as client:
        for item in catalog_items():
            await client.publish_item(item)
    await dep.worker.wait_for(
        lambda w: w.get("/health/")["catalog_items"] == len(ITEMS), "catalog")


async def search_all(
    dep: Deployment, requests: dict[str, str], offset: int = 0
) -> tuple[dict[str, RankedResult], dict[str, int]]:
    """Search for each request_id → user; their results and each user's partition."""
    partitions: dict[str, int] = {}
    async with dep.client() as client:
        for n, (rid, user) in enumerate(requests.items()):
            pool = ITEMS[(offset + 3 * n) % 40:][:6]
            event = SearchEvent(event_id=f"s-{rid}", request_id=rid, user_id=user, ts=1000 + n,
                                query="gift ideas", candidates=[Candidate(item_id=i)
                                                                for i in pool])
            partitions[user] = (await client.publish_search(event)).partition
        replies = await client.results(requests, timeout_s=60)
    return {rid: reply.result for rid, reply in replies.items()}, partitions


async def act(dep: Deployment, events: Iterable[tuple[str, str, Action, str | None]]) -> None:
    async with dep.client(listen=False) as client:
        for n, (user, item, action, rid) in enumerate(events):
            await client.publish_action(ActionEvent(
                event_id=f"a-{user}-{item}-{action}-{n}", user_id=user, ts=1500, item_id=item,
                action=action, request_id=rid))


Expected = dict[str, list[tuple[str, str]]]  # request_id -> [(item_id, action)] as shown


def expected(results: dict[str, RankedResult], labels: Labels) -> Expected:
    """The sample each of `results` must become: its shown items and their actions."""
    return {rid: [(i.item_id, labels.get((rid, i.item_id), "skipped")) for i in r.items]
            for rid, r in results.items()}


def found(samples: list[TrainingSample]) -> Expected:
    return {s.request_id: [(i.item_id, i.action) for i in s.items] for s in samples}


async def read_samples(dep: Deployment, want: int, timeout: float = 60) -> list[TrainingSample]:
    async with samples_consumer(dep) as consumer:
        records = await collect(consumer, lambda recs: len(recs) >= want, timeout)
        extra = await consumer.getmany(timeout_ms=1500)  # anything beyond `want` is a repeat
        records += [r for recs in extra.values() for r in recs]
    out = []
    for rec in records:
        sample = decode(rec.value, TrainingSample)
        assert rec.key == sample.user_id.encode()
        out.append(sample)
    return out


async def test_shown_rankings_become_samples_with_graded_labels(deployment: Deployment) -> None:
    dep = deployment
    worker = dep.start_worker(**FAST)
    await load_catalog(dep)
    requests = {"r-ann": "ann", "r-bob": "bob", "r-ann-2": "ann"}
    results, partitions = await search_all(dep, requests)
    top = {rid: [i.item_id for i in r.items] for rid, r in results.items()}
    labels: Labels = {
        ("r-ann", top["r-ann"][2]): "purchase",
        ("r-ann", top["r-ann"][0]): "add_to_cart",
        ("r-bob", top["r-bob"][5]): "click",
    }
    events: list[tuple[str, str, Action, str | None]] = [
        (requests[rid], item, "click", rid) for (rid, item) in labels]  # weaker first
    events += [(requests[rid], item, action, rid) for (rid, item), action in labels.items()]
    events.append(("bob", top["r-bob"][1], "view", "r-bob"))  # not a label
    # No request id: the latest of ann's impressions that showed the item.
    events.append(("ann", top["r-ann-2"][4], "click", None))
    labels[("r-ann-2", top["r-ann-2"][4])] = "click"
    await act(dep, events)

    want = expected(results, labels)
    samples = await read_samples(dep, len(want))
    assert Counter(s.request_id for s in samples) == Counter(want.keys())  # each exactly once
    assert found(samples) == want
    for s in samples:
        shown = results[s.request_id]
        assert [i.shown_score for i in s.items] == [i.score for i in shown.items]
        assert [i.position for i in s.items] == list(range(6))
        assert s.model_version == shown.model_version and s.query == "gift ideas"
    # Each user's samples are in the partition of the user's searches.
    async with samples_consumer(dep) as consumer:
        records = await collect(consumer, lambda recs: len(recs) >= len(want))
    assert all(r.partition == partitions[decode(r.value, TrainingSample).user_id]
               for r in records)
    health = worker.get("/health/")["attribution"]
    assert health["actions_not_a_label"] == 1 and health["samples"] == len(want)
    assert health["sample_items"] == 6 * len(want)


def forged(result: RankedResult, labels: Labels, force: Action | None = None) -> bytes:
    """The sample a previous owner of the partition would have written for `result`."""
    actions = [force or labels.get((result.request_id, i.item_id), "skipped")
               for i in result.items]
    return encode(TrainingSample(
        request_id=result.request_id, user_id=result.user_id, ts=1000, query="gift ideas",
        model_version=result.model_version,
        items=[ShownItem(item_id=i.item_id, position=n, shown_score=i.score,
                         label=LABELS[action], action=action)  # type: ignore[arg-type]
               for n, (i, action) in enumerate(zip(result.items, actions, strict=True))],
    ))


async def test_a_sigkilled_worker_neither_loses_nor_repeats_samples(
    deployment: Deployment,
) -> None:
    dep = deployment
    # Frequent ticks: the first ones arrive while the backlog below is still being read.
    slow = {**FAST, "STREAMRANK_ATTRIBUTION_WINDOW_S": "4", "STREAMRANK_ATTRIBUTION_TICK_S": "0.1"}
    worker = dep.start_worker(**slow)
    await load_catalog(dep)
    users = ["ann", "bob", "cyd", "dee"]
    first, partitions = await search_all(dep, {f"a-{u}": u for u in users})
    labels: Labels = {(f"a-{u}", first[f"a-{u}"].items[1].item_id): "purchase" for u in users}
    await act(dep, [(rid[2:], item, action, rid) for (rid, item), action in labels.items()])
    await read_samples(dep, len(expected(first, labels)))  # the first batch is out

    second, _ = await search_all(dep, {f"b-{u}": u for u in users}, offset=20)
    clicks = [(u, second[f"b-{u}"].items[0].item_id, f"b-{u}") for u in users]
    await act(dep, [(u, item, "click", rid) for u, item, rid in clicks])
    worker.kill()  # windows open, clicks just sent: maybe read, maybe not committed

    # While it is down: a backlog of other users' actions, then the stronger actions. The
    # windows are due when the worker is back, but must wait until those actions are read.
    async with dep.client(listen=False) as client:
        for n in range(BACKLOG):
            await client.send_action(ActionEvent(event_id=f"f{n}", user_id=f"filler-{n % 50}",
                                                 ts=1500, item_id=ITEMS[n % 40], action="view"))
    await act(dep, [(u, item, "add_to_cart", rid) for u, item, rid in clicks])
    labels.update({(rid, item): "add_to_cart" for _, item, rid in clicks})

    # While it is down, two things a crash can leave behind, on two partitions:
    by_partition = {partitions[u]: u for u in users}
    assert len(by_partition) == 2, partitions
    app_id = dep.env["STREAMRANK_APP_ID"]
    done_user, open_user = by_partition[0], by_partition[1]
    # 1. samples committed by the dead worker whose removal from its state did not survive
    previous = dep.clients.producer(transactional_id=f"{app_id}-samples-0")
    async with previous as producer, producer.transaction():
        await producer.send(dep.topics.samples, forged(second[f"b-{done_user}"], labels),
                            key=done_user.encode(), partition=0)
    # 2. a transaction it had begun and never committed (wrong labels, must never be seen)
    dangling = dep.clients.producer(transactional_id=f"{app_id}-samples-1")
    await dangling.start()
    try:
        await dangling.begin_transaction()
        await (await dangling.send(dep.topics.samples,
                                   forged(second[f"b-{open_user}"], labels, force="purchase"),
                                   key=open_user.encode(), partition=1))
        await restart_and_check(dep, slow, first, second, labels)
    finally:
        with contextlib.suppress(Exception):  # fenced by the worker, as it should be
            await dangling.stop()


async def restart_and_check(dep: Deployment, env: dict[str, str],
                            first: dict[str, RankedResult], second: dict[str, RankedResult],
                            labels: Labels) -> None:
    """Restart on the same state, then on an empty state folder: every sample once."""
    worker = dep.start_worker(**env)  # same state folder
    want = expected({**first, **second}, labels)
    samples = await read_samples(dep, len(want), timeout=120)
    assert Counter(s.request_id for s in samples) == Counter(want.keys())  # none lost or twice
    assert found(samples) == want  # replayed actions kept their labels
    assert worker.get("/health/")["attribution"]["recovered_emitted"] == 1
    worker.kill()  # right after its last emissions

    # Empty state folder: state from the changelogs alone must not emit anything again, and
    # a new search closes although this worker has read no action (the group's committed
    # offsets tell it that none is pending).
    worker = dep.start_worker(STREAMRANK_STATE_DIR=str(dep.tmp / "fresh-state"), **env)
    await worker.wait_ready()
    third, _ = await search_all(dep, {"c-ann": "ann"}, offset=30)
    want.update(expected(third, labels))
    again = await read_samples(dep, len(want), timeout=120)
    assert Counter(s.request_id for s in again) == Counter(want.keys())
