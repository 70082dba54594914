"""/metrics after real traffic: every metric family a worker promises, with values."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import ActionEvent, Candidate, SearchEvent
from streams.tools.simulation import catalog_items
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration

ITEMS = catalog_items()
# Must be non-zero after traffic (counters, histograms, info).
NON_ZERO = [
    "streamrank_events_in_total", "streamrank_events_out_total", "streamrank_deadletters_total",
    "streamrank_degraded_answers_total", "streamrank_batch_searches_count",
    "streamrank_batch_pairs_count", "streamrank_queue_depth_peak", "streamrank_model_info",
    "streamrank_state_entries", "streamrank_ready", "streamrank_rebalances_total",
]
STAGES = ["decode", "state", "queue", "tokenize", "inference", "publish", "end_to_end"]
# Present (their value is the present state: 0 once the worker caught up).
# (send errors: a family with no series until a send fails.)
PRESENT = ["streamrank_queue_depth", "streamrank_consumer_lag", "streamrank_model_swaps",
           "streamrank_model_refusals", "streamrank_send_errors"]


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
        found.setdefault(family.name, [])  # families without samples yet
    return found


async def test_metrics_after_traffic(deployment: Deployment) -> None:
    dep = deployment
    # A one-search queue and a burst: some searches are answered degraded (queue_full).
    worker = dep.start_worker(STREAMRANK_BATCH_QUEUE="1", STREAMRANK_BATCH_MAX_WAIT_MS="20")
    async with dep.client() as client, dep.producer() as producer:
        for item in ITEMS:
            await client.publish_item(item)
        await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == len(ITEMS),
                              "catalog")
        await client.publish_action(ActionEvent(event_id="a1", user_id="u1", ts=1,
                                                item_id=ITEMS[0].item_id, action="click"))
        await producer.send_and_wait(dep.topics.search, b"{not json", key=b"u1")
        # One search alone first: scored (not degraded), and the model is warm for the burst.
        first = SearchEvent(event_id="s-first", request_id="r-first", user_id="u1", ts=2,
                            query="coffee", candidates=[Candidate(item_id=i.item_id)
                                                        for i in ITEMS[:30]])
        assert not (await client.rank(first, 60, fallback=False)).degraded
        ids = []
        for n in range(40):
            search = SearchEvent(event_id=f"s{n}", request_id=f"r{n}", user_id=f"u{n % 5}",
                                 ts=2, query="coffee", candidates=[
                                     Candidate(item_id=i.item_id) for i in ITEMS[:30]])
            # Not acknowledged one by one: the burst must reach the worker together.
            await client.send_search(search)
            ids.append(search.request_id)
        results = await client.results(ids, 60)
    assert any(r.result.degraded for r in results.values())

    got = scrape(worker.web_port)
    for name in NON_ZERO:
        assert any(v > 0 for _, v in got.get(name, [])), (name, got.get(name))
    stage_counts = {labels["stage"]: v for labels, v in got["streamrank_stage_seconds_count"]}
    assert all(stage_counts.get(stage, 0) > 0 for stage in STAGES), stage_counts
    for name in PRESENT:
        assert name in got, name
    topics_in = {labels["topic"] for labels, _ in got["streamrank_events_in_total"]}
    assert {dep.topics.search, dep.topics.action, dep.topics.catalog} <= topics_in
    topics_out = {labels["topic"] for labels, _ in got["streamrank_events_out_total"]}
    assert {dep.topics.recommendations, dep.topics.deadletter} <= topics_out
    info = got["streamrank_model_info"][0][0]
    assert info["provider"] == "CPUExecutionProvider" and info["version"]
    assert any(labels["reason"] == "queue_full"
               for labels, _ in got["streamrank_degraded_answers_total"])
