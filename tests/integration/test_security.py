"""Everything configured only by STREAMRANK_* SASL variables connects through the broker's
SASL listener (a plaintext client could not talk to it): the worker, the client library,
`streamrank simulate`, a `streamrank train` run (reads samples, finds the champion, publishes
its ModelUpdate) and `streamrank model rollback`. No password reaches a log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts import Candidate, Item, SearchEvent
from streams.client import RankingClient
from streams.kafka.local_broker import LocalBroker
from tests.integration.conftest import SASL_PASSWORD, Deployment, sasl_clients, sasl_env
from tests.integration.helpers import streamrank

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

FAST = {
    "STREAMRANK_ATTRIBUTION_WINDOW_S": "2",
    "STREAMRANK_IMPRESSION_TTL_S": "120",
    "STREAMRANK_ATTRIBUTION_TICK_S": "0.5",
    # The trainer's export shares this small machine with the worker.
    "STREAMRANK_SCORE_TIMEOUT_MS": "15000",
}
# The smallest real run: a couple of steps, promoted whatever the figures, then published.
TRAIN = ["train", "--rule", "always", "--steps", "2", "--lists-per-step", "4",
         "--min-train-lists", "2", "--min-holdout-lists", "1", "--bootstrap-rounds", "50",
         "--quiet"]


async def test_worker_client_simulate_train_and_rollback_over_sasl(
    deployment: Deployment, kafka: LocalBroker, models_dir: Path, tmp_path: Path
) -> None:
    dep = deployment
    registry = tmp_path / "registry"  # this test's versions stay out of the shared cache
    registry.mkdir()
    (registry / "zeroshot-minilm").symlink_to(models_dir / "zeroshot-minilm")
    env = {**FAST, **sasl_env(kafka), "STREAMRANK_MODELS_DIR": str(registry)}
    worker = dep.start_worker(**env)
    await worker.wait_ready(180)
    old = worker.get("/health/")["model_version"]

    async with RankingClient(sasl_clients(kafka), dep.topics) as client:
        await client.publish_item(Item(item_id="mug", title="Stoneware coffee mug"))
        await worker.wait_for(lambda w: w.get("/health/")["catalog_items"] == 1, "catalog")
        search = SearchEvent(event_id="s1", request_id="r-sasl", user_id="u", ts=1,
                             query="mug", candidates=[Candidate(item_id="mug")])
        result = await client.rank(search, 60, fallback=False)
    assert result.items[0].item_id == "mug" and not result.degraded

    cli_env = {**dep.env, **env}  # the deployment's prefix; the SASL listener only
    out = await streamrank(cli_env, "simulate", "--users", "12", "--rounds", "2",
                           "--settle", "0.5s", "--wait-samples", "90s", timeout=300)
    assert "samples captured for 24 searches" in out, out[-2000:]

    out = await streamrank(cli_env, *TRAIN, "--report-dir", str(tmp_path / "reports"),
                           timeout=600)
    found = re.search(r"published ModelUpdate (embed-[0-9a-f]{8})", out)
    assert found, out[-3000:]
    assert "champion zeroshot-minilm" in out  # the models topic was read too (empty)
    await worker.wait_for(lambda w: w.get("/health/")["model_version"] == found.group(1),
                          "the trained version served", 180)

    out = await streamrank(cli_env, "model", "rollback", "zeroshot-minilm", timeout=120)
    assert f"published ModelUpdate {old}" in out
    await worker.wait_for(lambda w: w.get("/health/")["model_version"] == old, "rollback", 120)

    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "SASL_PLAINTEXT" in log  # the settings were logged...
    assert SASL_PASSWORD not in log  # ...masked
