"""The worker's scoring service: catalog warm-up and ModelUpdate rollout, with real models."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from contracts import ModelUpdate, encode
from scoring.base import MANIFEST_FILE, sha256_file
from streams.worker.app import StreamrankApp
from tests.functional.conftest import Outbox, load_catalog

Worker = tuple[StreamrankApp, Outbox]


@pytest.fixture(scope="session")
def embed_dir(models_dir: Path) -> Path:
    from scoring.training.export_ranker import ensure_base_ranker

    return ensure_base_ranker("embed", models_dir)


def update_for(path: Path) -> bytes:
    from scoring.base import Manifest

    manifest = Manifest.load(path)
    return encode(ModelUpdate(version=manifest.version, uri=str(path),
                              sha256=sha256_file(path / MANIFEST_FILE)))


async def test_model_update_swaps_to_a_validated_warm_model(worker: Worker, embed_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    sr, _ = worker
    monkeypatch.setattr(sr.scoring.registry, "root", embed_dir.parent)
    await load_catalog(sr)
    before = sr.slot.current.version
    assert await sr.scoring.apply(update_for(embed_dir))
    scorer = sr.slot.current
    assert scorer.version != before and scorer.name == "embed"
    # Loaded with the whole catalog embedded: a search over known items encodes no item.
    from scoring.base import ScoreRequest

    misses = scorer.cache_stats()["item_misses"]  # type: ignore[attr-defined]
    texts = sr.catalog_texts()
    scorer.score([ScoreRequest("gift", [], texts[:20])])
    assert scorer.cache_stats()["item_misses"] == misses  # type: ignore[attr-defined]


async def test_bad_updates_are_refused_and_the_old_model_keeps_serving(
    worker: Worker, embed_dir: Path, tmp_path: Path
) -> None:
    sr, _ = worker
    before = sr.slot.current.version
    wrong_sha = orjson.loads(update_for(embed_dir))
    wrong_sha["sha256"] = "0" * 64
    assert not await sr.scoring.apply(orjson.dumps(wrong_sha))
    assert not await sr.scoring.apply(b"{not json")
    missing = orjson.loads(update_for(embed_dir))
    missing["uri"] = str(tmp_path / "nowhere")
    assert not await sr.scoring.apply(orjson.dumps(missing))
    assert sr.slot.current.version == before
    assert sr.slot.refused == 2 and sr.scoring.bad_model_updates == 1


async def test_catalog_changes_are_embedded_in_the_background(
    worker: Worker, embed_dir: Path
) -> None:
    sr, _ = worker
    from scoring import build_scorer

    assert await sr.slot.swap_to(embed_dir, loader=lambda ref: build_scorer(
        "embed", embed_dir.parent, device="cpu", version=str(ref)))
    await load_catalog(sr)  # the catalog agent notes every item that changed
    warmed = await sr.scoring.warm_pending()
    assert warmed == len(sr.catalog_texts())
    assert await sr.scoring.warm_pending() == 0  # nothing new since
