"""Fixtures of the model tests: the learned rankers exported once per session into the shared
`models_dir` (tests/conftest.py), and helpers to clone or corrupt a version folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from scoring.kinds import LEARNED_KINDS

# The generated MovieLens copies the evaluation's end-to-end tests read (shared with unit).
from tests.unit.evaluation.conftest import fixture_data, latest_dir, ml100k_dir

__all__ = ["fixture_data", "latest_dir", "ml100k_dir"]


@pytest.fixture(scope="session")
def ranker_dirs(models_dir: Path) -> dict[str, Path]:
    """The base (untrained-head) embed, cross, cascade and hybrid versions, exported once
    per session into the shared models_dir (the same folders every test module reuses)."""
    from scoring.training.export_ranker import ensure_base_ranker  # torch: test-time only

    return {kind: ensure_base_ranker(kind, models_dir) for kind in LEARNED_KINDS}


@pytest.fixture(scope="session")
def embed_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["embed"]


@pytest.fixture(scope="session")
def cross_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["cross"]


@pytest.fixture(scope="session")
def cascade_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["cascade"]


@pytest.fixture(scope="session")
def hybrid_dir(ranker_dirs: dict[str, Path]) -> Path:
    return ranker_dirs["hybrid"]


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
