"""The MovieLens replay through the real broker and a worker gives the offline figures.

The worker serves the zero-shot model (fp32, history-weighted), so its scores depend on the
history the worker assembled from the published actions: equal scores online and offline
mean the worker saw exactly the offline history for every search, and not the search's own
action.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from evaluation.kafka_replay import run_replay
from evaluation.movielens import load
from evaluation.protocol import ProtocolConfig, replay
from evaluation.results import Scored
from evaluation.run import compare_online, kafka_env
from evaluation.systems import ScorerSystem, Texts
from scoring import build_scorer
from streams.kafka.local_broker import LocalBroker
from streams.tools.worker_process import worker_env
from tests.unit.evaluation.fixtures import generate, write_latest


async def test_kafka_replay_ranks_like_the_offline_run(
    kafka: LocalBroker, tmp_path: Path, models_dir: Path
) -> None:
    rep = replay(load(write_latest(generate(), tmp_path / "ml")), ProtocolConfig(k=10),
                 progress=False)
    searches = rep.segments()["all"]
    assert len(searches) >= 15 and sum(s.prior_events > 0 for s in searches) >= 10
    texts = Texts(rep.data.movies)
    zs = build_scorer("zeroshot", models_dir, device="cpu")
    with_history = ScorerSystem("zero-shot", zs, texts, history=True, learned=False)
    offline = with_history.score(searches)
    without = ScorerSystem("x", zs, texts, history=False, learned=False).score(searches)

    env = worker_env(kafka.bootstrap_servers, tmp_path / "state", uuid.uuid4().hex[:8],
                     models_dir=models_dir, app_prefix="evaltest")
    env |= kafka_env(rep, None)
    run = await run_replay(rep, searches, bootstrap=kafka.bootstrap_servers, env=env,
                           log_path=tmp_path / "worker.log", rate=50.0, progress=False)

    assert set(run.results) == {s.request_id for s in searches}
    assert run.degraded == 0 and run.model_version.startswith("zeroshot")
    differs_without_history = 0
    for s, want, plain in zip(searches, offline, without, strict=True):
        result = run.results[s.request_id]
        assert sorted(i.item_id for i in result.items) == sorted(s.candidates)
        got = {i.item_id: i.score for i in result.items}
        np.testing.assert_allclose([got[m] for m in s.candidates], want, atol=1e-5)
        differs_without_history += not np.allclose(want, plain, atol=1e-5)
    # The equality above says something about history only if history changes scores.
    assert differs_without_history >= 10

    scored = Scored.of(with_history, searches, offline, 0.0)
    cmp = compare_online("zero-shot", scored, run, searches)
    assert cmp["agree"] and cmp["same_positive_rank"] == len(searches)
    assert cmp["delta_ndcg"]["mean"] == 0.0
