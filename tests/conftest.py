"""Fixtures shared by every kind of test.

The zero-shot model is exported once per machine into the same registry folder the product
uses (override with STREAMRANK_TEST_MODELS_DIR), so test sessions after the first start fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Integration tests are marked by folder so none is forgotten.
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from scoring.training.export import ensure_encoder
    from streams.settings import Settings

    root = Path(os.environ.get("STREAMRANK_TEST_MODELS_DIR", Settings().models_dir))
    ensure_encoder(root)
    return root


@pytest.fixture(scope="session")
def zeroshot(models_dir: Path):  # type: ignore[no-untyped-def]
    from scoring import build_scorer

    return build_scorer("zeroshot", models_dir, device="cpu")
