"""Hot swap between real exported versions: a corrupt one is refused, searches keep flowing."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
from pathlib import Path

import pytest

from scoring import ModelRegistry, Scorer, ScoreRequest
from scoring.batcher import MicroBatcher, Outcome
from scoring.serving import ScorerSlot
from tests.unit.scoring.conftest import FakeScorer


@pytest.fixture(scope="module")
def zeroshot_copies(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with two valid zero-shot versions ("a", "b") and a corrupted one."""
    root = tmp_path_factory.mktemp("slot-registry")
    for name in ("zs-a", "zs-b", "zs-corrupt"):
        target = root / name
        shutil.copytree(models_dir / "zeroshot-minilm", target)
        manifest = json.loads((target / "manifest.json").read_text())
        # The version is a label: the checksums cover the files, so the copy stays valid.
        manifest["version"] = name
        (target / "manifest.json").write_text(json.dumps(manifest))
    graph = root / "zs-corrupt" / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    return root


def _loader(root: Path) -> functools.partial[Scorer]:
    return functools.partial(ModelRegistry(root).load, device="cpu", threads=1)


async def test_real_swap_and_corrupt_version_refused(
    zeroshot_copies: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slot = ScorerSlot(FakeScorer("v0"))
    batcher = MicroBatcher(slot, max_wait_ms=1, timeout_ms=30_000)
    batcher.start()
    try:
        assert await slot.swap_to("zs-a", loader=_loader(zeroshot_copies))
        assert slot.current.version == "zs-a" and slot.current.name == "zeroshot"
        search = ScoreRequest("running shoes", ["trail"], [("a", "running shoes"), ("b", "")])
        before = await batcher.submit(search)
        assert not before.degraded and before.model_version == "zs-a"
        with caplog.at_level(logging.ERROR, logger="scoring.serving"):
            assert not await slot.swap_to("zs-corrupt", loader=_loader(zeroshot_copies))
        assert "refused model zs-corrupt" in caplog.text and "sha256 mismatch" in caplog.text
        after = await batcher.submit(search)  # the old model still serves, unchanged
        assert after.model_version == "zs-a" and after.scores == before.scores
    finally:
        await batcher.stop()


async def test_concurrent_searches_during_a_swap(zeroshot_copies: Path) -> None:
    """200 searches while a real model loads and swaps in: all answered, in version order."""
    registry = ModelRegistry(zeroshot_copies)
    slot = ScorerSlot(registry.load("zs-a", device="cpu", threads=1))
    batcher = MicroBatcher(slot, max_batch_pairs=64, max_wait_ms=2, timeout_ms=60_000)
    batcher.start()
    queries = ["running shoes", "chef knife", "gift for dad", "coffee mug"]
    cands = [("s1", "trail running shoes"), ("k1", "stainless chef knife"), ("u", "")]
    try:
        tasks: list[asyncio.Task[Outcome]] = []
        swap: asyncio.Task[bool] | None = None
        for i in range(200):
            req = ScoreRequest(queries[i % 4], ["mug"], cands)
            tasks.append(asyncio.create_task(batcher.submit(req)))
            if i == 20:
                swap = asyncio.create_task(slot.swap_to("zs-b", loader=_loader(zeroshot_copies)))
            # Searches keep arriving while the new version loads in its thread.
            await asyncio.sleep(0.01 if swap is not None and not swap.done() else 0.002)
        assert swap is not None and await swap
        outcomes = await asyncio.gather(*tasks)
    finally:
        await batcher.stop()
    versions = [o.model_version for o in outcomes]
    assert not any(o.degraded for o in outcomes)
    assert versions == sorted(versions) and versions[0] == "zs-a" and versions[-1] == "zs-b"
    assert sum(v == "zs-a" for v in versions) > 21  # the old one served during the load
