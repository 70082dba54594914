"""The worker's scoring service: catalog warm-up and ModelUpdate rollout, with real models."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest

from contracts import ModelUpdate, encode
from scoring import EmbedScorer
from scoring.base import MANIFEST_FILE, ItemText, sha256_file
from streams.worker.app import StreamrankApp
from streams.worker.scoring_service import WARM_CHUNK, warm_catalog
from tests.functional.conftest import Outbox, load_catalog
from tests.unit.scoring.conftest import FakeScorer

Worker = tuple[StreamrankApp, Outbox]


@pytest.fixture(scope="session")
def embed_dir(models_dir: Path) -> Path:
    from scoring.training.export_ranker import ensure_base_ranker

    return ensure_base_ranker("embed", models_dir)


class Walk:
    """A catalog walk that records the thread it runs on and how far it has been read."""

    def __init__(self, items: list[ItemText]) -> None:
        self.items = items
        self.threads: set[str] = set()
        self.read = 0

    def __call__(self) -> Iterator[ItemText]:
        for item in self.items:
            self.threads.add(threading.current_thread().name)
            self.read += 1
            yield item


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
    walk = Walk(list(sr.catalog_texts()))
    monkeypatch.setattr(sr.scoring, "catalog_texts", walk)
    before = sr.slot.current.version
    assert await sr.scoring.apply(update_for(embed_dir))
    scorer = sr.slot.current
    assert scorer.version != before and scorer.name == "embed"
    # The catalog was walked, all of it, in the swap's thread: never on the event loop.
    assert walk.read == len(walk.items) > 0
    assert walk.threads and threading.current_thread().name not in walk.threads
    # Loaded with the whole catalog embedded: a search over known items encodes no item.
    from scoring.base import ScoreRequest

    assert isinstance(scorer, EmbedScorer)
    misses = scorer.cache_stats()["item_misses"]
    scorer.score([ScoreRequest("gift", [], walk.items[:20])])
    assert scorer.cache_stats()["item_misses"] == misses


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
    assert warmed == len(list(sr.catalog_texts()))
    assert await sr.scoring.warm_pending() == 0  # nothing new since


class Recording(FakeScorer):
    caches_items = True

    def __init__(self, walk: Walk) -> None:
        super().__init__()
        self.walk = walk
        self.chunks: list[tuple[int, int]] = []  # (chunk size, items read from the walk)

    def warm_items(self, items: Sequence[ItemText]) -> int:
        self.chunks.append((len(items), self.walk.read))
        return len(items)


def test_warm_catalog_reads_the_walk_a_chunk_at_a_time() -> None:
    walk = Walk([(f"i{k}", f"item {k}") for k in range(2 * WARM_CHUNK + 5)])
    scorer = Recording(walk)
    assert warm_catalog(scorer, walk()) == len(walk.items)
    # Each chunk was handed over as soon as it was read: the walk is never held whole.
    assert scorer.chunks == [(WARM_CHUNK, WARM_CHUNK), (WARM_CHUNK, 2 * WARM_CHUNK),
                             (5, 2 * WARM_CHUNK + 5)]
    plain = FakeScorer()  # caches nothing: the catalog is not even walked
    untouched = Walk(walk.items)
    assert warm_catalog(plain, untouched()) == 0 and untouched.read == 0
