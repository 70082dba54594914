"""Fixtures of the scoring unit tests: a controllable fake scorer, and the learned rankers
exported once per session into the shared `models_dir` (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from scoring.base import ScoreRequest


class FakeScorer:
    """Scores candidate j as -j (so the original order wins); one call at a time."""

    name = "fake"
    provider = "FakeExecutionProvider"

    def __init__(
        self,
        version: str = "fake-1",
        *,
        delay: float = 0.0,
        error: Exception | None = None,
        nan: bool = False,
    ) -> None:
        self.version = version
        self.delay = delay
        self.error = error
        self.nan = nan
        self.calls: list[list[ScoreRequest]] = []
        self.threads: set[str] = set()
        # Cleared: score() blocks until the test sets it (tests must set it before leaving).
        self.gate = threading.Event()
        self.gate.set()
        self.last_timings: dict[str, float] = {}

    @property
    def batch_sizes(self) -> list[int]:
        return [len(call) for call in self.calls]

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        self.calls.append(list(requests))
        self.threads.add(threading.current_thread().name)
        self.gate.wait(timeout=10)
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        self.last_timings = {"inference": self.delay}
        value = float("nan") if self.nan else 0.0
        return [[value - j for j in range(len(req.candidates))] for req in requests]


def request(n: int, query: str = "q") -> ScoreRequest:
    """A search with `n` candidates."""
    return ScoreRequest(query, ["h"], [(f"i{j}", f"item {j}") for j in range(n)])


@pytest.fixture(scope="session")
def ranker_dirs(models_dir: Path) -> dict[str, Path]:
    """The base (untrained-head) embed, cross and cascade versions, exported once per session
    into the shared models_dir (the same folders every test module reuses)."""
    from scoring.training.export_ranker import ensure_base_ranker  # torch: test-time only

    return {kind: ensure_base_ranker(kind, models_dir) for kind in ("embed", "cross", "cascade")}


@pytest.fixture(scope="session")
def embed_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["embed"]


@pytest.fixture(scope="session")
def cross_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["cross"]


@pytest.fixture(scope="session")
def cascade_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["cascade"]


def clone_version(src: Path, dst: Path, **manifest_changes: Any) -> Path:
    """A copy of the version folder `src` at `dst` with manifest fields changed.

    Files are hard-linked where possible (cheap); never modify one in place: unlink first."""
    dst.mkdir(parents=True)
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    manifest = dst / "manifest.json"
    data = json.loads(manifest.read_text())
    data.update(manifest_changes)
    manifest.unlink()  # a hard link: replace, do not rewrite the original's inode
    manifest.write_text(json.dumps(data))
    return dst


def flip_byte(path: Path) -> None:
    """Corrupt `path` by one bit, without touching other hard links to it."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.unlink()
    path.write_bytes(bytes(data))
