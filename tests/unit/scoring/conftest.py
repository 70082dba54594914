"""The exported encoder, once per session (shared with tests/parity via the temp root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the exported encoder (exported once per session).

    STREAMRANK_TEST_MODELS_DIR reuses (or fills) a folder across sessions. Otherwise the
    session's base temp folder is used, so every conftest asking for it shares one export.
    """
    pytest.importorskip("torch")
    from scoring.training import ensure_encoder

    base = os.environ.get("STREAMRANK_TEST_MODELS_DIR")
    root = Path(base) if base else tmp_path_factory.getbasetemp() / "streamrank-models"
    ensure_encoder(root)
    return root


@pytest.fixture(scope="session")
def encoder_dir(models_dir: Path) -> Path:
    return models_dir / "zeroshot-minilm"
