"""Fixtures shared by every kind of test, and the kinds themselves.

Tests are grouped by cost, one folder per kind, and marked by their folder (so `-m unit` is
exactly tests/unit/):
  unit/         no exported model, no broker, no wall-clock waits: the fast run (< 1 min)
  functional/   Faust agents through test_context, on the exported zero-shot model
  model/        torch export, ONNX parity gates, training
  integration/  a real Kafka broker the session starts itself
The zero-shot model is exported once per test session into the session's temp folder (the
user's own registry is left alone); STREAMRANK_TEST_MODELS_DIR reuses a folder across sessions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

KINDS = ("unit", "functional", "model", "integration")
# torch's tracer and transformers log at DEBUG while exporting: thousands of lines that would
# bury a failing test's own log in pytest's report.
QUIET_LOGGERS = ("torch", "transformers", "onnxscript", "onnx_ir", "urllib3", "filelock",
                 "matplotlib", "PIL", "numba")


def pytest_configure(config: pytest.Config) -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Marked by folder so none is forgotten and `-m` selects exactly one folder.
    tests_root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests_root).parts
        if parts and parts[0] in KINDS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def models_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "unit" in request.node.keywords:
        raise pytest.UsageError(
            f"{request.node.nodeid}: unit tests must not export models; move it to tests/model/"
        )
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
