"""`streamrank tail` against the real broker: live from the end, joined with recent context."""

from __future__ import annotations

import asyncio
import io

import orjson
import pytest
from aiokafka.admin import NewTopic

from streams.kafka.deadletter import HEADER_PREFIX
from streams.tools.tail import TailOptions, tail
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration


async def test_tail_prints_each_result_with_its_query_and_the_deadletters(
    deployment: Deployment,
) -> None:
    names = deployment.topics
    admin = deployment.clients.admin()
    await admin.start()
    await admin.create_topics([NewTopic(t, 2, 1) for t in (
        names.catalog, names.search, names.action, names.recommendations, names.deadletter)])
    await admin.close()
    producer = deployment.producer()
    await producer.start()
    try:
        # Context published before the tail starts: found through its look-back.
        await producer.send_and_wait(names.catalog, orjson.dumps(
            {"item_id": "i1", "title": "Trail running shoe"}), key=b"i1")
        await producer.send_and_wait(names.search, orjson.dumps(
            {"event_id": "e1", "request_id": "old", "user_id": "u1", "ts": 1, "query": "shoes",
             "candidates": [{"item_id": "i1"}]}), key=b"u1")
        await producer.send_and_wait(names.recommendations, orjson.dumps(
            {"request_id": "before", "user_id": "u1", "model_version": "m",
             "items": [], "received_ts": 1, "published_ts": 2}), key=b"u1")
        out = io.StringIO()
        task = asyncio.create_task(tail(
            deployment.clients, names, options=TailOptions(top=5), limit=2, out=out,
            idle_exit_s=20))
        await asyncio.sleep(3)  # the tail is assigned and at the end of the results
        await producer.send_and_wait(names.action, orjson.dumps(
            {"event_id": "a1", "user_id": "u1", "ts": 2, "item_id": "i1", "action": "click"}),
            key=b"u1")
        await producer.send_and_wait(names.recommendations, orjson.dumps(
            {"request_id": "old", "user_id": "u1", "model_version": "embed-x",
             "items": [{"item_id": "i1", "score": 0.9, "rank": 1}],
             "received_ts": 10, "published_ts": 14}), key=b"u1")
        await producer.send_and_wait(names.deadletter, b"{broken", key=b"u1", headers=[
            (HEADER_PREFIX + "reason", b"not_json"),
            (HEADER_PREFIX + "source.topic", names.search.encode())])
        printed = await asyncio.wait_for(task, 30)
    finally:
        await producer.stop()
    text = out.getvalue()
    assert printed == 2, text
    assert "before" not in text  # results start at the end
    assert "query: 'shoes'" in text and "embed-x" in text and "4 ms" in text
    assert "last actions: click Trail running shoe" in text
    assert "1.    0.9000  Trail running shoe" in text
    assert f"✖ deadletter not_json from {names.search}" in text
