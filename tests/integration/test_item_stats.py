"""Item statistics through the real broker: actions are keyed by user, yet every worker ends up
with every item's statistics across all users, exactly (not at least) once per action, also
after one worker is SIGKILLed mid-stream (its users' interaction sets recovered from the
changelog) and when a worker starts from an empty state folder."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from contracts import ActionEvent
from contracts.events import Action
from streams.kafka.broker_config import free_port
from streams.tools.simulation import catalog_items
from streams.tools.worker_process import WorkerProcess
from tests.integration.conftest import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ITEMS = [i.item_id for i in catalog_items()][:12]
ACTIONS: list[Action] = ["view", "click", "add_to_cart", "purchase"]
SHARED = {"STREAMRANK_PARTITIONS": "4", "STREAMRANK_SESSION_TIMEOUT_S": "6"}
Counts = dict[str, Counter[str]]  # item -> action -> count


def batch(seed: int, n: int) -> list[ActionEvent]:
    """n actions of 30 users (spread over every partition) on a few items."""
    rng = random.Random(seed)
    return [ActionEvent(event_id=f"s{seed}-{k}", user_id=f"user-{rng.randrange(30)}",
                        ts=1_000_000 + seed * 100_000 + k, item_id=rng.choice(ITEMS),
                        action=rng.choice(ACTIONS)) for k in range(n)]


def tally(actions: list[ActionEvent]) -> Counts:
    out: Counts = {item: Counter() for item in ITEMS}
    for a in {a.event_id: a for a in actions}.values():  # the site's repeats count once
        out[a.item_id][a.action] += 1
    return out


def held(worker: WorkerProcess) -> Counts:
    out: Counts = {}
    for item in ITEMS:
        stats = worker.get(f"/items/{item}/stats/")
        out[item] = Counter({k: int(v) for k, v in stats["counts"].items() if v})
    return out


async def publish(dep: Deployment, actions: list[ActionEvent]) -> None:
    async with dep.client(listen=False) as client:
        for a in actions:
            await client.publish_action(a)


def second_worker(dep: Deployment, name: str) -> WorkerProcess:
    return WorkerProcess(
        {**dep.env, **SHARED, "STREAMRANK_STATE_DIR": str(dep.tmp / f"state-{name}"),
         "STREAMRANK_WEB_PORT": str(free_port())}, dep.tmp / f"worker-{name}.log")


async def test_item_statistics_reach_every_worker_exactly(deployment: Deployment) -> None:
    dep = deployment
    first = dep.start_worker(**SHARED)
    second = second_worker(dep, "second")
    third: WorkerProcess | None = None
    try:
        await first.wait_ready()
        await second.wait_ready()
        # The site sends some actions twice (a producer retry: the copy right behind).
        sent = [copy for k, a in enumerate(batch(1, 400)) for copy in [a] * (1 + (k % 20 == 0))]
        await publish(dep, sent)
        want = tally(sent)
        # Each worker writes only the items of its item-actions partitions, yet both see all.
        for worker in (first, second):
            await worker.wait_for(lambda w: held(w) == want, "every item's statistics", 120)
        owned = [w.get("/health/")["behaviour"].get("item_actions_applied", 0)
                 for w in (first, second)]
        assert all(owned) and sum(owned) == len(want_events := {a.event_id for a in sent})
        assert len(want_events) == 400

        # One worker dies mid-stream: the other takes its item partitions over (state from
        # the changelog, the unfinished tail read again) without counting anything twice.
        more = batch(2, 400)
        await publish(dep, more[:200])
        first.kill()
        await publish(dep, more[200:])
        want = tally(sent + more)
        await second.wait_for(lambda w: held(w) == want, "statistics after the crash", 180)
        # The dead worker's users moved too: their interaction sets came from the changelog.
        per_user = Counter(a.user_id for a in {a.event_id: a for a in sent + more}.values())
        await second.wait_for(
            lambda w: all(w.get(f"/users/{u}/interactions/")["events"] == n
                          for u, n in per_user.items()), "every user's interactions", 120)

        # A worker with an empty state folder reads the compacted topic whole before ready.
        third = second_worker(dep, "third")
        await third.wait_ready(180)
        assert held(third) == want
    finally:
        second.stop()
        if third is not None:
            third.stop()
