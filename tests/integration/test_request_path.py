"""README's "In your request path" examples, run as written against a running worker: the curl
command and the Python client snippet (read from README.md, only the worker's address swapped),
plus a search with a deadline too short to meet: answered in the site's order, degraded."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from contracts import ActionEvent, Candidate, Item, RankedResult, SearchEvent, decode, encode
from streams.client import HttpRankingClient
from tests.integration.conftest import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

README = Path(__file__).resolve().parents[2] / "README.md"
ROOT = README.parent


def section() -> str:
    return README.read_text().split("## In your request path", 1)[1].split("\n## ", 1)[0]


def readme_curl(port: int) -> str:
    block = section().split("```sh", 1)[1].split("```", 1)[0]
    return re.sub(r"\\\n\s*", "", block).strip().replace("127.0.0.1:6066", f"127.0.0.1:{port}")


def readme_python(port: int) -> str:
    block = section().split("```python", 1)[1].split("```", 1)[0]
    return block.replace("127.0.0.1:6066", f"127.0.0.1:{port}")


async def run(*argv: str) -> str:
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                   timeout=60, cwd=ROOT, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_readme_request_path_examples(deployment: Deployment) -> None:
    dep = deployment
    worker = dep.start_worker(STREAMRANK_RANK_DEADLINE_MS="30000")
    await worker.wait_ready()
    async with dep.client(listen=False) as client:
        await client.publish_item(Item(item_id="sku-1", title="Espresso machine",
                                       category="coffee"))
        await client.publish_item(Item(item_id="sku-3", title="Burr coffee grinder",
                                       category="coffee"))
        await client.publish_action(ActionEvent(event_id="a1", user_id="u42", ts=1,
                                                item_id="sku-1", action="purchase"))
    await worker.wait_for(lambda w: w.get("/scoring/")["warm"]["items"] >= 2
                          and w.get("/users/u42/sequence/")["entries"], "catalog and action")
    # Warm the scorer once (its first run pays for loading): the examples then meet the
    # deadlines they state, even on a busy test machine.
    async with HttpRankingClient(f"http://127.0.0.1:{worker.web_port}") as http:
        await http.rank(SearchEvent(event_id="w", request_id="warm", user_id="u1", ts=1,
                                    query="coffee", candidates=[Candidate(item_id="sku-1")]),
                        30.0)

    curl = readme_curl(worker.web_port)
    assert curl.startswith("curl ") and "/rank?deadline_ms=" in curl
    answer = decode((await run("bash", "-c", curl)).encode(), RankedResult)
    assert answer.request_id == "req-2"
    assert sorted(i.item_id for i in answer.items) == ["sku-1", "sku-3"]
    if not answer.degraded:  # explained, and the parts add up
        for item in answer.items:
            assert item.explanation is not None
            assert sum(item.explanation.parts.values()) == pytest.approx(item.score, abs=1e-4)

    printed = (await run(sys.executable, "-c", readme_python(worker.web_port))).split()
    assert printed[0] == "req-3" and printed[1] in ("True", "False")
    assert sorted(orjson.loads(" ".join(printed[2:]).replace("'", '"'))) == ["sku-1", "sku-3"]

    # A deadline no worker can meet: the site's order, degraded `timeout`, right away.
    search = SearchEvent(event_id="s9", request_id="req-9", user_id="u42", ts=1, query="gift",
                         candidates=[Candidate(item_id="sku-3"), Candidate(item_id="sku-1")])
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{worker.web_port}/rank", params={"deadline_ms": "1"},
            data=encode(search)) as response:
        assert response.status == 200
        late = decode(await response.read(), RankedResult)
    assert late.degraded and late.degraded_reason == "timeout"
    assert [i.item_id for i in late.items] == ["sku-3", "sku-1"]
