"""StreamrankApp.ready(): every condition of readiness must hold (partitions, recovery, the
catalog and item-stats replicas caught up, the batcher running, the cluster answering); any
one missing is 503."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from streams.worker.app import StreamrankApp
from tests.functional.conftest import Outbox


def _set_state(sr: StreamrankApp, *, assigned: bool, rebalancing: bool, in_recovery: bool,
               recovered: bool, catalog: bool, kafka: bool, item_stats: bool) -> None:
    sr.app.consumer = SimpleNamespace(  # type: ignore[assignment]
        assignment=lambda: {("t", 0)} if assigned else set())
    sr.app.rebalancing = rebalancing
    sr.app.in_recovery = in_recovery
    done = asyncio.Event()
    if recovered:
        done.set()
    sr.app.tables.recovery.completed = done  # type: ignore[attr-defined]
    # The broker watch's last answered probe: now, or never.
    sr.broker_watch.last_ok = time.monotonic() if kafka else None
    for replica, caught_up in ((sr.catalog_replica, catalog),
                               (sr.behaviour.replica, item_stats)):
        if caught_up:
            replica.caught_up.set()
        else:
            replica.caught_up.clear()


@pytest.mark.parametrize("missing", ["assigned", "rebalancing", "in_recovery", "recovered",
                                     "catalog", "item_stats", "batcher", "kafka"])
async def test_not_ready_while_any_condition_is_missing(
    worker: tuple[StreamrankApp, Outbox], missing: str
) -> None:
    sr, _ = worker
    state: dict[str, Any] = {"assigned": True, "rebalancing": False, "in_recovery": False,
                             "recovered": True, "catalog": True, "kafka": True,
                             "item_stats": True}
    _set_state(sr, **state)
    assert sr.ready()
    if missing == "batcher":
        await sr.scoring.batcher.stop()
    else:
        state[missing] = not state[missing]
        _set_state(sr, **state)
    assert not sr.ready()
