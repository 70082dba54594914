"""A worker configured only by STREAMRANK_* variables connects with SASL to the broker they
name, answers searches, and never writes the password to its log."""

from __future__ import annotations

import pytest

from contracts import Candidate, Item, SearchEvent, encode
from streams.kafka.local_broker import LocalBroker
from tests.integration.conftest import SASL_PASSWORD, SASL_USER, Deployment
from tests.integration.helpers import results_for

pytestmark = pytest.mark.integration


async def test_worker_over_sasl(deployment: Deployment, kafka: LocalBroker) -> None:
    dep = deployment
    worker = dep.start_worker(
        STREAMRANK_BOOTSTRAP_SERVERS=kafka.sasl_bootstrap,  # type: ignore[attr-defined]
        STREAMRANK_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        STREAMRANK_SASL_MECHANISM="PLAIN",
        STREAMRANK_SASL_USERNAME=SASL_USER,
        STREAMRANK_SASL_PASSWORD=SASL_PASSWORD,
    )
    await worker.wait_ready()
    async with dep.producer() as producer:  # the test's own client: the plain listener
        item = Item(item_id="mug", title="Stoneware coffee mug")
        await producer.send_and_wait(dep.topics.catalog, encode(item), key=b"mug")
        search = SearchEvent(event_id="s1", request_id="r-sasl", user_id="u", ts=1,
                             query="mug", candidates=[Candidate(item_id="mug")])
        await producer.send_and_wait(dep.topics.search, encode(search), key=b"u")
    async with dep.consumer(dep.topics.recommendations) as consumer:
        results = await results_for(consumer, {"r-sasl"}, 60)
    assert results["r-sasl"].items[0].item_id == "mug"
    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "SASL_PLAINTEXT" in log  # the settings were logged...
    assert SASL_PASSWORD not in log  # ...masked
