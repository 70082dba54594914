"""README's kcat examples against a running worker: a result within 5 seconds."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import orjson
import pytest

from contracts import RankedResult, decode
from tests.integration.conftest import Deployment

KCAT = shutil.which("kcat")
if KCAT is None and os.environ.get("CI"):
    raise RuntimeError("kcat is required in CI (.ci/run installs it)")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (apt-get install kcat)")


async def kcat_produce(
    bootstrap: str, topic: str, lines: list[tuple[str, dict[str, object]]]
) -> None:
    """`kcat -P -K '\t'`: one `key<TAB>json` line per message, as in the README."""
    body = b"".join(k.encode() + b"\t" + orjson.dumps(v) + b"\n" for k, v in lines)
    proc = await asyncio.create_subprocess_exec(
        KCAT or "kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\t",
        stdin=asyncio.subprocess.PIPE,
    )
    await proc.communicate(body)
    assert proc.returncode == 0


async def kcat_consume_one(
    bootstrap: str, topic: str, request_id: str, timeout: float
) -> RankedResult:
    """Read the topic with kcat until the result for `request_id` shows up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = await asyncio.create_subprocess_exec(
            KCAT or "kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        for line in out.splitlines():
            result = decode(line, RankedResult)
            if result.request_id == request_id:
                return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"no RankedResult for {request_id} within {timeout}s")


async def test_kcat_events_on_the_three_input_topics_give_a_result_within_5s(
    deployment: Deployment,
) -> None:
    dep = deployment
    worker = dep.start_worker()
    await worker.wait_ready()
    b = dep.bootstrap
    await kcat_produce(b, dep.topics.catalog, [
        ("sku-1", {"item_id": "sku-1", "title": "Espresso machine", "category": "coffee"}),
        ("sku-2", {"item_id": "sku-2", "title": "Trail running shoes", "category": "running"}),
        ("sku-3", {"item_id": "sku-3", "title": "Burr coffee grinder", "category": "coffee"}),
    ])
    await kcat_produce(b, dep.topics.action, [
        ("u42", {"event_id": "a1", "user_id": "u42", "ts": 1, "item_id": "sku-1",
                 "action": "purchase"}),
    ])
    # "Running" means the agents consume: the catalog and the action have been applied.
    await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == 3, "catalog")
    await worker.wait_for(lambda w: w.get("/users/u42/sequence/")["entries"], "action")

    started = time.monotonic()
    await kcat_produce(b, dep.topics.search, [
        ("u42", {"event_id": "s1", "request_id": "req-1", "user_id": "u42", "ts": 2,
                 "query": "something nice",
                 "candidates": [{"item_id": "sku-2"}, {"item_id": "sku-3"},
                                {"item_id": "unknown-sku"}]}),
    ])
    result = await kcat_consume_one(b, dep.topics.recommendations, "req-1", timeout=5.0)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0
    assert sorted(i.item_id for i in result.items) == ["sku-2", "sku-3", "unknown-sku"]
    # The coffee buyer sees the grinder first.
    assert result.items[0].item_id == "sku-3"
