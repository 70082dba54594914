"""Fixtures shared by every kind of test.

The zero-shot model is exported once per test session into the session's temp folder (the
user's own registry is left alone); STREAMRANK_TEST_MODELS_DIR reuses a folder across sessions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Integration tests are marked by folder so none is forgotten.
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scoring.training import ensure_encoder

    base = os.environ.get("STREAMRANK_TEST_MODELS_DIR")
    root = Path(base) if base else tmp_path_factory.getbasetemp() / "streamrank-models"
    ensure_encoder(root)
    return root


@pytest.fixture(scope="session")
def encoder_dir(models_dir: Path) -> Path:
    return models_dir / "zeroshot-minilm"


@pytest.fixture(scope="session")
def zeroshot(models_dir: Path) -> Any:
    from scoring import build_scorer

    return build_scorer("zeroshot", models_dir, device="cpu")
